//! What the C functions (fast_calls.rs, client_fast.rs) share: a guard against panics, the
//! message of a usual `send`, and pushing a call's results on the Lua stack.
//!
//! Results are pushed with the Lua C API directly; see push_payload for what a memory
//! error while pushing a string does.

use std::cell::Cell;
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::ffi;
use tokio_tungstenite::tungstenite::Bytes;

use crate::binding::options::{BINARY, TEXT};
use crate::connection::{Ending, Received};

/// Runs `work`; a panic (a bug) becomes a Lua error instead of unwinding into Lua's C.
///
/// # Safety
/// `state` is the calling Lua state, and the caller keeps no Rust value that needs dropping
/// alive across this call (lua_error does not return, it jumps).
pub unsafe fn guarded<T>(state: *mut ffi::lua_State, work: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(value) => value,
        Err(panic) => {
            drop(panic);
            ffi::lua_pushstring(state, c"websocket_native: internal error".as_ptr());
            ffi::lua_error(state)
        }
    }
}

/// The payload a `send` asks for (argument 2) and whether it goes as TEXT (opcode in
/// argument 3), when it is the usual kind: a string, TEXT (valid UTF-8) or BINARY. Anything
/// else is for the full method to judge and word. The bytes are the Lua string's own: valid
/// while it stays on the stack, during the call.
pub unsafe fn usual_payload<'a>(state: *mut ffi::lua_State) -> Option<(&'a [u8], bool)> {
    if ffi::lua_type(state, 2) != ffi::LUA_TSTRING {
        return None;
    }
    let is_text = match ffi::lua_type(state, 3) {
        ffi::LUA_TNIL | ffi::LUA_TNONE => true,
        ffi::LUA_TNUMBER => {
            let number = ffi::lua_tonumber(state, 3);
            if number == TEXT as f64 {
                true
            } else if number == BINARY as f64 {
                false
            } else {
                return None;
            }
        }
        _ => return None,
    };
    let mut length = 0;
    let pointer = ffi::lua_tolstring(state, 2, &mut length) as *const u8;
    let bytes = std::slice::from_raw_parts(pointer, length);
    if is_text && simdutf8::basic::from_utf8(bytes).is_err() {
        return None;
    }
    Some((bytes, is_text))
}

thread_local! {
    /// The bytes a push is turning into a Lua string (see push_payload).
    static BEING_PUSHED: Cell<Option<Bytes>> = const { Cell::new(None) };
}

/// Pushes `payload` as a Lua string.
///
/// Lua raises a memory error by jumping out of this function and its callers, over Rust
/// frames that do not get to drop what they own. So the payload is owned here by a
/// thread-local slot while Lua copies it: after such an error it stays there, taking no
/// more than that one payload's memory until the next push drops it.
///
/// # Safety
/// `state` is the calling Lua state, with room on its stack; the callers hold no other
/// Rust value that needs dropping.
pub unsafe fn push_payload(state: *mut ffi::lua_State, payload: Bytes) {
    let (pointer, length) = (payload.as_ptr(), payload.len());
    BEING_PUSHED.set(Some(payload));
    ffi::lua_pushlstring(state, pointer.cast(), length);
    BEING_PUSHED.set(None);
}

/// Pushes a receive's results, `message, opcode` or `nil, nil, was_clean, code, reason`,
/// and returns how many. Safety as push_payload.
pub unsafe fn push_received(
    state: *mut ffi::lua_State,
    outcome: Result<Received, Ending>,
) -> c_int {
    match outcome {
        Ok(message) => {
            let opcode = if message.is_text { TEXT } else { BINARY };
            push_payload(state, message.payload);
            ffi::lua_pushinteger(state, opcode);
            2
        }
        Err(ending) => {
            ffi::lua_pushnil(state);
            1 + push_ending(state, ending)
        }
    }
}

/// Pushes a send's results, `true` or `nil, was_clean, code, reason`, and returns how
/// many. Safety as push_payload.
pub unsafe fn push_sent(state: *mut ffi::lua_State, outcome: Result<(), Ending>) -> c_int {
    match outcome {
        Ok(()) => {
            ffi::lua_pushboolean(state, 1);
            1
        }
        Err(ending) => push_ending(state, ending),
    }
}

/// Pushes `nil, was_clean, code, reason`: 4 values.
unsafe fn push_ending(state: *mut ffi::lua_State, ending: Ending) -> c_int {
    ffi::lua_pushnil(state);
    ffi::lua_pushboolean(state, c_int::from(ending.clean));
    ffi::lua_pushinteger(state, ffi::lua_Integer::from(ending.code));
    push_payload(state, Bytes::from(ending.reason.into_bytes()));
    4
}
