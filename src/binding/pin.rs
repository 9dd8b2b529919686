//! Keeps this shared library loaded until the process ends.
//!
//! Lua unloads C modules (dlclose) when its state closes, but the order in which it runs the
//! remaining finalizers is not fixed: a finalizer of ours that ran after the unload would jump
//! into unmapped code. Taking one extra reference with RTLD_NODELETE makes the unload a no-op,
//! as luasec and other long-lived native modules do.

use std::ffi::c_void;

pub fn keep_library_loaded() {
    // SAFETY: dladdr only reads the loader's tables for an address inside this library, and
    // dlopen with RTLD_NOLOAD|RTLD_NODELETE only marks an already loaded library.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let here = keep_library_loaded as *const c_void;
        if libc::dladdr(here, &mut info) == 0 || info.dli_fname.is_null() {
            return;
        }
        libc::dlopen(
            info.dli_fname,
            libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
        );
    }
}
