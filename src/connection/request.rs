//! What a server connection knows of its request, for `request` in `on_request` and
//! `ws.request` in handlers (binding/request_table.rs makes the Lua table). It keeps the raw head (a few hundred bytes) and makes the Lua
//! table only when Lua asks: most handlers never look, and 10,000 idle connections should
//! not each hold a table of headers.

use std::net::SocketAddr;

use crate::net::http_head;

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

    /// The request head, parsed again (it was parsed once when it arrived).
    pub fn head(&self) -> Result<http_head::RequestHead, http_head::HeadError> {
        http_head::parse_request(&self.head)
    }

    /// The peer's address and port.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the request came over TLS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }
}
