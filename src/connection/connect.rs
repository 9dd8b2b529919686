//! Opening a client connection: TCP (and TLS), then the opening handshake by tungstenite.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use rustls_pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::WebSocketStream;

use crate::net::address::Address;
use crate::net::batched_read::BatchedRead;
use crate::net::deflate::{self, Wishes};
use crate::net::proxy::{tunnel, ProxyChoice};
use crate::net::resolve::resolve;
use crate::net::socket::{connect_unix, unix_path_problem, Socket};
use crate::net::socket_error::describe_io;
use crate::net::tls::{client_config, TlsOptions};
use crate::net::transport::{Inner, Transport};
use crate::net::ws_error;

/// A WebSocket over TCP, with or without TLS, client or server.
pub type Stream = WebSocketStream<Transport>;

/// Response headers: names lower-cased, repeated headers joined by ','.
pub type Headers = Vec<(String, String)>;

/// What the caller asked to connect to.
pub struct ConnectRequest {
    pub address: Address,
    pub protocols: Vec<String>,
    pub tls: TlsOptions,
    pub config: WebSocketConfig,
    /// Extra request headers (checked already).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The HTTP proxy to go through, or how to find it.
    pub proxy: ProxyChoice,
    /// permessage-deflate to offer, if any.
    pub compression: Option<Wishes>,
    /// A unix socket to connect to instead of the URL's host and port (which still give
    /// the Host header).
    pub unix: Option<PathBuf>,
    /// Told each TCP socket's descriptor before it connects (the copas flavour's doorbell
    /// must watch it while the connect and the handshake run).
    pub on_socket: Option<Box<dyn Fn(std::os::fd::RawFd)>>,
}

/// A failed connect: a message, and the server's response headers when it sent any.
#[derive(Debug)]
pub struct ConnectError {
    pub message: String,
    pub headers: Option<Headers>,
}

impl From<String> for ConnectError {
    fn from(message: String) -> Self {
        ConnectError {
            message,
            headers: None,
        }
    }
}

/// An accepted client handshake: the stream and what the server answered.
pub struct Opened {
    pub stream: Stream,
    pub accepted: Accepted,
}

/// What the server answered to an accepted handshake.
pub struct Accepted {
    pub protocol: Option<String>,
    pub headers: Headers,
}

/// Opens the TCP (and TLS) connection and performs the opening handshake.
pub async fn open(request: ConnectRequest) -> Result<Opened, ConnectError> {
    let address = &request.address;
    let on_socket = request.on_socket.as_deref();
    let socket = match &request.unix {
        Some(path) => Socket::Unix(open_unix(path, on_socket).await?),
        None => Socket::Tcp(open_tcp_or_tunnel(&request, on_socket).await?),
    };

    let mut http_request = address
        .url
        .as_str()
        .into_client_request()
        .map_err(|err| ws_error::describe_handshake(&err))?;
    for (name, value) in request.headers {
        http_request.headers_mut().insert(name, value);
    }
    if let Some(wishes) = &request.compression {
        let offer = HeaderValue::from_str(&deflate::params::offer(wishes))
            .map_err(|_| "invalid compression offer".to_string())?;
        http_request
            .headers_mut()
            .insert("Sec-WebSocket-Extensions", offer);
    }
    if !request.protocols.is_empty() {
        let offered = HeaderValue::from_str(&request.protocols.join(", "))
            .map_err(|_| "invalid protocol name".to_string())?;
        http_request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", offered);
    }
    let wire = BatchedRead::new(socket);
    let inner = if address.secure {
        let connector = tokio_rustls::TlsConnector::from(client_config(&request.tls)?);
        let name = ServerName::try_from(address.host.clone())
            .map_err(|_| format!("invalid TLS server name '{}'", address.host))?;
        let tls = connector
            .connect(name, wire)
            .await
            .map_err(|err| ws_error::describe_io_or_tls(&err))?;
        Inner::ClientTls(Box::new(tls))
    } else {
        Inner::Plain(wire)
    };
    let mut transport = Transport::new(inner);
    if let Some(first) = request.protocols.first() {
        transport.accept_missing_subprotocol(first.clone());
    }
    if let Some(wishes) = request.compression {
        let max_message = request.config.max_message_size.unwrap_or(usize::MAX);
        transport.offer_compression(wishes, max_message);
    }
    let (stream, response) =
        tokio_tungstenite::client_async_with_config(http_request, transport, Some(request.config))
            .await
            .map_err(|err| ConnectError {
                message: ws_error::describe_handshake(&err),
                headers: match &err {
                    Error::Http(response) => Some(collect_headers(response.headers())),
                    _ => None,
                },
            })?;

    let refused = |problem: String| ConnectError {
        message: format!("Websocket Handshake failed: {problem}"),
        headers: Some(collect_headers(response.headers())),
    };
    if let Some(problem) = stream.get_ref().compression_problem() {
        return Err(refused(format!("permessage-deflate: {problem}")));
    }
    let extensions = response.headers().get("Sec-WebSocket-Extensions");
    if request.compression.is_none() && extensions.is_some() {
        return Err(refused(
            "the server chose an extension that was not offered".into(),
        ));
    }
    let mut headers = collect_headers(response.headers());
    let protocol = if stream.get_ref().subprotocol_was_missing() {
        // Filled in for tungstenite only (transport.rs): the server chose none.
        headers.retain(|(name, _)| name != "sec-websocket-protocol");
        None
    } else {
        response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    Ok(Opened {
        stream,
        accepted: Accepted { protocol, headers },
    })
}

/// A TCP connection to the server, straight or through the proxy the request names.
async fn open_tcp_or_tunnel(
    request: &ConnectRequest,
    on_socket: Option<&dyn Fn(RawFd)>,
) -> Result<TcpStream, ConnectError> {
    let address = &request.address;
    let tcp = match request.proxy.resolve(&address.host, address.secure)? {
        Some(proxy) => {
            let mut tcp = open_tcp(&proxy.host, proxy.port, on_socket)
                .await
                .map_err(|err| format!("proxy {}: {}", proxy.name(), err.message))?;
            tunnel(&mut tcp, &proxy, &address.host, address.port).await?;
            tcp
        }
        None => open_tcp(&address.host, address.port, on_socket).await?,
    };
    // Small messages must not wait for Nagle's algorithm.
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Connects to the unix socket at `path`; `on_socket` learns the socket first, as for TCP.
async fn open_unix(
    path: &Path,
    on_socket: Option<&dyn Fn(RawFd)>,
) -> Result<UnixStream, ConnectError> {
    if let Some(problem) = unix_path_problem(path) {
        return Err(problem.into());
    }
    connect_unix(path, on_socket)
        .await
        .map_err(|err| format!("{}: {}", path.display(), describe_io(&err)).into())
}

/// Connects to the first address of `host` that answers. `on_socket` learns each socket
/// before it connects, so that whoever waits for the connect can watch it.
async fn open_tcp(
    host: &str,
    port: u16,
    on_socket: Option<&dyn Fn(RawFd)>,
) -> Result<TcpStream, ConnectError> {
    let mut last_error = None;
    for address in resolve(host, port)? {
        let socket = match address {
            std::net::SocketAddr::V4(_) => TcpSocket::new_v4(),
            std::net::SocketAddr::V6(_) => TcpSocket::new_v6(),
        };
        let connected = match socket {
            Ok(socket) => {
                if let Some(on_socket) = on_socket {
                    on_socket(std::os::fd::AsRawFd::as_raw_fd(&socket));
                }
                socket.connect(address).await
            }
            Err(err) => Err(err),
        };
        match connected {
            Ok(tcp) => return Ok(tcp),
            Err(err) => last_error = Some(describe_io(&err)),
        }
    }
    Err(last_error
        .unwrap_or_else(|| crate::net::socket_error::UNKNOWN_HOST.to_string())
        .into())
}

fn collect_headers(map: &tokio_tungstenite::tungstenite::http::HeaderMap) -> Headers {
    let mut headers: Headers = Vec::new();
    for (name, value) in map {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.iter_mut().find(|(known, _)| known == name.as_str()) {
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            None => headers.push((name.as_str().to_string(), value)),
        }
    }
    headers
}
