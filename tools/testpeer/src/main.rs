//! testpeer: a tokio-tungstenite WebSocket server for the specs.
//!
//! The request path picks what the server does once the handshake is done:
//!
//! | path | behaviour |
//! |---|---|
//! | `/echo` (any other path too) | echoes TEXT and BINARY messages |
//! | `/report` | first sends `sec-websocket-protocol: <value or <none>>`, then echoes |
//! | `/headers` | adds `X-Repeated: one`, `X-Repeated: two` and `X-Custom: Value` to the response |
//! | `/close/<code>/<reason>` | closes at once with that code and reason |
//! | `/ping/<payload>` | pings; when the pong arrives sends `pong:<payload>`; then echoes |
//! | `/fragments/<n>` | sends one TEXT message in n fragments with a ping between them |
//! | `/later/<ms>` | sends `late` after ms milliseconds, then echoes |
//! | `/burst/<n>` | sends TEXT `burst-1` … `burst-<n>` in one write, then echoes |
//! | `/status/<code>` | refuses the handshake with that HTTP status |
//! | `/drop` | drops the TCP connection without a close frame |
//! | `/stall` | never reads again, so the client's writes back up |
//! | `/track/<name>` | echoes, and remembers when this connection's socket closes |
//! | `/closed/<name>` | sends `yes` once the `/track/<name>` connection has closed, else `no` |
//! | `/protocol/<name>` | selects protocol `<name>` whatever the client offered, then echoes |
//!
//! Offered subprotocols: the first of `echo`, `chat`, `superchat` that the client offers is
//! selected. Ports are written to the file given as the first argument (`name=port` lines):
//! `plain` (127.0.0.1), `ipv6` ([::1], when the host has it), `silent` (accepts TCP and never
//! answers), `hangup` (accepts TCP and closes it at once) and, when a certificate and key are
//! given as further arguments, `tls`. Connections that end in an error are logged only with
//! `TESTPEER_VERBOSE` set: the specs end them in every way there is on purpose.
//! `TESTPEER_READ_BUFFER` sets tungstenite's read buffer size (bench/instructions.sh).
//!
//! For the benchmarks' clients, a `tcpecho` port echoes lines over plain TCP (no WebSocket),
//! and `TESTPEER_ECHO_DELAY_US` makes every echo (WebSocket and TCP) wait that many
//! microseconds first: a client under valgrind then always waits for its answer, as it
//! does when it runs natively (bench/instructions.sh).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const SUPPORTED_PROTOCOLS: [&str; 3] = ["echo", "chat", "superchat"];

thread_local! {
    /// Names of `/track/<name>` connections whose sockets have closed.
    static CLOSED_TRACKS: std::cell::RefCell<std::collections::HashSet<String>> =
        Default::default();
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().collect();
    let port_file = args.get(1).ok_or("usage: testpeer PORT_FILE [CERT KEY]")?;
    let mut ports = String::new();

    let plain = TcpListener::bind("127.0.0.1:0").await?;
    ports += &format!("plain={}\n", plain.local_addr()?.port());
    tokio::spawn(serve(plain, None));

    if let Ok(ipv6) = TcpListener::bind("[::1]:0").await {
        ports += &format!("ipv6={}\n", ipv6.local_addr()?.port());
        tokio::spawn(serve(ipv6, None));
    }

    // Accepts connections into its backlog and never reads them: a handshake that hangs.
    let silent = TcpListener::bind("127.0.0.1:0").await?;
    ports += &format!("silent={}\n", silent.local_addr()?.port());

    let tcp_echo = TcpListener::bind("127.0.0.1:0").await?;
    ports += &format!("tcpecho={}\n", tcp_echo.local_addr()?.port());
    tokio::spawn(serve_tcp_echo(tcp_echo));

    let hangup = TcpListener::bind("127.0.0.1:0").await?;
    ports += &format!("hangup={}\n", hangup.local_addr()?.port());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = hangup.accept().await {
            drop(tcp);
        }
    });

    if let (Some(cert), Some(key)) = (args.get(2), args.get(3)) {
        let tls = TcpListener::bind("127.0.0.1:0").await?;
        ports += &format!("tls={}\n", tls.local_addr()?.port());
        tokio::spawn(serve(tls, Some(tls_acceptor(cert, key)?)));
    }

    // Written whole and then renamed, so that a reader never sees half of it.
    let partial = format!("{port_file}.partial");
    tokio::fs::write(&partial, ports).await?;
    tokio::fs::rename(&partial, port_file).await?;
    let _keep_silent_open = silent;
    std::future::pending::<()>().await;
    Ok(())
}

fn tls_acceptor(cert: &str, key: &str) -> Result<tokio_rustls::TlsAcceptor, Failure> {
    let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        tokio::spawn(async move {
            let outcome = match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => handle(stream).await,
                    Err(err) => Err(err.into()),
                },
                None => handle(tcp).await,
            };
            // Specs end connections every way there is on purpose: only say so when asked.
            if let Err(err) = outcome {
                if std::env::var_os("TESTPEER_VERBOSE").is_some() {
                    eprintln!("testpeer: connection ended with: {err}");
                }
            }
        });
    }
}

/// What the handshake saw, for the behaviour that follows it.
struct Seen {
    path: String,
    offered_protocol: Option<String>,
}

// The callback's error type is tungstenite's ErrorResponse, large or not.
#[allow(clippy::result_large_err)]
async fn handle<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> Result<(), Failure> {
    let mut seen = Seen {
        path: String::new(),
        offered_protocol: None,
    };
    let callback = |request: &Request, mut response: Response| {
        seen.path = request.uri().path().to_string();
        seen.offered_protocol = request
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        if let Some(code) = seen.path.strip_prefix("/status/") {
            let status = code
                .parse()
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR.as_u16());
            let mut refusal = ErrorResponse::new(Some("refused by testpeer".to_string()));
            *refusal.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Err(refusal);
        }
        if let Some(imposed) = seen.path.strip_prefix("/protocol/") {
            // A protocol whether offered or not, for clients that must refuse it.
            if let Ok(value) = HeaderValue::from_str(imposed) {
                response
                    .headers_mut()
                    .insert("Sec-WebSocket-Protocol", value);
            }
        } else if let Some(chosen) = choose_protocol(seen.offered_protocol.as_deref()) {
            response
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(chosen));
        }
        if seen.path == "/headers" {
            let headers = response.headers_mut();
            headers.append("X-Repeated", HeaderValue::from_static("one"));
            headers.append("X-Repeated", HeaderValue::from_static("two"));
            headers.insert("X-Custom", HeaderValue::from_static("Value"));
        }
        Ok(response)
    };
    // No limits: the specs send messages up to 16 MiB in one frame.
    let mut config = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    // bench/instructions.sh compares with the 4 KiB read buffer this project's server uses:
    // under valgrind, the zero-filling of tungstenite's default 128 KiB buffer before each
    // read runs as a plain loop and would dominate the count.
    if let Some(size) = std::env::var("TESTPEER_READ_BUFFER")
        .ok()
        .and_then(|value| value.parse().ok())
    {
        config = config.read_buffer_size(size);
    }
    let mut ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    behave(&mut ws, &seen).await
}

fn choose_protocol(offered: Option<&str>) -> Option<&'static str> {
    let offered = offered?;
    offered.split(',').map(str::trim).find_map(|name| {
        SUPPORTED_PROTOCOLS
            .iter()
            .copied()
            .find(|known| *known == name)
    })
}

async fn behave<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    seen: &Seen,
) -> Result<(), Failure> {
    let mut parts = seen.path.trim_start_matches('/').splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("report"), _, _) => {
            let offered = seen.offered_protocol.as_deref().unwrap_or("<none>");
            ws.send(Message::text(format!("sec-websocket-protocol: {offered}")))
                .await?;
        }
        (Some("close"), Some(code), reason) => {
            let frame = CloseFrame {
                code: CloseCode::from(code.parse::<u16>()?),
                reason: reason.unwrap_or("").to_string().into(),
            };
            ws.close(Some(frame)).await?;
        }
        (Some("ping"), Some(payload), _) => {
            ws.send(Message::Ping(payload.as_bytes().to_vec().into()))
                .await?;
            while let Some(message) = ws.next().await {
                if let Message::Pong(echoed) = message? {
                    let text = format!("pong:{}", String::from_utf8_lossy(&echoed));
                    ws.send(Message::text(text)).await?;
                    break;
                }
            }
        }
        (Some("fragments"), Some(count), _) => {
            let count: usize = count.parse()?;
            for index in 0..count {
                let opcode = if index == 0 {
                    Data::Text
                } else {
                    Data::Continue
                };
                let piece = format!("fragment-{index};");
                let frame =
                    Frame::message(piece.into_bytes(), OpCode::Data(opcode), index + 1 == count);
                ws.send(Message::Frame(frame)).await?;
                ws.send(Message::Ping(b"between".to_vec().into())).await?;
            }
        }
        (Some("later"), Some(ms), _) => {
            tokio::time::sleep(Duration::from_millis(ms.parse()?)).await;
            ws.send(Message::text("late")).await?;
        }
        (Some("burst"), Some(count), _) => {
            // Fed, then flushed once: the client reads them all in one go.
            for index in 1..=count.parse::<usize>()? {
                ws.feed(Message::text(format!("burst-{index}"))).await?;
            }
            ws.flush().await?;
        }
        (Some("drop"), _, _) => return Ok(()),
        (Some("stall"), _, _) => std::future::pending::<()>().await,
        (Some("track"), Some(name), _) => {
            let ended = echo(ws).await;
            CLOSED_TRACKS.with(|closed| closed.borrow_mut().insert(name.to_string()));
            return ended;
        }
        (Some("closed"), Some(name), _) => {
            let closed = CLOSED_TRACKS.with(|closed| closed.borrow().contains(name));
            ws.send(Message::text(if closed { "yes" } else { "no" }))
                .await?;
        }
        _ => {}
    }
    echo(ws).await
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
) -> Result<(), Failure> {
    let delay = echo_delay();
    while let Some(message) = ws.next().await {
        // Close replies and pongs are sent by tungstenite itself.
        if let message @ (Message::Text(_) | Message::Binary(_)) = message? {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            ws.send(message).await?;
        }
    }
    Ok(())
}

/// `TESTPEER_ECHO_DELAY_US`, when set.
fn echo_delay() -> Option<Duration> {
    let micros = std::env::var("TESTPEER_ECHO_DELAY_US").ok()?.parse().ok()?;
    Some(Duration::from_micros(micros))
}

/// Echoes lines over plain TCP, each connection in a task of its own.
async fn serve_tcp_echo(listener: TcpListener) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let delay = echo_delay();
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let (reading, mut writing) = tcp.into_split();
            let mut lines = BufReader::new(reading);
            let mut line = Vec::new();
            while matches!(lines.read_until(b'\n', &mut line).await, Ok(n) if n > 0) {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                if writing.write_all(&line).await.is_err() {
                    break;
                }
                line.clear();
            }
        });
    }
}
