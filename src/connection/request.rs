//! What a server connection knows of its request, for `request` in `on_request` and
//! `ws.request` in handlers (binding/request_table.rs makes the Lua table). It keeps the raw head (a few hundred bytes) and makes the Lua
//! table only when Lua asks: most handlers never look, and 10,000 idle connections should
//! not each hold a table of headers.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::net::http_head;

/// Where a request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A TCP peer's address and port.
    Inet(SocketAddr),
    /// A peer on the server's unix socket (the path it listens on: the peer's own end has
    /// no name).
    Unix(Arc<Path>),
}

pub struct RequestInfo {
    /// The request head as received, up to and including its blank line.
    head: Box<[u8]>,
    peer: Peer,
    secure: bool,
}

impl RequestInfo {
    pub fn new(head: &[u8], peer: Peer, secure: bool) -> Self {
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

    /// Where the request came from.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Whether the request came over TLS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }
}
