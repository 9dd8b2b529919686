//! What a server connection knows of its request, for `request` in `on_request` and
//! `ws.request` in handlers. It keeps the raw head (a few hundred bytes) and makes the Lua
//! table only when Lua asks: most handlers never look, and 10,000 idle connections should
//! not each hold a table of headers.

use std::net::SocketAddr;

use mlua::{Lua, Table};

use crate::http_head;

pub struct RequestInfo {
    /// The request head as received, up to and including its blank line.
    head: Box<[u8]>,
    peer: SocketAddr,
    secure: bool,
}

impl RequestInfo {
    pub fn new(head: &[u8], peer: SocketAddr, secure: bool) -> Self {
        RequestInfo {
            head: head.into(),
            peer,
            secure,
        }
    }

    /// `request`: method, path, headers, protocols, address, port, secure.
    pub fn to_lua(&self, lua: &Lua) -> mlua::Result<Table> {
        // The head was parsed once already, when it arrived.
        let head = http_head::parse_request(&self.head)
            .map_err(|err| mlua::Error::runtime(format!("request head: {err:?}")))?;
        let request = lua.create_table()?;
        request.set("method", head.method)?;
        request.set("path", head.path)?;
        request.set("headers", lua.create_table_from(head.headers)?)?;
        request.set("protocols", lua.create_sequence_from(head.protocols)?)?;
        request.set("address", self.peer.ip().to_canonical().to_string())?;
        request.set("port", self.peer.port())?;
        request.set("secure", self.secure)?;
        Ok(request)
    }
}
