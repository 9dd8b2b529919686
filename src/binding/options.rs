//! Reading the Lua arguments of the client API into plain Rust values.
//!
//! Every wrong argument becomes a Lua error that names the function and the argument, in the
//! words of Lua's own `bad argument` messages.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use mlua::{Table, Value};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use crate::binding::contract::{outgoing, Outgoing};
use crate::connection::keepalive::KeepaliveSettings;
use crate::connection::settings::{small_buffers, ConnectionSettings, DEFAULT_MAX_QUEUE};
use crate::net::deflate::Wishes;
use crate::net::proxy::{Proxy, ProxyChoice};
use crate::net::socket::unix_path_problem;

mod connect;
mod server;
use connect::request_headers;
pub use connect::{connect_request, ConnectArguments};
pub use server::ServerOptions;

/// A wrong argument from Lua, worded like luaL_argerror's message.
#[derive(Debug)]
pub struct ArgumentError(String);

impl std::fmt::Display for ArgumentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgumentError {}

pub fn bad_argument(
    position: usize,
    function: &str,
    problem: impl std::fmt::Display,
) -> mlua::Error {
    mlua::Error::external(ArgumentError(format!(
        "bad argument #{position} to '{function}' ({problem})"
    )))
}

/// Turns an argument error into the values `false, message`.
///
/// mlua raises errors as userdata, but Lua programs match error messages as strings, so the
/// facade raises the message itself, at the caller's level, with `error(message, 2)`.
pub fn argument_errors_as_values(
    lua: &mlua::Lua,
    result: mlua::Result<mlua::MultiValue>,
) -> mlua::Result<mlua::MultiValue> {
    use mlua::IntoLuaMulti;
    match result {
        Err(err) => match err.downcast_ref::<ArgumentError>() {
            Some(ArgumentError(message)) => (false, message.as_str()).into_lua_multi(lua),
            None => Err(err),
        },
        ok => ok,
    }
}

/// The usual "X expected, got Y" of a wrong type.
pub fn expected(what: &str, got: &Value) -> String {
    // Lua's own messages call integers numbers too.
    let got = match got {
        Value::Integer(_) => "number",
        other => other.type_name(),
    };
    format!("{what} expected, got {got}")
}

/// A control frame carries at most 125 bytes (RFC 6455 5.5).
const CONTROL_PAYLOAD_MAX: usize = 125;

/// The frame `send(message, opcode)` asks for, or a Lua error naming the bad argument.
pub fn message_to_send(payload: Value, opcode: Value) -> mlua::Result<Message> {
    let bytes = match payload {
        Value::String(text) => Bytes::copy_from_slice(&text.as_bytes()),
        other => {
            return Err(bad_argument(1, "send", expected("string", &other)));
        }
    };
    let opcode = match opcode {
        Value::Nil => None,
        Value::Integer(n) => Some(n),
        Value::Number(n) if n.fract() == 0.0 => Some(n as i64),
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
    match outgoing(opcode) {
        Some(Outgoing::Text) => Utf8Bytes::try_from(bytes)
            .map(Message::Text)
            .map_err(|_| bad_argument(1, "send", "TEXT message is not valid UTF-8")),
        Some(Outgoing::Binary) => Ok(Message::Binary(bytes)),
        Some(Outgoing::Ping) => Ok(Message::Ping(control(bytes, "PING")?)),
        Some(Outgoing::Pong) => Ok(Message::Pong(control(bytes, "PONG")?)),
        None => Err(bad_argument(
            2,
            "send",
            format!(
                "unknown opcode {} (TEXT, BINARY, PING or PONG expected)",
                opcode.unwrap_or_default()
            ),
        )),
    }
}

/// `check_send(message, opcode)`: `true` when a send of these arguments would be taken, else
/// `false, message` naming the bad argument. The callback flavours check a send they queue
/// behind one in progress, so that a bad argument raises at the program's call.
pub fn check_send(
    lua: &mlua::Lua,
    (payload, opcode): (Value, Value),
) -> mlua::Result<mlua::MultiValue> {
    use mlua::IntoLuaMulti;
    let checked = message_to_send(payload, opcode).and_then(|_| true.into_lua_multi(lua));
    argument_errors_as_values(lua, checked)
}

/// `ping`'s payload: nil (one of the connection's own) or a string of at most 125 bytes.
pub fn ping_payload(payload: Value) -> mlua::Result<Option<Bytes>> {
    match payload {
        Value::Nil => Ok(None),
        Value::String(text) if text.as_bytes().len() <= CONTROL_PAYLOAD_MAX => {
            Ok(Some(Bytes::copy_from_slice(&text.as_bytes())))
        }
        Value::String(text) => Err(bad_argument(
            1,
            "ping",
            format!(
                "PING payload is {} bytes, at most 125 allowed",
                text.as_bytes().len()
            ),
        )),
        other => Err(bad_argument(1, "ping", expected("string", &other))),
    }
}

/// A close code the caller may send: 1000-1003, 1007-1014, 3000-4999 (RFC 6455 7.4).
pub fn close_code(value: Value) -> mlua::Result<u16> {
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
pub fn close_reason(value: Value) -> mlua::Result<String> {
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

/// The settings in an options table (`opts` or listen's `config`).
pub(super) fn settings_from_lua(table: &Table, function: &str) -> mlua::Result<ConnectionSettings> {
    let interval = seconds(table.get("ping_interval")?, function, "ping_interval")?;
    let timeout = seconds(table.get("ping_timeout")?, function, "ping_timeout")?;
    let keepalive = match interval {
        Some(interval) if interval.is_zero() => {
            return Err(bad_argument(1, function, "ping_interval: must be positive"));
        }
        Some(interval) => Some(KeepaliveSettings {
            interval,
            timeout: timeout.filter(|t| !t.is_zero()).unwrap_or(interval),
        }),
        None => None,
    };
    Ok(ConnectionSettings {
        config: size_limits(table, function, small_buffers())?,
        keepalive,
        max_queue: size(table.get("max_queue")?, function, "max_queue")?
            .unwrap_or(DEFAULT_MAX_QUEUE),
        headers: request_headers(table.get("headers")?, 1, function)?,
        proxy: proxy_choice(table.get("proxy")?, function)?,
        unix: unix_path(table.get("unix")?, function)?,
        compression: compression(table.get("compression")?, function)?,
    })
}

/// The `compression` option: `'deflate'`, or a table of permessage-deflate's parameters
/// (`server_no_context_takeover`, `client_no_context_takeover`, `server_max_window_bits`,
/// `client_max_window_bits`); nil or false for none.
fn compression(value: Value, function: &str) -> mlua::Result<Option<Wishes>> {
    let bad = |problem: String| bad_argument(1, function, format!("compression: {problem}"));
    let table = match value {
        Value::Nil | Value::Boolean(false) => return Ok(None),
        Value::String(name) if name.as_bytes().as_ref() == b"deflate" => {
            return Ok(Some(Wishes::default()))
        }
        Value::Table(table) => table,
        other => return Err(bad(expected("'deflate' or table", &other))),
    };
    let mut wishes = Wishes::default();
    for pair in table.pairs::<String, Value>() {
        let (key, value) = pair?;
        match (key.as_str(), value) {
            ("server_no_context_takeover", Value::Boolean(on)) => {
                wishes.server_no_context_takeover = on
            }
            ("client_no_context_takeover", Value::Boolean(on)) => {
                wishes.client_no_context_takeover = on
            }
            ("server_max_window_bits" | "client_max_window_bits", value) => {
                let bits = match value {
                    Value::Integer(n @ 9..=15) => n as u8,
                    Value::Number(n) if n.fract() == 0.0 && (9.0..=15.0).contains(&n) => n as u8,
                    other => {
                        return Err(bad(format!(
                            "{key}: {}",
                            expected("a window size from 9 to 15", &other)
                        )))
                    }
                };
                if key.starts_with("server") {
                    wishes.server_max_window_bits = Some(bits);
                } else {
                    wishes.client_max_window_bits = Some(bits);
                }
            }
            ("server_no_context_takeover" | "client_no_context_takeover", other) => {
                return Err(bad(format!("{key}: {}", expected("boolean", &other))));
            }
            (key, _) => return Err(bad(format!("unknown parameter '{key}'"))),
        }
    }
    Ok(Some(wishes))
}

/// A `unix` option: the path of a unix socket.
pub(super) fn unix_path(value: Value, function: &str) -> mlua::Result<Option<PathBuf>> {
    let path = match value {
        Value::Nil => return Ok(None),
        Value::String(text) => PathBuf::from(OsStr::from_bytes(&text.as_bytes())),
        other => {
            let problem = format!("unix: {}", expected("socket path", &other));
            return Err(bad_argument(1, function, problem));
        }
    };
    match unix_path_problem(&path) {
        Some(problem) => Err(bad_argument(1, function, format!("unix: {problem}"))),
        None => Ok(Some(path)),
    }
}

/// A client's `proxy` option: an `http://` URL, `false` for none, nil for the environment's.
fn proxy_choice(value: Value, function: &str) -> mlua::Result<ProxyChoice> {
    match value {
        Value::Nil => Ok(ProxyChoice::FromEnvironment),
        Value::Boolean(false) => Ok(ProxyChoice::Direct),
        Value::String(url) => Proxy::parse(&url.to_str()?)
            .map(ProxyChoice::Through)
            .map_err(|problem| bad_argument(1, function, format!("proxy: {problem}"))),
        other => Err(bad_argument(
            1,
            function,
            format!("proxy: {}", expected("URL or false", &other)),
        )),
    }
}

/// The options table of `client.sync(opts)` and `client.copas(opts)`.
pub struct ClientOptions {
    pub timeout: Option<Duration>,
    pub settings: ConnectionSettings,
}

impl ClientOptions {
    pub fn from_lua(value: Value, function: &str) -> mlua::Result<Self> {
        let table = match value {
            Value::Nil => return Ok(Self::defaults()),
            Value::Table(table) => table,
            other => return Err(bad_argument(1, function, expected("table", &other))),
        };
        Ok(ClientOptions {
            timeout: seconds(table.get("timeout")?, function, "timeout")?,
            settings: settings_from_lua(&table, function)?,
        })
    }

    fn defaults() -> Self {
        ClientOptions {
            timeout: None,
            settings: ConnectionSettings::default(),
        }
    }
}

/// `max_message_size` and `max_frame_size` (bytes) from an options table, over `config`.
fn size_limits(
    table: &Table,
    function: &str,
    config: WebSocketConfig,
) -> mlua::Result<WebSocketConfig> {
    let mut config = config;
    if let Some(limit) = size(table.get("max_message_size")?, function, "max_message_size")? {
        config = config.max_message_size(Some(limit));
    }
    if let Some(limit) = size(table.get("max_frame_size")?, function, "max_frame_size")? {
        config = config.max_frame_size(Some(limit));
    }
    Ok(config)
}

/// An options field that must be a number, if it is set.
fn number(value: Value, function: &str, field: &str) -> mlua::Result<Option<f64>> {
    match value {
        Value::Nil => Ok(None),
        Value::Integer(n) => Ok(Some(n as f64)),
        Value::Number(n) => Ok(Some(n)),
        other => {
            let problem = format!("{field}: {}", expected("number", &other));
            Err(bad_argument(1, function, problem))
        }
    }
}

/// A duration in seconds; nil or a negative number means "wait forever", as in luasocket.
fn seconds(value: Value, function: &str, field: &str) -> mlua::Result<Option<Duration>> {
    let Some(seconds) = number(value, function, field)? else {
        return Ok(None);
    };
    if seconds.is_nan() || seconds < 0.0 {
        return Ok(None);
    }
    Duration::try_from_secs_f64(seconds)
        .map(Some)
        .map_err(|_| bad_argument(1, function, format!("{field}: number out of range")))
}

/// A size in bytes: a positive whole number.
fn size(value: Value, function: &str, field: &str) -> mlua::Result<Option<usize>> {
    let Some(n) = number(value, function, field)? else {
        return Ok(None);
    };
    if !(n >= 1.0 && n.fract() == 0.0 && n <= usize::MAX as f64) {
        return Err(bad_argument(
            1,
            function,
            format!("{field}: positive whole number expected"),
        ));
    }
    Ok(Some(n as usize))
}

#[cfg(test)]
mod tests {
    use super::connect::protocol_name;
    use super::*;
    use crate::binding::contract::TEXT;
    use tokio_tungstenite::tungstenite::http::HeaderValue;

    proptest::proptest! {
        #[test]
        fn accepted_protocol_names_make_a_valid_header(names in proptest::collection::vec(".{0,12}", 1..5)) {
            let accepted: Vec<String> = names.iter().filter_map(|n| protocol_name(n).ok()).collect();
            for name in &accepted {
                proptest::prop_assert!(!name.contains([',', ' ', '\r', '\n']));
            }
            if !accepted.is_empty() {
                let header = accepted.join(", ");
                proptest::prop_assert!(HeaderValue::from_str(&header).is_ok());
            }
        }

        #[test]
        fn close_codes_are_accepted_exactly_in_the_sendable_ranges(code in proptest::num::i64::ANY) {
            let sendable = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            proptest::prop_assert_eq!(close_code(Value::Integer(code)).is_ok(), sendable);
        }

        #[test]
        fn text_messages_are_accepted_exactly_when_valid_utf8(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let lua = mlua::Lua::new();
            let payload = Value::String(lua.create_string(&bytes).unwrap());
            let accepted = message_to_send(payload, Value::Integer(TEXT)).is_ok();
            proptest::prop_assert_eq!(accepted, std::str::from_utf8(&bytes).is_ok());
        }
    }

    #[test]
    fn protocol_names_must_be_tokens() {
        assert_eq!(protocol_name("echo").unwrap(), "echo");
        assert!(protocol_name("").is_err());
        assert!(protocol_name("a b").is_err());
        assert!(protocol_name("a,b").is_err());
        assert!(protocol_name("x\r\nEvil: 1").is_err());
    }
}
