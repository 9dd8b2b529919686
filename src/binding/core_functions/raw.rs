//! The core's functions that a copas loop calls on every message, as plain C functions
//! (the mlua twins of `now` and the others are in the parent module).
//!
//! A function made by mlua costs about 400 instructions more per call than a C function
//! (it protects the call, converts arguments and results, and finds the core in the
//! state's app data), and copas asks these several times per message: whether the core has
//! work (`any_raised`, at every select) and to step it (`step`), a connection's `receive`
//! and `send` run once or twice a message (copas_connection/raw.rs), and a wait with a
//! timeout reads the clock (`now`) twice. Here each is a C closure whose upvalue points at
//! the core; `constant` makes the `getfd` methods copas' select calls.

use std::ffi::c_int;
use std::rc::Rc;

use mlua::{ffi, Function, Lua};

use super::core_of;
use crate::binding::copas_connection::raw::{receive, send};
use crate::binding::raw::guarded;
use crate::runtime::core::Core;

/// The core a function's first upvalue points at.
///
/// # Safety
/// Only for the closures made by `c_closure`, whose upvalue is the core of their Lua
/// state: the state's app data holds that core until the state closes, and with it every
/// function that could call this.
pub(crate) unsafe fn closure_core<'a>(state: *mut ffi::lua_State) -> &'a Core {
    &*(ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)) as *const Core)
}

/// `any_raised()`: whether a step has work without waiting (see Core::any_raised). Extra
/// arguments are ignored, so it serves as a `dirty` method too.
unsafe extern "C-unwind" fn any_raised(state: *mut ffi::lua_State) -> c_int {
    let raised = guarded(state, || closure_core(state).any_raised());
    ffi::lua_pushboolean(state, c_int::from(raised));
    1
}

/// `serving()`: whether some connection needs the core stepped although no Lua call waits
/// on it.
unsafe extern "C-unwind" fn serving(state: *mut ffi::lua_State) -> c_int {
    let serving = guarded(state, || closure_core(state).is_serving());
    ffi::lua_pushboolean(state, c_int::from(serving));
    1
}

/// `now()`: seconds on the core's clock (Core::now), for the deadlines of waiting calls:
/// a copas call with a timeout reads it twice a wait.
unsafe extern "C-unwind" fn now(state: *mut ffi::lua_State) -> c_int {
    let seconds = guarded(state, || closure_core(state).now());
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
        let core = closure_core(state);
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

/// `raw_functions()`: a table of the functions above that need the core (started now, if
/// it was not): `any_raised`, `serving`, `step`, `now`, and a connection's `receive` and
/// `send`. Only the copas flavours ask for it, when they load: a program that loads the
/// module and forks before using it gets a core of its own in each process.
pub(crate) fn table(lua: &Lua) -> mlua::Result<mlua::Table> {
    let core = core_of(lua)?;
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
pub(crate) fn constant_function(lua: &Lua) -> mlua::Result<Function> {
    // SAFETY: a C function without upvalues.
    unsafe { lua.create_c_function(constant) }
}
