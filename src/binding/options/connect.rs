//! The arguments of a client's `connect(url, [protocol], [ssl_params], [headers])` and the
//! request headers of `opts.headers`, read into a connect request.

use std::path::PathBuf;

use mlua::{Table, Value};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use super::{bad_argument, expected};
use crate::connection::connect::ConnectRequest;
use crate::connection::settings::ConnectionSettings;
use crate::connection::State;
use crate::net::address::{self, AddressError};
use crate::net::http_head::checked_header;
use crate::net::socket_error::WRONG_STATE;
use crate::net::tls::TlsOptions;

/// `connect(url, protocol, ssl_params, headers)` as Lua passed them.
pub type ConnectArguments = (Value, Value, Value, Value);

/// The headers of a WebSocket handshake that only the library may set.
const HANDSHAKE_HEADERS: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// Extra request headers: a table name -> string value, each checked (argument `position`
/// of `function`).
pub(super) fn request_headers(
    value: Value,
    position: usize,
    function: &str,
) -> mlua::Result<Vec<(HeaderName, HeaderValue)>> {
    let table = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Table(table) => table,
        other => {
            let problem = format!("headers: {}", expected("table", &other));
            return Err(bad_argument(position, function, problem));
        }
    };
    let mut headers = Vec::new();
    for pair in table.pairs::<Value, Value>() {
        let (name, value) = pair?;
        let (Value::String(name), Value::String(value)) = (&name, &value) else {
            let problem = format!(
                "headers: string names and values expected, got {} = {}",
                name.type_name(),
                value.type_name()
            );
            return Err(bad_argument(position, function, problem));
        };
        let name = String::from_utf8_lossy(&name.as_bytes()).into_owned();
        let value = String::from_utf8_lossy(&value.as_bytes()).into_owned();
        if HANDSHAKE_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            let problem = format!("headers: '{name}' is set by the WebSocket handshake itself");
            return Err(bad_argument(position, function, problem));
        }
        let checked = checked_header(&name, &value)
            .map_err(|problem| bad_argument(position, function, format!("headers: {problem}")))?;
        headers.push(checked);
    }
    Ok(headers)
}

/// `base` with `overrides` replacing the headers of the same name.
fn merged_headers(
    base: &[(HeaderName, HeaderValue)],
    overrides: Vec<(HeaderName, HeaderValue)>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers: Vec<_> = base
        .iter()
        .filter(|(name, _)| !overrides.iter().any(|(other, _)| other == name))
        .cloned()
        .collect();
    headers.extend(overrides);
    headers
}

/// The request `connect`'s arguments describe, or the answer to give at once instead
/// (`nil, 'wrong state'`, `nil, 'bad protocol'`, `nil, <invalid URL>`).
pub fn connect_request(
    lua: &mlua::Lua,
    (url, protocol, ssl, headers): ConnectArguments,
    state: State,
    settings: &ConnectionSettings,
) -> mlua::Result<Result<ConnectRequest, mlua::MultiValue>> {
    use mlua::IntoLuaMulti;
    let url = match url {
        Value::String(text) => text.to_str()?.to_string(),
        other => return Err(bad_argument(1, "connect", expected("string", &other))),
    };
    let protocols = protocols(protocol)?;
    let tls = tls_options(ssl)?;
    let headers = merged_headers(&settings.headers, request_headers(headers, 4, "connect")?);
    let refusal = |message: String| (Value::Nil, message).into_lua_multi(lua).map(Err);
    if state != State::Closed {
        return refusal(WRONG_STATE.to_string());
    }
    match address::parse(&url) {
        Ok(address) => Ok(Ok(ConnectRequest {
            address,
            protocols,
            tls,
            config: settings.config,
            headers,
            proxy: settings.proxy.clone(),
            unix: settings.unix.clone(),
            compression: settings.compression,
            on_socket: None,
        })),
        Err(AddressError::BadScheme) => refusal("bad protocol".to_string()),
        Err(AddressError::Invalid(message)) => refusal(message),
    }
}

/// `connect`'s protocol argument: nil, a string, or a list of strings.
fn protocols(value: Value) -> mlua::Result<Vec<String>> {
    let invalid = |problem: String| bad_argument(2, "connect", problem);
    match value {
        Value::Nil => Ok(Vec::new()),
        Value::String(name) => Ok(vec![protocol_name(&name.to_str()?).map_err(invalid)?]),
        Value::Table(list) => list
            .sequence_values::<Value>()
            .map(|item| match item? {
                Value::String(name) => protocol_name(&name.to_str()?).map_err(invalid),
                other => Err(invalid(format!(
                    "protocol list: {}",
                    expected("string", &other)
                ))),
            })
            .collect(),
        other => Err(invalid(expected("string or table", &other))),
    }
}

/// A protocol name must be an HTTP token (RFC 6455 4.1), or the header would be malformed.
pub(super) fn protocol_name(name: &str) -> Result<String, String> {
    let is_token_char = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
    if name.is_empty() || !name.chars().all(is_token_char) {
        return Err(format!("invalid protocol name '{name}'"));
    }
    Ok(name.to_string())
}

/// `connect`'s third argument, in luasec's shape. Keys that don't apply to a TLS client
/// (`mode`, `options`, `ciphers`, …) are accepted and ignored.
fn tls_options(value: Value) -> mlua::Result<TlsOptions> {
    let table = match value {
        Value::Nil => return Ok(TlsOptions::platform_default()),
        Value::Table(table) => table,
        other => return Err(bad_argument(3, "connect", expected("table", &other))),
    };
    Ok(TlsOptions {
        verify_peer: verifies_peer(table.get("verify")?)?,
        cafile: path(&table, "cafile")?,
        certificate: path(&table, "certificate")?,
        key: path(&table, "key")?,
        protocol: match table.get::<Value>("protocol")? {
            Value::String(name) => Some(name.to_str()?.to_string()),
            _ => None,
        },
    })
}

/// luasec's `verify` is a string or a list of flags; only `'none'` turns checking off.
fn verifies_peer(value: Value) -> mlua::Result<bool> {
    let is_none =
        |value: &Value| matches!(value, Value::String(s) if s.as_bytes().as_ref() == b"none");
    Ok(match &value {
        Value::Nil => true,
        Value::Table(flags) => {
            let flags: Vec<Value> = flags.sequence_values().collect::<mlua::Result<_>>()?;
            !(flags.len() == 1 && is_none(&flags[0]))
        }
        single => !is_none(single),
    })
}

fn path(table: &Table, key: &str) -> mlua::Result<Option<PathBuf>> {
    match table.get::<Value>(key)? {
        Value::String(text) => Ok(Some(PathBuf::from(text.to_str()?.to_string()))),
        Value::Nil => Ok(None),
        other => Err(bad_argument(
            3,
            "connect",
            format!("{key}: {}", expected("string", &other)),
        )),
    }
}
