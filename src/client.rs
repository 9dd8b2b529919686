//! The sync client as Lua userdata: each method blocks the Lua thread in the core's runtime
//! and answers with lua-websockets' return values.

use std::rc::Rc;
use std::time::Duration;

use mlua::{IntoLuaMulti, Lua, MultiValue, UserData, UserDataMethods, Value};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use crate::address::{self, AddressError};
use crate::connection::{ConnectRequest, Connection, Ending, State, DEFAULT_CLOSE_WAIT};
use crate::core::Core;
use crate::options::{
    argument_errors_as_values, bad_argument, expected, protocols, tls_options, ClientOptions,
};
use crate::socket_error::TIMEOUT;

const TEXT: i64 = 1;
const BINARY: i64 = 2;
const PING: i64 = 9;
const PONG: i64 = 10;
/// A control frame carries at most 125 bytes (RFC 6455 5.5).
const CONTROL_PAYLOAD_MAX: usize = 125;

pub struct SyncClient {
    core: Rc<Core>,
    connection: Connection,
    timeout: Option<Duration>,
    config: WebSocketConfig,
}

/// `websocket_native.sync_client(opts)`: the client, or `false, message` for a bad `opts`.
pub fn new_sync_client(lua: &Lua, opts: Value) -> mlua::Result<MultiValue> {
    let made = ClientOptions::from_lua(opts, "sync").and_then(|options| {
        let client = SyncClient {
            core: Core::of(lua)?,
            connection: Connection::default(),
            timeout: options.timeout,
            config: options.config,
        };
        lua.create_userdata(client)?.into_lua_multi(lua)
    });
    argument_errors_as_values(lua, made)
}

impl SyncClient {
    fn connect(
        &mut self,
        lua: &Lua,
        url: Value,
        protocol: Value,
        ssl: Value,
    ) -> mlua::Result<MultiValue> {
        let url = match url {
            Value::String(text) => text.to_str()?.to_string(),
            other => {
                return Err(bad_argument(1, "connect", expected("string", &other)));
            }
        };
        let protocols = protocols(protocol)?;
        let tls = tls_options(ssl)?;
        if self.connection.state() != State::Closed {
            return (Value::Nil, "wrong state").into_lua_multi(lua);
        }
        let address = match address::parse(&url) {
            Ok(address) => address,
            Err(AddressError::BadScheme) => {
                return (Value::Nil, "bad protocol").into_lua_multi(lua)
            }
            Err(AddressError::Invalid(message)) => {
                return (Value::Nil, message).into_lua_multi(lua)
            }
        };
        let request = ConnectRequest {
            address,
            protocols,
            tls,
            config: self.config,
        };
        let mut connection = Connection::default();
        let outcome = self
            .core
            .block_on_for(self.timeout, connection.connect(request));
        match outcome {
            Some(Ok(accepted)) => {
                self.connection = connection;
                let headers = lua.create_table()?;
                for (name, value) in accepted.headers {
                    headers.set(name, value)?;
                }
                (true, accepted.protocol, headers).into_lua_multi(lua)
            }
            Some(Err(failure)) => {
                let headers = match failure.headers {
                    Some(list) => Value::Table(lua.create_table_from(list)?),
                    None => Value::Nil,
                };
                (Value::Nil, failure.message, headers).into_lua_multi(lua)
            }
            None => (Value::Nil, TIMEOUT).into_lua_multi(lua),
        }
    }

    fn receive(&mut self, lua: &Lua) -> mlua::Result<MultiValue> {
        let outcome = self
            .core
            .block_on_for(self.timeout, self.connection.receive());
        match outcome {
            Some(Ok(message)) => {
                let opcode = if message.is_text { TEXT } else { BINARY };
                (lua.create_string(&message.payload)?, opcode).into_lua_multi(lua)
            }
            Some(Err(ending)) => (
                Value::Nil,
                Value::Nil,
                ending.clean,
                ending.code,
                ending.reason,
            )
                .into_lua_multi(lua),
            // The connection stays open: a later receive goes on reading.
            None => (Value::Nil, Value::Nil, false, 1006, TIMEOUT).into_lua_multi(lua),
        }
    }

    fn send(&mut self, lua: &Lua, payload: Value, opcode: Value) -> mlua::Result<MultiValue> {
        let message = message_to_send(payload, opcode)?;
        let outcome = self
            .core
            .block_on_for(self.timeout, self.connection.send(message));
        match outcome {
            Some(Ok(())) => true.into_lua_multi(lua),
            Some(Err(ending)) => send_failure(lua, ending),
            // What was not written yet stays queued and goes out with the next write.
            None => send_failure(lua, Ending::unclean(1006, TIMEOUT)),
        }
    }

    fn close(&mut self, lua: &Lua, code: Value, reason: Value) -> mlua::Result<MultiValue> {
        let code = close_code(code)?;
        let reason = close_reason(reason)?;
        let wait = self.timeout.unwrap_or(DEFAULT_CLOSE_WAIT);
        let ending = self
            .core
            .block_on(self.connection.close(code, &reason, wait));
        (ending.clean, ending.code, ending.reason).into_lua_multi(lua)
    }
}

fn send_failure(lua: &Lua, ending: Ending) -> mlua::Result<MultiValue> {
    (Value::Nil, ending.clean, ending.code, ending.reason).into_lua_multi(lua)
}

/// The frame `send(message, opcode)` asks for, or a Lua error naming the bad argument.
fn message_to_send(payload: Value, opcode: Value) -> mlua::Result<Message> {
    let bytes = match payload {
        Value::String(text) => Bytes::copy_from_slice(&text.as_bytes()),
        other => {
            return Err(bad_argument(1, "send", expected("string", &other)));
        }
    };
    let opcode = match opcode {
        Value::Nil => TEXT,
        Value::Integer(n) => n,
        Value::Number(n) if n.fract() == 0.0 => n as i64,
        other => {
            return Err(bad_argument(2, "send", expected("opcode", &other)));
        }
    };
    let control = |bytes: Bytes, name: &str| {
        if bytes.len() > CONTROL_PAYLOAD_MAX {
            let problem = format!(
                "{name} payload is {} bytes, at most 125 allowed",
                bytes.len()
            );
            return Err(bad_argument(1, "send", problem));
        }
        Ok(bytes)
    };
    match opcode {
        TEXT => Utf8Bytes::try_from(bytes)
            .map(Message::Text)
            .map_err(|_| bad_argument(1, "send", "TEXT message is not valid UTF-8")),
        BINARY => Ok(Message::Binary(bytes)),
        PING => Ok(Message::Ping(control(bytes, "PING")?)),
        PONG => Ok(Message::Pong(control(bytes, "PONG")?)),
        other => Err(bad_argument(
            2,
            "send",
            format!("unknown opcode {other} (TEXT, BINARY, PING or PONG expected)"),
        )),
    }
}

/// A close code the caller may send: 1000-1003, 1007-1014, 3000-4999 (RFC 6455 7.4).
fn close_code(value: Value) -> mlua::Result<u16> {
    let code = match value {
        Value::Nil => return Ok(1000),
        Value::Integer(n) => n,
        Value::Number(n) if n.fract() == 0.0 => n as i64,
        other => {
            return Err(bad_argument(1, "close", expected("number", &other)));
        }
    };
    match code {
        1000..=1003 | 1007..=1014 | 3000..=4999 => Ok(code as u16),
        _ => Err(bad_argument(
            1,
            "close",
            format!("invalid close code {code}"),
        )),
    }
}

/// A close reason: valid UTF-8 of at most 123 bytes, so that the frame stays a control frame.
fn close_reason(value: Value) -> mlua::Result<String> {
    match value {
        Value::Nil => Ok(String::new()),
        Value::String(text) => {
            let reason = std::str::from_utf8(&text.as_bytes())
                .map_err(|_| bad_argument(2, "close", "reason is not valid UTF-8"))?
                .to_string();
            if reason.len() > CONTROL_PAYLOAD_MAX - 2 {
                return Err(bad_argument(2, "close", "reason longer than 123 bytes"));
            }
            Ok(reason)
        }
        other => Err(bad_argument(2, "close", expected("string", &other))),
    }
}

impl UserData for SyncClient {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut(
            "connect",
            |lua, this, (url, protocol, ssl): (Value, Value, Value)| {
                argument_errors_as_values(lua, this.connect(lua, url, protocol, ssl))
            },
        );
        methods.add_method_mut("receive", |lua, this, ()| this.receive(lua));
        methods.add_method_mut("send", |lua, this, (payload, opcode): (Value, Value)| {
            argument_errors_as_values(lua, this.send(lua, payload, opcode))
        });
        methods.add_method_mut("close", |lua, this, (code, reason): (Value, Value)| {
            argument_errors_as_values(lua, this.close(lua, code, reason))
        });
        methods.add_method("state", |_, this, ()| Ok(this.connection.state().name()));
    }
}
