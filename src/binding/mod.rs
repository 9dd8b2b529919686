//! The only layer that names mlua: Lua arguments in (options), results out (results,
//! written once for both kinds of function), the values of the API (contract), and the
//! userdata of each flavour with, in a `raw` child module, the C functions of its hot path.

pub(crate) mod contract;
pub(crate) mod copas_connection;
pub(crate) mod core_functions;
pub(crate) mod options;
pub(crate) mod pin;
pub(crate) mod raw;
pub(crate) mod request_table;
pub(crate) mod results;
pub(crate) mod server;
pub(crate) mod sync_client;
