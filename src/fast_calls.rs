//! The core's functions that a copas loop calls on every message, as plain C functions.
//!
//! A function made by mlua costs about 400 instructions more per call than a C function
//! (it protects the call, converts arguments and results, and finds the core in the
//! state's app data), and copas asks these several times per message: whether the core has
//! work (`any_raised`, at every select) and to step it (`step`). Here each is a C closure
//! whose upvalue points at the core; `constant` makes the `getfd` methods copas' select
//! calls.

use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use mlua::{ffi, Function, Lua};

use crate::core::Core;

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
        Err(_) => {
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

/// Adds the fast functions to the module's table.
pub fn export(lua: &Lua, exports: &mlua::Table) -> mlua::Result<()> {
    let core = Core::of(lua)?;
    exports.set("any_raised", c_closure(lua, &core, any_raised)?)?;
    exports.set("serving", c_closure(lua, &core, serving)?)?;
    exports.set("step", c_closure(lua, &core, step)?)?;
    // SAFETY: a C function without upvalues.
    exports.set("constant", unsafe { lua.create_c_function(constant)? })?;
    Ok(())
}
