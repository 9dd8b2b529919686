//! The core's functions that a copas loop calls on every message, as plain C functions.
//!
//! A function made by mlua costs about 400 instructions more per call than a C function
//! (it protects the call, converts arguments and results, and finds the core in the
//! state's app data), and copas asks these several times per message: whether the core has
//! work (`any_raised`, at every select) and to step it (`step`), and a connection's
//! `receive` and `send` run once or twice a message. Here each is a C closure whose upvalue
//! points at the core; `constant` makes the `getfd` methods copas' select calls. `receive`
//! and `send` reach a connection by its handle's id and serve the usual cases only; for the
//! rest they answer false, and Lua makes the full method call.

use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::task::Poll;

use mlua::{ffi, Function, Lua};
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use crate::connection::Ending;
use crate::core::Core;
use crate::nonblocking::{pending, receive_on, send_on};
use crate::options::{BINARY, TEXT};

/// The core a function's first upvalue points at.
///
/// # Safety
/// Only for the closures made by `c_closure`, whose upvalue is the core of their Lua
/// state: the state's app data holds that core until the state closes, and with it every
/// function that could call this.
unsafe fn core_of<'a>(state: *mut ffi::lua_State) -> &'a Core {
    &*(ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)) as *const Core)
}

/// Runs `work`; a panic (a bug) becomes a Lua error instead of unwinding into Lua's C.
///
/// # Safety
/// `state` is the calling Lua state, and the caller keeps no Rust value that needs dropping
/// alive across this call (lua_error does not return, it jumps).
unsafe fn guarded<T>(state: *mut ffi::lua_State, work: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(value) => value,
        Err(panic) => {
            drop(panic);
            ffi::lua_pushstring(state, c"websocket_native: internal error".as_ptr());
            ffi::lua_error(state)
        }
    }
}

/// `any_raised()`: whether a step has work without waiting (see Core::any_raised). Extra
/// arguments are ignored, so it serves as a `dirty` method too.
unsafe extern "C-unwind" fn any_raised(state: *mut ffi::lua_State) -> c_int {
    let raised = guarded(state, || core_of(state).any_raised());
    ffi::lua_pushboolean(state, c_int::from(raised));
    1
}

/// `serving()`: whether some connection needs the core stepped although no Lua call waits
/// on it.
unsafe extern "C-unwind" fn serving(state: *mut ffi::lua_State) -> c_int {
    let serving = guarded(state, || core_of(state).is_serving());
    ffi::lua_pushboolean(state, c_int::from(serving));
    1
}

/// How many ids one step hands to Lua at most; the others stay raised, so that copas' next
/// select finds the core dirty and the next step hands them over.
const IDS_PER_STEP: usize = 256;

/// `step([ids])`: does what is ready without waiting; given a table, also fills
/// `ids[1..n]` with the ids of (at most IDS_PER_STEP) handles whose flags went up and
/// returns n.
unsafe extern "C-unwind" fn step(state: *mut ffi::lua_State) -> c_int {
    let filling = ffi::lua_type(state, 1) == ffi::LUA_TTABLE
        && ffi::lua_checkstack(state, IDS_PER_STEP as c_int + 1) != 0;
    // The ids go on Lua's stack first (pushing cannot fail after lua_checkstack), and into
    // the table once no Rust value is alive: storing them may raise a memory error.
    let count = guarded(state, || {
        let core = core_of(state);
        core.step();
        if !filling {
            return 0;
        }
        core.with_raised_up_to(IDS_PER_STEP, |ids| {
            for id in ids {
                ffi::lua_pushinteger(state, *id as ffi::lua_Integer);
            }
            ids.len()
        })
    });
    for index in (1..=count).rev() {
        ffi::lua_rawseti(state, 1, index as _);
    }
    ffi::lua_pushinteger(state, count as ffi::lua_Integer);
    1
}

/// `constant(value)`'s closures: return their upvalue, whatever the arguments (a `getfd`
/// method that luasocket's select calls twice per object and select).
unsafe extern "C-unwind" fn upvalue(state: *mut ffi::lua_State) -> c_int {
    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
    1
}

/// `constant(value)`: a C function that returns `value`.
unsafe extern "C-unwind" fn constant(state: *mut ffi::lua_State) -> c_int {
    ffi::lua_settop(state, 1);
    ffi::lua_pushcclosure(state, upvalue, 1);
    1
}

/// The helper every closure below keeps as its second upvalue: pushes the string of
/// `length` bytes at `pointer` (its arguments). Called under lua_pcall, so that a memory
/// error comes back as a status instead of jumping over the Rust frames that own the bytes.
unsafe extern "C-unwind" fn push_string(state: *mut ffi::lua_State) -> c_int {
    let pointer = ffi::lua_touserdata(state, 1) as *const std::ffi::c_char;
    let length = ffi::lua_tointeger(state, 2) as usize;
    ffi::lua_pushlstring(state, pointer, length);
    1
}

/// Pushes `bytes` as a Lua string; false when Lua ran out of memory (its error is pushed
/// instead, for the caller to raise once nothing of Rust's is alive).
unsafe fn push_bytes(state: *mut ffi::lua_State, bytes: &[u8]) -> bool {
    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(2));
    ffi::lua_pushlightuserdata(state, bytes.as_ptr() as *mut std::ffi::c_void);
    ffi::lua_pushinteger(state, bytes.len() as ffi::lua_Integer);
    ffi::lua_pcall(state, 2, 1, 0) == ffi::LUA_OK
}

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
    let room = ffi::lua_checkstack(state, 8) != 0;
    (is_number != 0 && id > 0 && room).then_some(id as u64)
}

/// Pushes PENDING: the call would have to wait.
unsafe fn push_pending(state: *mut ffi::lua_State) -> (c_int, bool) {
    ffi::lua_pushlightuserdata(state, pending().0);
    (1, true)
}

/// `receive(id, step_first)`: a connection's receive (see nonblocking::receive_on):
/// `message, opcode`, `nil, nil, was_clean, code, reason`, PENDING, or false (not here).
unsafe extern "C-unwind" fn receive(state: *mut ffi::lua_State) -> c_int {
    let Some(id) = handle_to_serve(state) else {
        return not_here(state);
    };
    let step_first = ffi::lua_toboolean(state, 2) != 0;
    let outcome = guarded(state, || {
        let core = core_of(state);
        receive_on(core, &*core.pump(id)?, step_first)
    });
    let (count, pushed) = match &outcome {
        None => return not_here(state),
        Some(Poll::Pending) => push_pending(state),
        Some(Poll::Ready(Ok(message))) => {
            let pushed = push_bytes(state, &message.payload);
            if pushed {
                let opcode = if message.is_text { TEXT } else { BINARY };
                ffi::lua_pushinteger(state, opcode);
            }
            (2, pushed)
        }
        Some(Poll::Ready(Err(ending))) => (5, push_ending(state, ending, 2)),
    };
    drop(outcome);
    finish(state, count, pushed)
}

/// Pushes `nil` `nils` times, then `was_clean, code, reason`; false as push_bytes.
unsafe fn push_ending(state: *mut ffi::lua_State, ending: &Ending, nils: usize) -> bool {
    for _ in 0..nils {
        ffi::lua_pushnil(state);
    }
    ffi::lua_pushboolean(state, c_int::from(ending.clean));
    ffi::lua_pushinteger(state, ffi::lua_Integer::from(ending.code));
    push_bytes(state, ending.reason.as_bytes())
}

/// Returns `count` results, or raises the memory error a push left on the stack.
///
/// # Safety
/// Nothing of Rust's that needs dropping is alive in the caller (lua_error jumps).
unsafe fn finish(state: *mut ffi::lua_State, count: c_int, pushed: bool) -> c_int {
    if !pushed {
        ffi::lua_error(state);
    }
    count
}

/// The message `send(id, payload, opcode)` asks for, when it is the usual kind: a string,
/// TEXT (valid UTF-8) or BINARY. Anything else is for the full method to judge and word.
unsafe fn usual_message(state: *mut ffi::lua_State) -> Option<Message> {
    if ffi::lua_type(state, 2) != ffi::LUA_TSTRING {
        return None;
    }
    let opcode = match ffi::lua_type(state, 3) {
        ffi::LUA_TNIL | ffi::LUA_TNONE => TEXT,
        ffi::LUA_TNUMBER => {
            let number = ffi::lua_tonumber(state, 3);
            if number == TEXT as f64 {
                TEXT
            } else if number == BINARY as f64 {
                BINARY
            } else {
                return None;
            }
        }
        _ => return None,
    };
    let mut length = 0;
    let pointer = ffi::lua_tolstring(state, 2, &mut length) as *const u8;
    let bytes = Bytes::copy_from_slice(std::slice::from_raw_parts(pointer, length));
    if opcode == BINARY {
        return Some(Message::Binary(bytes));
    }
    Utf8Bytes::try_from(bytes).ok().map(Message::Text)
}

/// `send(id, payload, opcode)`: a connection's send of the usual kind of message: `true`,
/// `nil, was_clean, code, reason`, PENDING, or false (not here).
unsafe extern "C-unwind" fn send(state: *mut ffi::lua_State) -> c_int {
    let Some(id) = handle_to_serve(state) else {
        return not_here(state);
    };
    let outcome = guarded(state, || {
        let message = usual_message(state)?;
        let core = core_of(state);
        send_on(core, &*core.pump(id)?, message)
    });
    let (count, pushed) = match &outcome {
        None => return not_here(state),
        Some(Poll::Pending) => push_pending(state),
        Some(Poll::Ready(Ok(()))) => {
            ffi::lua_pushboolean(state, 1);
            (1, true)
        }
        Some(Poll::Ready(Err(ending))) => (4, push_ending(state, ending, 1)),
    };
    drop(outcome);
    finish(state, count, pushed)
}

/// A C closure over `core` calling `function`, with push_string as its second upvalue.
fn c_closure_pushing(
    lua: &Lua,
    core: &Rc<Core>,
    function: ffi::lua_CFunction,
) -> mlua::Result<Function> {
    let pointer = Rc::as_ptr(core) as *mut std::ffi::c_void;
    // SAFETY: pushes a light userdata, a C function and a closure over both on the stack
    // exec_raw gave us.
    unsafe {
        lua.exec_raw((), |state| {
            ffi::lua_pushlightuserdata(state, pointer);
            ffi::lua_pushcclosure(state, push_string, 0);
            ffi::lua_pushcclosure(state, function, 2);
        })
    }
}

/// A C closure over `core` calling `function`.
fn c_closure(lua: &Lua, core: &Rc<Core>, function: ffi::lua_CFunction) -> mlua::Result<Function> {
    let pointer = Rc::as_ptr(core) as *mut std::ffi::c_void;
    // SAFETY: pushes a light userdata and a closure over it on the stack exec_raw gave us.
    unsafe {
        lua.exec_raw((), |state| {
            ffi::lua_pushlightuserdata(state, pointer);
            ffi::lua_pushcclosure(state, function, 1);
        })
    }
}

/// `fast_functions()`: a table of the functions above that need the core (created now, if
/// it was not): `any_raised`, `serving`, `step`, `receive`, `send`. Only the copas flavours
/// ask for it, when they load: a program that loads the module and forks before using it
/// gets a core of its own in each process.
pub fn table(lua: &Lua) -> mlua::Result<mlua::Table> {
    let core = Core::of(lua)?;
    let functions = lua.create_table()?;
    functions.set("any_raised", c_closure(lua, &core, any_raised)?)?;
    functions.set("serving", c_closure(lua, &core, serving)?)?;
    functions.set("step", c_closure(lua, &core, step)?)?;
    functions.set("receive", c_closure_pushing(lua, &core, receive)?)?;
    functions.set("send", c_closure_pushing(lua, &core, send)?)?;
    Ok(functions)
}

/// `constant`, which needs no core.
pub fn constant_function(lua: &Lua) -> mlua::Result<Function> {
    // SAFETY: a C function without upvalues.
    unsafe { lua.create_c_function(constant) }
}
