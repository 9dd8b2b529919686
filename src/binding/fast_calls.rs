//! The core's functions that a copas loop calls on every message, as plain C functions.
//!
//! A function made by mlua costs about 400 instructions more per call than a C function
//! (it protects the call, converts arguments and results, and finds the core in the
//! state's app data), and copas asks these several times per message: whether the core has
//! work (`any_raised`, at every select) and to step it (`step`), a connection's `receive`
//! and `send` run once or twice a message, and a wait with a timeout reads the clock
//! (`now`) twice. Here each is a C closure whose upvalue
//! points at the core; `constant` makes the `getfd` methods copas' select calls. `receive`
//! and `send` reach a connection by its handle's id and serve the usual cases only; for the
//! rest they answer false, and Lua makes the full method call.

use std::ffi::c_int;
use std::rc::Rc;
use std::task::Poll;

use mlua::{ffi, Function, Lua};

use crate::binding::raw_calls::{guarded, push_received, push_sent, usual_payload};
use crate::copas::nonblocking::{pending, receive_on, send_payload_on};
use crate::runtime::core::Core;

/// The core a function's first upvalue points at.
///
/// # Safety
/// Only for the closures made by `c_closure`, whose upvalue is the core of their Lua
/// state: the state's app data holds that core until the state closes, and with it every
/// function that could call this.
unsafe fn core_of<'a>(state: *mut ffi::lua_State) -> &'a Core {
    &*(ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)) as *const Core)
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

/// `now()`: seconds on the core's clock (Core::now), for the deadlines of waiting calls:
/// a copas call with a timeout reads it twice a wait.
unsafe extern "C-unwind" fn now(state: *mut ffi::lua_State) -> c_int {
    let seconds = guarded(state, || core_of(state).now());
    ffi::lua_pushnumber(state, seconds);
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
unsafe fn push_pending(state: *mut ffi::lua_State) -> c_int {
    ffi::lua_pushlightuserdata(state, pending().0);
    1
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
    match outcome {
        None => not_here(state),
        Some(Poll::Pending) => push_pending(state),
        Some(Poll::Ready(received)) => push_received(state, received),
    }
}

/// `send(id, payload, opcode)`: a connection's send of the usual kind of message: `true`,
/// `nil, was_clean, code, reason`, PENDING, or false (not here).
unsafe extern "C-unwind" fn send(state: *mut ffi::lua_State) -> c_int {
    let Some(id) = handle_to_serve(state) else {
        return not_here(state);
    };
    let outcome = guarded(state, || {
        let (payload, is_text) = usual_payload(state)?;
        let core = core_of(state);
        send_payload_on(core, &*core.pump(id)?, payload, is_text)
    });
    match outcome {
        None => not_here(state),
        Some(Poll::Pending) => push_pending(state),
        Some(Poll::Ready(sent)) => push_sent(state, sent),
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
/// it was not): `any_raised`, `serving`, `step`, `now`, `receive`, `send`. Only the copas flavours
/// ask for it, when they load: a program that loads the module and forks before using it
/// gets a core of its own in each process.
pub fn table(lua: &Lua) -> mlua::Result<mlua::Table> {
    let core = Core::of(lua)?;
    let functions = lua.create_table()?;
    functions.set("any_raised", c_closure(lua, &core, any_raised)?)?;
    functions.set("serving", c_closure(lua, &core, serving)?)?;
    functions.set("step", c_closure(lua, &core, step)?)?;
    functions.set("now", c_closure(lua, &core, now)?)?;
    functions.set("receive", c_closure(lua, &core, receive)?)?;
    functions.set("send", c_closure(lua, &core, send)?)?;
    Ok(functions)
}

/// `constant`, which needs no core.
pub fn constant_function(lua: &Lua) -> mlua::Result<Function> {
    // SAFETY: a C function without upvalues.
    unsafe { lua.create_c_function(constant) }
}
