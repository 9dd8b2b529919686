//! `websocket_native`: the native core of lua-websockets-rs.
//!
//! Only the Lua facade (`lua/websocket/*.lua`) loads this module; it exposes plain
//! constructors and leaves the lua-websockets API shape to Lua.

pub mod address;
mod client;
mod connection;
mod core;
mod options;
mod pin;
pub mod resolve;
pub mod socket_error;
pub mod tls;
mod ws_error;

use mlua::prelude::*;

#[cfg_attr(feature = "module", mlua::lua_module)]
pub fn websocket_native(lua: &Lua) -> LuaResult<LuaTable> {
    pin::keep_library_loaded();
    let exports = lua.create_table()?;
    exports.set("sync_client", lua.create_function(client::new_sync_client)?)?;
    Ok(exports)
}
