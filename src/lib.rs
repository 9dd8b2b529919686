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
//! - `binding/`: the only code that names mlua: Lua arguments in, results out, each
//!   flavour's userdata, and beside each the C functions of its hot path (`raw`).

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
        lua.create_function(binding::sync_client::new_sync_client)?,
    )?;
    exports.set(
        "copas_client",
        lua.create_function(binding::copas_connection::new_client)?,
    )?;
    exports.set("listen", lua.create_function(binding::server::listen)?)?;
    exports.set("PENDING", binding::contract::pending())?;
    exports.set(
        "check_send",
        lua.create_function(binding::options::check_send)?,
    )?;
    binding::core_functions::export(lua, &exports)?;
    exports.set("shared", shared_table(lua)?)?;
    Ok(exports)
}

/// A table every load of the module in one Lua state shares (a test runner that unloads
/// and requires the Lua modules again gets the same one): what must stay one per state,
/// such as the loop watches on the core's doorbell.
fn shared_table(lua: &Lua) -> LuaResult<LuaTable> {
    const KEY: &str = "websocket_native.shared";
    if let Some(table) = lua.named_registry_value::<Option<LuaTable>>(KEY)? {
        return Ok(table);
    }
    let table = lua.create_table()?;
    lua.set_named_registry_value(KEY, &table)?;
    Ok(table)
}

#[cfg(test)]
mod layout {
    //! The layout above, checked: a folder's files name only the folders listed before it.

    use std::path::{Path, PathBuf};

    const LAYERS: [&str; 7] = [
        "net",
        "connection",
        "runtime",
        "copas",
        "sync",
        "server",
        "binding",
    ];

    fn rust_files(folder: &Path, found: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(folder).expect("a source folder");
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path);
            }
        }
    }

    #[test]
    fn imports_run_from_higher_layers_to_lower_ones_and_only_binding_names_mlua() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut wrong = Vec::new();
        for (rank, layer) in LAYERS.iter().enumerate() {
            let mut files = Vec::new();
            rust_files(&src.join(layer), &mut files);
            assert!(!files.is_empty(), "no files in src/{layer}");
            for file in files {
                let text = std::fs::read_to_string(&file).expect("a source file");
                for higher in &LAYERS[rank + 1..] {
                    if text.contains(&format!("crate::{higher}::")) {
                        wrong.push(format!("{} uses {higher}/", file.display()));
                    }
                }
                if *layer != "binding" && text.contains("mlua") {
                    wrong.push(format!("{} names mlua", file.display()));
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
