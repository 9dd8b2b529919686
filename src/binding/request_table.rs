//! A connection's request as the Lua table `request` (in `on_request`, and `ws.request`).

use mlua::{Lua, Table};

use crate::connection::request::RequestInfo;

/// `request`: method, path, headers, protocols, address, port, secure.
pub fn request_table(lua: &Lua, info: &RequestInfo) -> mlua::Result<Table> {
    let head = info
        .head()
        .map_err(|err| mlua::Error::runtime(format!("request head: {err:?}")))?;
    let peer = info.peer();
    let request = lua.create_table()?;
    request.set("method", head.method)?;
    request.set("path", head.path)?;
    request.set("headers", lua.create_table_from(head.headers)?)?;
    request.set("protocols", lua.create_sequence_from(head.protocols)?)?;
    request.set("address", peer.ip().to_canonical().to_string())?;
    request.set("port", peer.port())?;
    request.set("secure", info.is_secure())?;
    Ok(request)
}
