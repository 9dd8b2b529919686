//! The values each client call returns to Lua, shared by both flavours.

use mlua::{IntoLuaMulti, Lua, MultiValue, Value};

use crate::binding::options::{BINARY, TEXT};
use crate::connection::connect::{Accepted, ConnectError};
use crate::connection::{Ending, Received};

/// `connect`: `true, protocol, headers` or `nil, message[, headers]`.
pub fn connected(lua: &Lua, outcome: Result<Accepted, ConnectError>) -> mlua::Result<MultiValue> {
    match outcome {
        Ok(accepted) => {
            let headers = lua.create_table_from(accepted.headers)?;
            (true, accepted.protocol, headers).into_lua_multi(lua)
        }
        Err(failure) => {
            let headers = match failure.headers {
                Some(list) => Value::Table(lua.create_table_from(list)?),
                None => Value::Nil,
            };
            (Value::Nil, failure.message, headers).into_lua_multi(lua)
        }
    }
}

/// `receive`: `message, opcode` or `nil, nil, was_clean, code, reason`.
pub fn received(lua: &Lua, outcome: Result<Received, Ending>) -> mlua::Result<MultiValue> {
    match outcome {
        Ok(message) => {
            let opcode = if message.is_text { TEXT } else { BINARY };
            (lua.create_string(&message.payload)?, opcode).into_lua_multi(lua)
        }
        Err(ending) => (
            Value::Nil,
            Value::Nil,
            ending.clean,
            ending.code,
            ending.reason,
        )
            .into_lua_multi(lua),
    }
}

/// `send`: `true` or `nil, was_clean, code, reason`.
pub fn sent(lua: &Lua, outcome: Result<(), Ending>) -> mlua::Result<MultiValue> {
    match outcome {
        Ok(()) => true.into_lua_multi(lua),
        Err(ending) => (Value::Nil, ending.clean, ending.code, ending.reason).into_lua_multi(lua),
    }
}

/// `close`: `was_clean, code, reason`.
pub fn closed(lua: &Lua, ending: Ending) -> mlua::Result<MultiValue> {
    (ending.clean, ending.code, ending.reason).into_lua_multi(lua)
}
