//! The sync client's `receive` and `send` as C functions (the mlua methods they mirror are
//! in the parent module), kept on the client object as its own methods: `ws:receive()` then runs no Lua and no mlua call (which protects the call,
//! converts its arguments and results and borrows the userdata: together with the Lua
//! wrapper, about a tenth of a 16-byte echo's instructions).
//!
//! Each is a closure over one client: upvalue 1 points at its client (`RefCell<SyncClient>`),
//! 2 is the client's userdata, which owns the client and so keeps the pointer valid for as
//! long as the closure exists. `send` has a third: the Lua function that serves what it
//! does not (another opcode, a wrong argument), which also words the error.

use std::cell::RefCell;
use std::ffi::c_int;
use std::rc::Rc;

use mlua::{ffi, AnyUserData, Function, Lua};

use crate::binding::contract::IN_USE;
use crate::binding::raw::{guarded, usual_payload};
use crate::binding::results::{push_received, push_sent, MOST_RESULTS};
use crate::sync::client::SyncClient;

/// The closure's client.
///
/// # Safety
/// Only for the closures made by `methods`, whose second upvalue owns what the first
/// points at.
unsafe fn client_of<'a>(state: *mut ffi::lua_State) -> &'a RefCell<SyncClient> {
    &*(ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)) as *const RefCell<SyncClient>)
}

/// Raises the error of a call made while another has the client (only a bug could).
unsafe fn in_use(state: *mut ffi::lua_State) -> c_int {
    ffi::lua_pushstring(state, IN_USE.as_ptr());
    ffi::lua_error(state)
}

/// `ws:receive()`: `message, opcode` or `nil, nil, was_clean, code, reason`, waiting as
/// long as the client's timeout allows.
unsafe extern "C-unwind" fn receive(state: *mut ffi::lua_State) -> c_int {
    if ffi::lua_checkstack(state, MOST_RESULTS) == 0 {
        ffi::lua_pushstring(state, c"stack overflow".as_ptr());
        ffi::lua_error(state);
    }
    let outcome = guarded(state, || {
        let mut client = client_of(state).try_borrow_mut().ok()?;
        Some(client.receive())
    });
    match outcome {
        Some(received) => push_received(state, received),
        None => in_use(state),
    }
}

/// `ws:send(message, opcode)` for a string sent as TEXT (valid UTF-8) or BINARY: `true` or
/// `nil, was_clean, code, reason`. Anything else goes to the Lua function in upvalue 3.
unsafe extern "C-unwind" fn send(state: *mut ffi::lua_State) -> c_int {
    if ffi::lua_checkstack(state, MOST_RESULTS) == 0 {
        return send_declined(state);
    }
    let outcome = guarded(state, || {
        let (payload, is_text) = usual_payload(state)?;
        let mut client = client_of(state).try_borrow_mut().ok()?;
        Some(client.send_payload(payload, is_text))
    });
    match outcome {
        Some(sent) => push_sent(state, sent),
        None => send_declined(state),
    }
}

/// Calls upvalue 3 with `send`'s arguments and returns what it returns. Its errors pass
/// through this C function, which then holds nothing of Rust's.
unsafe fn send_declined(state: *mut ffi::lua_State) -> c_int {
    let arguments = ffi::lua_gettop(state);
    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(3));
    ffi::lua_insert(state, 1);
    ffi::lua_call(state, arguments, ffi::LUA_MULTRET);
    ffi::lua_gettop(state)
}

/// The two closures over `handle`'s `client` (see the module comment): `receive, send`.
pub(crate) fn methods(
    lua: &Lua,
    client: Rc<RefCell<SyncClient>>,
    handle: AnyUserData,
    declined: Function,
) -> mlua::Result<(Function, Function)> {
    // The handle owns another Rc of the client, which the closures keep alive.
    let pointer = Rc::as_ptr(&client) as *mut std::ffi::c_void;
    drop(client);
    // SAFETY: with the handle at 1 and `declined` at 2, pushes the two closures and leaves
    // only them on the stack exec_raw gave us.
    unsafe {
        lua.exec_raw((handle, declined), |state| {
            ffi::lua_pushlightuserdata(state, pointer);
            ffi::lua_pushvalue(state, 1);
            ffi::lua_pushcclosure(state, receive, 2);
            ffi::lua_pushlightuserdata(state, pointer);
            ffi::lua_pushvalue(state, 1);
            ffi::lua_pushvalue(state, 2);
            ffi::lua_pushcclosure(state, send, 3);
            ffi::lua_remove(state, 1);
            ffi::lua_remove(state, 1);
        })
    }
}
