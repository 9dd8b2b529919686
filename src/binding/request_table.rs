//! A connection's request as the Lua table `request` (in `on_request`, and `ws.request`).

use mlua::{Lua, Table};

use crate::connection::request::{Peer, RequestInfo};

/// `request`: method, path, headers, protocols, address, port, family, secure. A request on
/// a unix socket has the socket's path as its address, no port and the family `'unix'`.
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
    match peer {
        Peer::Inet(address) => {
            let ip = address.ip().to_canonical();
            request.set("address", ip.to_string())?;
            request.set("port", address.port())?;
            request.set("family", if ip.is_ipv4() { "inet" } else { "inet6" })?;
        }
        Peer::Unix(path) => {
            request.set("address", path.to_string_lossy())?;
            request.set("family", "unix")?;
        }
    }
    request.set("secure", info.is_secure())?;
    Ok(request)
}
