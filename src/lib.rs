//! `websocket_native`: the native core of lua-websockets-rs.
//!
//! Only the Lua facade (`lua/websocket/*.lua`) loads this module; it exposes plain
//! constructors and leaves the lua-websockets API shape to Lua.
//!
//! # Layout
//! One folder per layer, each importing only the layers listed before it:
//! - `net/`: the bytes under a WebSocket (transport, TLS, batched reads, frames written
//!   around tungstenite, HTTP heads, where messages end, the memory budget, error words);
//! - `connection/`: one WebSocket as async Rust (open, receive, send, close, keepalive,
//!   settings, the request a server connection came with);
//! - `runtime/`: the per-Lua-state core (a tokio runtime the Lua thread runs), its doorbell,
//!   wakers and timers;
//! - `copas/`: connections whose calls never wait (the copas client, server connections);
//! - `sync/`: the sync client;
//! - `server/`: accepting, the handshake stages, broadcast groups, the Redis cluster;
//! - `binding/`: Lua arguments in, results out, the C functions of the hot path.
//!
//! The userdata of each flavour (`copas/nonblocking/handle.rs`, `sync/client.rs`,
//! `sync/client_fast.rs`, `server/lua_api.rs`) still sits in its layer and imports
//! `binding/`; they are the next to move there.

mod binding;
mod connection;
mod copas;
mod net;
mod runtime;
mod server;
mod sync;

use mlua::prelude::*;

#[cfg_attr(feature = "module", mlua::lua_module)]
pub fn websocket_native(lua: &Lua) -> LuaResult<LuaTable> {
    binding::pin::keep_library_loaded();
    let exports = lua.create_table()?;
    exports.set(
        "sync_client",
        lua.create_function(sync::client::new_sync_client)?,
    )?;
    exports.set(
        "copas_client",
        lua.create_function(copas::nonblocking::new_client)?,
    )?;
    exports.set("listen", lua.create_function(server::listen)?)?;
    exports.set("PENDING", copas::nonblocking::pending())?;
    // What the copas flavours call on every message, as plain C functions.
    exports.set(
        "fast_functions",
        lua.create_function(|lua, ()| binding::fast_calls::table(lua))?,
    )?;
    exports.set("constant", binding::fast_calls::constant_function(lua)?)?;
    exports.set(
        "doorbell_fd",
        lua.create_function(|lua, ()| Ok(runtime::core::Core::of(lua)?.doorbell_fd()))?,
    )?;
    exports.set(
        "silent_fd",
        lua.create_function(|lua, ()| Ok(runtime::core::Core::of(lua)?.silent_fd()))?,
    )?;
    // Waits (blocking) until the core may have work, at most `seconds`: for calls made
    // outside any coroutine.
    exports.set(
        "park",
        lua.create_function(|lua, seconds: Option<f64>| {
            let limit = seconds.map(|s| std::time::Duration::from_secs_f64(s.max(0.0)));
            runtime::core::Core::of(lua)?.park(limit);
            Ok(())
        })?,
    )?;
    // Fills `ids` (a table) with the ids of the handles whose flags went up since the last
    // call and returns how many: which waiting coroutines to wake.
    exports.set(
        "take_raised",
        lua.create_function(|lua, ids: LuaTable| {
            take_raised_into(&*runtime::core::Core::of(lua)?, &ids)
        })?,
    )?;
    exports.set(
        "now",
        lua.create_function(|lua, ()| Ok(runtime::core::Core::of(lua)?.now()))?,
    )?;
    // The memory budget of incoming data: bytes charged now, and the limit.
    exports.set(
        "incoming_budget",
        lua.create_function(|_, ()| Ok((net::memory_budget::used(), net::memory_budget::limit())))?,
    )?;
    exports.set(
        "busy",
        lua.create_function(|lua, ()| Ok(runtime::core::Core::of(lua)?.has_background_work()))?,
    )?;
    Ok(exports)
}

/// Moves the raised queue into `ids[1..n]` and returns n.
fn take_raised_into(core: &runtime::core::Core, ids: &LuaTable) -> LuaResult<usize> {
    let mut raised = Vec::new();
    core.take_raised(&mut raised);
    for (index, id) in raised.iter().enumerate() {
        ids.raw_set(index + 1, *id)?;
    }
    Ok(raised.len())
}
