//! The sync client: every call blocks in the core until it is done.

pub(crate) mod client;
