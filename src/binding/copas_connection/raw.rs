//! A copas connection's `receive` and `send` as C functions (the mlua methods they mirror
//! are in the parent module), in the table `websocket_native.raw_functions()` returns: they
//! reach a connection by its handle's id through the core their upvalue points at, and
//! serve the usual cases only; for the rest they answer false, and Lua makes the full
//! method call.

use std::ffi::c_int;
use std::task::Poll;

use mlua::ffi;

use crate::binding::core_functions::raw::closure_core;
use crate::binding::raw::{guarded, usual_payload};
use crate::binding::results::{push_pending, push_received, push_sent, MOST_RESULTS};
use crate::copas::driven::{receive_on, send_payload_on};

/// What `receive` and `send` push when the handle is not theirs to serve (no connection of
/// this core has that id, or a call on it is under way, or the arguments are not the usual
/// ones): the caller then makes the full method call, which also words any error.
unsafe fn not_here(state: *mut ffi::lua_State) -> c_int {
    ffi::lua_pushboolean(state, 0);
    1
}

/// The handle id in argument 1, if it is one and the stack has room for the results.
unsafe fn handle_to_serve(state: *mut ffi::lua_State) -> Option<u64> {
    let mut is_number = 0;
    let id = ffi::lua_tointegerx(state, 1, &mut is_number);
    let room = ffi::lua_checkstack(state, MOST_RESULTS) != 0;
    (is_number != 0 && id > 0 && room).then_some(id as u64)
}

/// `receive(id, step_first)`: a connection's receive (see driven::receive_on):
/// `message, opcode`, `nil, nil, was_clean, code, reason`, PENDING, or false (not here).
pub(crate) unsafe extern "C-unwind" fn receive(state: *mut ffi::lua_State) -> c_int {
    let Some(id) = handle_to_serve(state) else {
        return not_here(state);
    };
    let step_first = ffi::lua_toboolean(state, 2) != 0;
    let outcome = guarded(state, || {
        let core = closure_core(state);
        receive_on(core, &*core.pump(id)?, step_first)
    });
    match outcome {
        None => not_here(state),
        Some(Poll::Pending) => push_pending(state),
        Some(Poll::Ready(received)) => push_received(state, received),
    }
}

/// `send(id, payload, opcode)`: a connection's send of the usual kind of message: `true`,
/// `nil, was_clean, code, reason`, PENDING, or false (not here).
pub(crate) unsafe extern "C-unwind" fn send(state: *mut ffi::lua_State) -> c_int {
    let Some(id) = handle_to_serve(state) else {
        return not_here(state);
    };
    let outcome = guarded(state, || {
        let (payload, is_text) = usual_payload(state)?;
        let core = closure_core(state);
        send_payload_on(core, &*core.pump(id)?, payload, is_text)
    });
    match outcome {
        None => not_here(state),
        Some(Poll::Pending) => push_pending(state),
        Some(Poll::Ready(sent)) => push_sent(state, sent),
    }
}
