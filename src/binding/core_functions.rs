//! The functions of the per-Lua-state core that the facade calls: its descriptors for
//! copas' select, waiting outside any coroutine, which handles to wake, its clock, the
//! memory budget. The ones called on every message are C functions too (see raw.rs).

use std::rc::Rc;
use std::time::Duration;

use mlua::{Lua, Table};

use crate::net::memory_budget;
use crate::runtime::core::Core;

pub(crate) mod raw;

/// The core of this Lua state, started on first use and kept in the state's app data
/// until the state closes.
pub(crate) fn core_of(lua: &Lua) -> mlua::Result<Rc<Core>> {
    if let Some(core) = lua.app_data_ref::<Rc<Core>>() {
        return Ok(Rc::clone(&core));
    }
    let core = Core::start()
        .map_err(|err| mlua::Error::runtime(format!("cannot start the I/O core: {err}")))?;
    let core = Rc::new(core);
    lua.set_app_data(Rc::clone(&core));
    Ok(core)
}

/// Adds the core's functions to the module's `exports`.
pub(crate) fn export(lua: &Lua, exports: &Table) -> mlua::Result<()> {
    exports.set(
        "raw_functions",
        lua.create_function(|lua, ()| raw::table(lua))?,
    )?;
    exports.set("constant", raw::constant_function(lua)?)?;
    exports.set(
        "doorbell_fd",
        lua.create_function(|lua, ()| Ok(core_of(lua)?.doorbell_fd()))?,
    )?;
    exports.set(
        "silent_fd",
        lua.create_function(|lua, ()| Ok(core_of(lua)?.silent_fd()))?,
    )?;
    // Waits (blocking) until the core may have work, at most `seconds`: for calls made
    // outside any coroutine.
    exports.set(
        "park",
        lua.create_function(|lua, seconds: Option<f64>| {
            let limit = seconds.map(|s| Duration::from_secs_f64(s.max(0.0)));
            core_of(lua)?.park(limit);
            Ok(())
        })?,
    )?;
    // Fills `ids` (a table) with the ids of the handles whose flags went up since the last
    // call and returns how many: which waiting coroutines to wake.
    exports.set(
        "take_raised",
        lua.create_function(|lua, ids: Table| {
            let mut raised = Vec::new();
            core_of(lua)?.take_raised(&mut raised);
            for (index, id) in raised.iter().enumerate() {
                ids.raw_set(index + 1, *id)?;
            }
            Ok(raised.len())
        })?,
    )?;
    exports.set(
        "now",
        lua.create_function(|lua, ()| Ok(core_of(lua)?.now()))?,
    )?;
    // The memory budget of incoming data: bytes charged now, and the limit.
    exports.set(
        "incoming_budget",
        lua.create_function(|_, ()| Ok((memory_budget::used(), memory_budget::limit())))?,
    )?;
    exports.set(
        "busy",
        lua.create_function(|lua, ()| Ok(core_of(lua)?.has_background_work()))?,
    )?;
    Ok(())
}
