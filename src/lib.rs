//! `websocket_native`: the native core of lua-websockets-rs.
//!
//! Only the Lua facade (`lua/websocket/*.lua`) loads this module; it exposes plain
//! constructors and leaves the lua-websockets API shape to Lua.

pub mod address;
mod batched_read;
mod call_timer;
mod client;
mod client_fast;
mod cluster;
mod connect;
mod connection;
mod core;
mod data_frame;
mod departure;
mod doorbell;
mod fast_calls;
pub mod http_head;
mod inner_io;
mod keepalive;
mod memory_budget;
mod message_count;
mod nonblocking;
mod options;
mod pin;
mod raw_calls;
mod reactor_fd;
mod ready;
mod request;
pub mod resolve;
mod results;
mod server;
pub mod socket_error;
pub mod tls;
mod transport;
mod ws_error;

use mlua::prelude::*;

#[cfg_attr(feature = "module", mlua::lua_module)]
pub fn websocket_native(lua: &Lua) -> LuaResult<LuaTable> {
    pin::keep_library_loaded();
    let exports = lua.create_table()?;
    exports.set("sync_client", lua.create_function(client::new_sync_client)?)?;
    exports.set(
        "copas_client",
        lua.create_function(nonblocking::new_client)?,
    )?;
    exports.set("listen", lua.create_function(server::listen)?)?;
    exports.set("PENDING", nonblocking::pending())?;
    // What the copas flavours call on every message, as plain C functions.
    exports.set(
        "fast_functions",
        lua.create_function(|lua, ()| fast_calls::table(lua))?,
    )?;
    exports.set("constant", fast_calls::constant_function(lua)?)?;
    exports.set(
        "doorbell_fd",
        lua.create_function(|lua, ()| Ok(core::Core::of(lua)?.doorbell_fd()))?,
    )?;
    exports.set(
        "silent_fd",
        lua.create_function(|lua, ()| Ok(core::Core::of(lua)?.silent_fd()))?,
    )?;
    // Waits (blocking) until the core may have work, at most `seconds`: for calls made
    // outside any coroutine.
    exports.set(
        "park",
        lua.create_function(|lua, seconds: Option<f64>| {
            let limit = seconds.map(|s| std::time::Duration::from_secs_f64(s.max(0.0)));
            core::Core::of(lua)?.park(limit);
            Ok(())
        })?,
    )?;
    // Fills `ids` (a table) with the ids of the handles whose flags went up since the last
    // call and returns how many: which waiting coroutines to wake.
    exports.set(
        "take_raised",
        lua.create_function(|lua, ids: LuaTable| take_raised_into(&*core::Core::of(lua)?, &ids))?,
    )?;
    exports.set(
        "now",
        lua.create_function(|lua, ()| Ok(core::Core::of(lua)?.now()))?,
    )?;
    // The memory budget of incoming data: bytes charged now, and the limit.
    exports.set(
        "incoming_budget",
        lua.create_function(|_, ()| Ok((memory_budget::used(), memory_budget::limit())))?,
    )?;
    exports.set(
        "busy",
        lua.create_function(|lua, ()| Ok(core::Core::of(lua)?.has_background_work()))?,
    )?;
    Ok(exports)
}

/// Moves the raised queue into `ids[1..n]` and returns n.
fn take_raised_into(core: &core::Core, ids: &LuaTable) -> LuaResult<usize> {
    let mut raised = Vec::new();
    core.take_raised(&mut raised);
    for (index, id) in raised.iter().enumerate() {
        ids.raw_set(index + 1, *id)?;
    }
    Ok(raised.len())
}
