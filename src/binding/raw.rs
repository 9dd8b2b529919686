//! What the C functions of the hot path share (each sits beside the mlua method it mirrors,
//! in that method's `raw` child module): a guard against panics, and the arguments of the
//! usual `send` read off the stack.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::ffi;

use crate::binding::contract::{is_valid_text, outgoing, Outgoing, INTERNAL_ERROR};

/// Runs `work`; a panic (a bug) becomes a Lua error instead of unwinding into Lua's C.
///
/// # Safety
/// `state` is the calling Lua state, and the caller keeps no Rust value that needs dropping
/// alive across this call (lua_error does not return, it jumps).
pub(crate) unsafe fn guarded<T>(state: *mut ffi::lua_State, work: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(value) => value,
        Err(panic) => {
            drop(panic);
            ffi::lua_pushstring(state, INTERNAL_ERROR.as_ptr());
            ffi::lua_error(state)
        }
    }
}

/// The payload a `send` asks for (argument 2) and whether it goes as TEXT (opcode in
/// argument 3), when it is the usual kind: a string, TEXT (valid UTF-8) or BINARY. Anything
/// else is for the full method to judge and word. The bytes are the Lua string's own: valid
/// while it stays on the stack, during the call.
pub(crate) unsafe fn usual_payload<'a>(state: *mut ffi::lua_State) -> Option<(&'a [u8], bool)> {
    if ffi::lua_type(state, 2) != ffi::LUA_TSTRING {
        return None;
    }
    let opcode = match ffi::lua_type(state, 3) {
        ffi::LUA_TNIL | ffi::LUA_TNONE => None,
        ffi::LUA_TNUMBER => {
            let number = ffi::lua_tonumber(state, 3);
            if number.fract() != 0.0 {
                return None;
            }
            Some(number as i64)
        }
        _ => return None,
    };
    let is_text = match outgoing(opcode)? {
        Outgoing::Text => true,
        Outgoing::Binary => false,
        Outgoing::Ping | Outgoing::Pong => return None,
    };
    let mut length = 0;
    let pointer = ffi::lua_tolstring(state, 2, &mut length) as *const u8;
    let bytes = std::slice::from_raw_parts(pointer, length);
    if is_text && !is_valid_text(bytes) {
        return None;
    }
    Some((bytes, is_text))
}
