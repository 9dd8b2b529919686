//! The settings of `websocket.server.copas.listen(config)` that only a server has: TLS,
//! the handshake timeout, SO_REUSEPORT, the memory budget, the cluster.

use std::path::PathBuf;
use std::time::Duration;

use mlua::{Table, Value};

use super::{bad_argument, expected, seconds, settings_from_lua, size, unix_path};
use crate::connection::settings::ConnectionSettings;
use crate::net::tls::{server_config, ClientCertificates, ServerTlsOptions};
use crate::server::origins::Origins;

/// The settings of `websocket.server.copas.listen(config)`.
pub struct ServerOptions {
    pub settings: ConnectionSettings,
    pub handshake_timeout: Duration,
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    pub reuse_port: bool,
    /// `config.incoming_budget`: bytes every connection of this Lua thread may hold beyond
    /// its allowance (memory_budget.rs).
    pub incoming_budget: Option<usize>,
    /// `config.cluster`: the Redis URL and the channel.
    pub cluster: Option<(String, String)>,
    /// `config.unix`: a unix socket path to listen on instead of a port.
    pub unix: Option<PathBuf>,
    /// `config.origins`: the `Origin`s admitted (`false` in the list: requests without one).
    pub origins: Option<Origins>,
}

impl ServerOptions {
    /// How long a client may take to send its whole opening handshake, by default.
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

    pub fn from_lua(table: &Table) -> mlua::Result<Self> {
        let timeout = seconds(
            table.get("handshake_timeout")?,
            "listen",
            "handshake_timeout",
        )?;
        Ok(ServerOptions {
            settings: settings_from_lua(table, "listen")?,
            handshake_timeout: timeout.unwrap_or(Self::DEFAULT_HANDSHAKE_TIMEOUT),
            tls: match server_tls_options(table.get("ssl")?)? {
                Some(options) => Some(
                    server_config(&options)
                        .map_err(|problem| bad_argument(1, "listen", format!("ssl: {problem}")))?,
                ),
                None => None,
            },
            reuse_port: table.get::<Option<bool>>("reuse_port")?.unwrap_or(false),
            incoming_budget: size(table.get("incoming_budget")?, "listen", "incoming_budget")?,
            cluster: cluster_options(table.get("cluster")?)?,
            origins: origins(table.get("origins")?)?,
            unix: listen_unix(table)?,
        })
    }
}

/// listen's `unix` path, which takes the place of `port` and `interface`.
fn listen_unix(table: &Table) -> mlua::Result<Option<PathBuf>> {
    let path = unix_path(table.get("unix")?, "listen")?;
    let placed =
        !table.get::<Value>("port")?.is_nil() || !table.get::<Value>("interface")?.is_nil();
    if path.is_some() && placed {
        let problem = "unix: a unix socket takes the place of port and interface";
        return Err(bad_argument(1, "listen", problem));
    }
    Ok(path)
}

/// listen's `origins` list: origin strings, and `false` for requests without an `Origin`.
fn origins(value: Value) -> mlua::Result<Option<Origins>> {
    let bad = |problem: String| bad_argument(1, "listen", format!("origins: {problem}"));
    let list = match value {
        Value::Nil => return Ok(None),
        Value::Table(list) => list,
        other => return Err(bad(expected("table", &other))),
    };
    let (mut listed, mut admits_no_origin) = (Vec::new(), false);
    for entry in list.sequence_values::<Value>() {
        match entry? {
            Value::String(origin) if !origin.as_bytes().is_empty() => {
                listed.push(origin.to_str()?.to_string());
            }
            Value::Boolean(false) => admits_no_origin = true,
            other => return Err(bad(expected("origin string or false", &other))),
        }
    }
    Ok(Some(Origins::new(listed, admits_no_origin)))
}

/// listen's `cluster` table: `{ redis = URL, channel = NAME }`.
fn cluster_options(value: Value) -> mlua::Result<Option<(String, String)>> {
    let bad = |problem: String| bad_argument(1, "listen", format!("cluster: {problem}"));
    let table = match value {
        Value::Nil => return Ok(None),
        Value::Table(table) => table,
        other => return Err(bad(expected("table", &other))),
    };
    let text = |key: &str| -> mlua::Result<String> {
        match table.get::<Value>(key)? {
            Value::String(text) if !text.as_bytes().is_empty() => Ok(text.to_str()?.to_string()),
            other => Err(bad(format!(
                "{key}: {}",
                expected("non-empty string", &other)
            ))),
        }
    };
    Ok(Some((text("redis")?, text("channel")?)))
}

/// listen's `ssl` table, in luasec's server shape.
fn server_tls_options(value: Value) -> mlua::Result<Option<ServerTlsOptions>> {
    let bad = |problem: String| bad_argument(1, "listen", format!("ssl: {problem}"));
    let table = match value {
        Value::Nil => return Ok(None),
        Value::Table(table) => table,
        other => return Err(bad(expected("table", &other))),
    };
    let required = |key: &str| -> mlua::Result<PathBuf> {
        match table.get::<Value>(key)? {
            Value::String(text) => Ok(PathBuf::from(text.to_str()?.to_string())),
            other => Err(bad(format!("{key}: {}", expected("file name", &other)))),
        }
    };
    let flags: Vec<String> = match table.get::<Value>("verify")? {
        Value::Nil => Vec::new(),
        Value::String(flag) => vec![flag.to_str()?.to_string()],
        Value::Table(list) => list.sequence_values().collect::<mlua::Result<_>>()?,
        other => {
            return Err(bad(format!(
                "verify: {}",
                expected("string or table", &other)
            )))
        }
    };
    let has = |name: &str| flags.iter().any(|flag| flag == name);
    let client_certificates = if has("fail_if_no_peer_cert") {
        ClientCertificates::Required
    } else if has("peer") {
        ClientCertificates::Optional
    } else {
        ClientCertificates::NotAsked
    };
    let cafile = match table.get::<Value>("cafile")? {
        Value::Nil => None,
        Value::String(text) => Some(PathBuf::from(text.to_str()?.to_string())),
        other => return Err(bad(format!("cafile: {}", expected("file name", &other)))),
    };
    Ok(Some(ServerTlsOptions {
        certificate: required("certificate")?,
        key: required("key")?,
        cafile,
        client_certificates,
        protocol: table.get::<Option<String>>("protocol")?,
    }))
}
