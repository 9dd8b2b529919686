//! Lua arguments in and results out: the options tables, the shapes of the values calls
//! return, the C functions of the hot path, and what keeps the library loaded.

pub(crate) mod fast_calls;
pub(crate) mod options;
pub(crate) mod pin;
pub(crate) mod raw_calls;
pub(crate) mod request_table;
pub(crate) mod results;
