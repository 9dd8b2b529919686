//! What every connection of a client or server is set up with (binding/options.rs reads it
//! from Lua).

use std::path::PathBuf;

use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::connection::keepalive::KeepaliveSettings;
use crate::net::deflate::Wishes;
use crate::net::proxy::ProxyChoice;

/// What every connection of a client or server is set up with.
#[derive(Clone)]
pub struct ConnectionSettings {
    pub config: WebSocketConfig,
    pub keepalive: Option<KeepaliveSettings>,
    /// Messages read ahead for a later receive.
    pub max_queue: usize,
    /// Extra request headers of a client (checked already).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// How a client finds its HTTP proxy.
    pub proxy: ProxyChoice,
    /// A client's unix socket, instead of the URL's host and port.
    pub unix: Option<PathBuf>,
    /// permessage-deflate: what a client offers, or what a server accepts.
    pub compression: Option<Wishes>,
}

/// Messages a connection reads ahead by default.
pub const DEFAULT_MAX_QUEUE: usize = 16;

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            config: small_buffers(),
            keepalive: None,
            max_queue: DEFAULT_MAX_QUEUE,
            headers: Vec::new(),
            proxy: ProxyChoice::default(),
            unix: None,
            compression: None,
        }
    }
}

/// Every connection's tungstenite settings before the size limits. tungstenite zero-fills
/// its whole read buffer before each read, found data or not, so it stays small (128 KiB,
/// the default, cost about 4 microseconds a message); BatchedRead makes the large reads.
/// Frames go to the socket as they are written (no write buffer to hold them).
pub fn small_buffers() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}
