//! The stages of a connection's opening handshake on the server: the TLS handshake and the
//! request head (read here, so that Lua can look at it before the upgrade), then the
//! upgrade by tungstenite or a plain answer.

use std::rc::Rc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error;

use super::{Arrived, Event, HandshakeSettings};
use crate::connection::request::{Peer, RequestInfo};
use crate::net::batched_read::BatchedRead;
use crate::net::deflate::{self, Compression};
use crate::net::http_head::{self, HeadError};
use crate::net::socket::Socket;
use crate::net::socket_error::describe_io;
use crate::net::transport::{Inner, Transport};
use crate::net::ws_error;

pub(super) fn timed_out(id: Option<u64>) -> Event {
    Event::Failed("handshake timed out".to_string(), id)
}

/// Stage 1: the TLS handshake (if any) and the request head. Fails with what to tell
/// `on_error`, or None for a connection closed before it sent a byte.
pub(super) async fn read_request(
    socket: Socket,
    tls: Option<tokio_rustls::TlsAcceptor>,
    peer: Peer,
) -> Result<Arrived, Option<String>> {
    let secure = tls.is_some();
    let wire = BatchedRead::new(socket);
    let mut inner = match tls {
        Some(acceptor) => match acceptor.accept(wire).await {
            Ok(tls) => Inner::ServerTls(Box::new(tls)),
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Err(None),
            Err(err) => return Err(Some(ws_error::describe_io_or_tls(&err))),
        },
        None => Inner::Plain(wire),
    };
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = http_head::end_of_head(&bytes) {
            break end;
        }
        if bytes.len() > http_head::MAX_HEAD {
            answer_bad_request(&mut inner).await;
            return Err(Some("handshake request too large".into()));
        }
        match inner.read(&mut chunk).await {
            Ok(0) if bytes.is_empty() => return Err(None),
            Ok(0) => {
                return Err(Some(
                    "incomplete handshake request: the client closed".into(),
                ));
            }
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(err) => {
                return Err(Some(format!("handshake failed: {}", describe_io(&err))));
            }
        }
    };
    let head = http_head::parse_request(&bytes[..end]).and_then(|head| {
        // A client must wait for the answer before it sends more (RFC 6455 4.1).
        let problem = head
            .body_problem()
            .or((bytes.len() > end).then_some("data after the request head"));
        match problem {
            Some(problem) => Err(HeadError::Malformed(problem.into())),
            None => Ok(head),
        }
    });
    match head {
        Ok(head) => {
            let info = Rc::new(RequestInfo::new(&bytes[..end], peer, secure));
            Ok(Arrived {
                inner,
                bytes,
                head,
                info,
            })
        }
        Err(problem) => {
            answer_bad_request(&mut inner).await;
            Err(Some(match problem {
                HeadError::TooLarge => "handshake request too large".into(),
                HeadError::Malformed(why) => format!("bad handshake request: {why}"),
            }))
        }
    }
}

/// Stage 2 for an upgrade: tungstenite reads the request again (from the bytes kept) and
/// answers 101; the request's protocol is chosen here.
pub(super) async fn upgrade(arrived: Arrived, handshake: Rc<HandshakeSettings>, id: u64) -> Event {
    let Arrived {
        mut inner,
        bytes,
        head,
        info,
    } = arrived;
    if let Some(problem) = head.upgrade_problem() {
        answer_bad_request(&mut inner).await;
        return Event::Failed(format!("bad handshake request: {problem}"), Some(id));
    }
    let Ok(protocol) = handshake.choice.choose(&head.protocols) else {
        answer_bad_request(&mut inner).await;
        return Event::Failed("bad protocol".into(), Some(id));
    };
    let chosen = protocol.clone();
    // The first offer of permessage-deflate this server can honour, if it compresses.
    let compression = match (
        &handshake.settings.compression,
        head.header("sec-websocket-extensions"),
    ) {
        (Some(wishes), Some(offers)) => deflate::params::accept_offer(offers, wishes),
        _ => None,
    };
    let extension = compression
        .as_ref()
        .and_then(|(answer, _)| HeaderValue::from_str(answer).ok());
    // The callback's error type is tungstenite's ErrorResponse, large or not.
    #[allow(clippy::result_large_err)]
    let callback = move |_: &Request, mut response: Response| {
        if let Some(value) = chosen
            .as_deref()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            response
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", value);
        }
        if let Some(value) = extension {
            response
                .headers_mut()
                .insert("Sec-WebSocket-Extensions", value);
        }
        Ok(response)
    };
    let transport = Transport::with_replay(inner, bytes);
    let config: WebSocketConfig = handshake.settings.config;
    match tokio_tungstenite::accept_hdr_async_with_config(transport, callback, Some(config)).await {
        Ok(mut ws) => {
            if let Some((_, agreed)) = compression {
                let max_message = config.max_message_size.unwrap_or(usize::MAX);
                let compression = Compression::new(false, agreed, max_message);
                ws.get_mut().enable_compression(compression);
            }
            Event::Opened(Box::new(ws), protocol, id, info)
        }
        Err(Error::Protocol(ProtocolError::HandshakeIncomplete)) => Event::Failed(
            "incomplete handshake request: the client closed".into(),
            Some(id),
        ),
        Err(Error::Protocol(problem)) => {
            Event::Failed(format!("bad handshake request: {problem}"), Some(id))
        }
        Err(Error::Io(err)) => {
            Event::Failed(format!("handshake failed: {}", describe_io(&err)), Some(id))
        }
        Err(other) => Event::Failed(format!("handshake failed: {other}"), Some(id)),
    }
}

/// Writes `bytes` and ends the connection; a peer that went away only loses the answer.
pub(super) async fn answer_and_close<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
) {
    if stream.write_all(bytes).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

/// Answers a request Lua never saw with `status` (and no body), and closes.
pub(super) async fn refuse(mut arrived: Arrived, status: u16) {
    answer_and_close(&mut arrived.inner, &http_head::response(status, &[], b"")).await;
}

async fn answer_bad_request<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    answer_and_close(stream, &http_head::response(400, &[], b"")).await;
}
