//! Connections whose every call returns at once, for copas: the copas client and the
//! server's connections (Lua waits on the doorbell and calls again).

pub(crate) mod connection;
pub(crate) mod driven;
pub(crate) mod member;
