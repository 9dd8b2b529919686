//! The values each call returns to Lua, written once for both the C functions of the hot
//! path and the mlua methods: the shapes are pushes on the Lua stack (`push_*`), and the
//! mlua methods make the same pushes through `exec_raw` (`received`, `sent`, `closed`).
//!
//! See push_payload for what a memory error while pushing a string does.

use std::cell::Cell;
use std::ffi::c_int;
use std::task::Poll;

use mlua::{ffi, IntoLuaMulti, Lua, MultiValue, Value};
use tokio_tungstenite::tungstenite::Bytes;

use crate::binding::contract::{opcode_of, pending};
use crate::connection::connect::{Accepted, ConnectError};
use crate::connection::{Ending, Received};

/// Stack slots the pushes below need at most.
pub(crate) const MOST_RESULTS: c_int = 8;

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
pub(crate) unsafe fn push_payload(state: *mut ffi::lua_State, payload: Bytes) {
    let (pointer, length) = (payload.as_ptr(), payload.len());
    BEING_PUSHED.set(Some(payload));
    ffi::lua_pushlstring(state, pointer.cast(), length);
    BEING_PUSHED.set(None);
}

/// `receive`: pushes `message, opcode` or `nil, nil, was_clean, code, reason`, and returns
/// how many. Safety as push_payload.
pub(crate) unsafe fn push_received(
    state: *mut ffi::lua_State,
    outcome: Result<Received, Ending>,
) -> c_int {
    match outcome {
        Ok(message) => {
            let opcode = opcode_of(message.is_text);
            push_payload(state, message.payload);
            ffi::lua_pushinteger(state, opcode);
            2
        }
        Err(ending) => {
            ffi::lua_pushnil(state);
            ffi::lua_pushnil(state);
            2 + push_closed(state, ending)
        }
    }
}

/// `send`: pushes `true` or `nil, was_clean, code, reason`, and returns how many. Safety
/// as push_payload.
pub(crate) unsafe fn push_sent(state: *mut ffi::lua_State, outcome: Result<(), Ending>) -> c_int {
    match outcome {
        Ok(()) => {
            ffi::lua_pushboolean(state, 1);
            1
        }
        Err(ending) => {
            ffi::lua_pushnil(state);
            1 + push_closed(state, ending)
        }
    }
}

/// `close`: pushes `was_clean, code, reason` (3 values). Safety as push_payload.
pub(crate) unsafe fn push_closed(state: *mut ffi::lua_State, ending: Ending) -> c_int {
    ffi::lua_pushboolean(state, c_int::from(ending.clean));
    ffi::lua_pushinteger(state, ffi::lua_Integer::from(ending.code));
    push_payload(state, Bytes::from(ending.reason.into_bytes()));
    3
}

/// PENDING: the call would have to wait. Safety as push_payload.
pub(crate) unsafe fn push_pending(state: *mut ffi::lua_State) -> c_int {
    ffi::lua_pushlightuserdata(state, pending().0);
    1
}

/// The values `push` leaves on the stack, for an mlua method.
fn pushed(lua: &Lua, push: impl FnOnce(*mut ffi::lua_State)) -> mlua::Result<MultiValue> {
    // SAFETY: the pushes take their room first and leave only their results on the stack
    // exec_raw gave them; what they own is handed to push_payload (see there).
    unsafe {
        lua.exec_raw((), |state| {
            if ffi::lua_checkstack(state, MOST_RESULTS) != 0 {
                push(state);
            }
        })
    }
}

/// `receive`'s values, PENDING while it waits.
pub(crate) fn received(
    lua: &Lua,
    outcome: Poll<Result<Received, Ending>>,
) -> mlua::Result<MultiValue> {
    pushed(lua, |state| unsafe {
        match outcome {
            Poll::Pending => push_pending(state),
            Poll::Ready(outcome) => push_received(state, outcome),
        };
    })
}

/// `send`'s values, PENDING while it waits.
pub(crate) fn sent(lua: &Lua, outcome: Poll<Result<(), Ending>>) -> mlua::Result<MultiValue> {
    pushed(lua, |state| unsafe {
        match outcome {
            Poll::Pending => push_pending(state),
            Poll::Ready(outcome) => push_sent(state, outcome),
        };
    })
}

/// `ping`'s values: the round trip in seconds, or `nil, reason`; PENDING while it waits.
pub(crate) fn round_trip(
    lua: &Lua,
    outcome: Poll<Result<std::time::Duration, Ending>>,
) -> mlua::Result<MultiValue> {
    use mlua::IntoLuaMulti;
    match outcome {
        Poll::Pending => pending().into_lua_multi(lua),
        Poll::Ready(Ok(round_trip)) => round_trip.as_secs_f64().into_lua_multi(lua),
        Poll::Ready(Err(ending)) => (Value::Nil, ending.reason).into_lua_multi(lua),
    }
}

/// `close`'s values, PENDING while it waits.
pub(crate) fn closed(lua: &Lua, outcome: Poll<Ending>) -> mlua::Result<MultiValue> {
    pushed(lua, |state| unsafe {
        match outcome {
            Poll::Pending => push_pending(state),
            Poll::Ready(ending) => push_closed(state, ending),
        };
    })
}

/// `connect`: `true, protocol, headers` or `nil, message[, headers]`, PENDING while it
/// waits.
pub(crate) fn connected(
    lua: &Lua,
    outcome: Poll<Result<Accepted, ConnectError>>,
) -> mlua::Result<MultiValue> {
    match outcome {
        Poll::Pending => pending().into_lua_multi(lua),
        Poll::Ready(Ok(accepted)) => {
            let headers = lua.create_table_from(accepted.headers)?;
            (true, accepted.protocol, headers).into_lua_multi(lua)
        }
        Poll::Ready(Err(failure)) => {
            let headers = match failure.headers {
                Some(list) => Value::Table(lua.create_table_from(list)?),
                None => Value::Nil,
            };
            (Value::Nil, failure.message, headers).into_lua_multi(lua)
        }
    }
}
