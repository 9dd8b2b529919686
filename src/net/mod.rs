//! The bytes under a WebSocket: the transport tungstenite reads and writes (TCP or TLS,
//! batched reads, frames written around tungstenite), what is known from those bytes (HTTP
//! heads, where messages end), what a connection may hold of them (the memory budget),
//! addresses, and the words for socket and protocol errors. Nothing here knows about Lua or
//! about connections above a stream.

pub(crate) mod address;
pub(crate) mod batched_read;
pub(crate) mod data_frame;
pub(crate) mod deflate;
pub(crate) mod departure;
pub(crate) mod http_head;
pub(crate) mod inner_io;
pub(crate) mod memory_budget;
pub(crate) mod message_count;
pub(crate) mod proxy;
pub(crate) mod resolve;
pub(crate) mod socket;
pub(crate) mod socket_error;
pub(crate) mod tls;
pub(crate) mod transport;
pub(crate) mod ws_error;
