//! One client WebSocket connection: connect, receive, send and close, as async Rust.
//!
//! Nothing here knows about Lua. Callers bound each operation with their own timeout; every
//! operation leaves the connection consistent when its future is dropped half-way, because
//! tokio-tungstenite keeps partial frames buffered in the stream.

use std::future::poll_fn;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use rustls_pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::address::Address;
use crate::batched_read::BatchedRead;
use crate::data_frame;
use crate::keepalive::{Due, Keepalive, KeepaliveSettings};
use crate::resolve::resolve;
use crate::socket_error::{describe_io, TIMEOUT};
use crate::tls::{client_config, TlsOptions};
use crate::transport::{FrameWrite, Inner, PeerGone, Transport};
use crate::ws_error;

/// A WebSocket over TCP, with or without TLS, client or server.
pub type Stream = WebSocketStream<Transport>;

/// A TEXT (`is_text`) or BINARY message of a copy of `payload`. (Callers check a TEXT
/// payload's UTF-8 before: the error is for a caller that did not.)
pub fn data_message(payload: &[u8], is_text: bool) -> Result<Message, Ending> {
    let bytes = Bytes::copy_from_slice(payload);
    if !is_text {
        return Ok(Message::Binary(bytes));
    }
    Utf8Bytes::try_from(bytes)
        .map(Message::Text)
        .map_err(|_| Ending::unclean(1006, "TEXT message is not valid UTF-8"))
}

/// What a failed keepalive reports (RFC 6455 has no code for it: 1006, as for a lost peer).
pub const KEEPALIVE_TIMEOUT: &str = "keepalive ping timeout";

/// Response headers: names lower-cased, repeated headers joined by ','.
pub type Headers = Vec<(String, String)>;

/// How long a close handshake may take when the caller set no timeout.
pub const DEFAULT_CLOSE_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum State {
    #[default]
    Closed,
    Open,
    Closing,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Open => "OPEN",
            State::Closing => "CLOSING",
        }
    }
}

/// What the caller asked to connect to.
pub struct ConnectRequest {
    pub address: Address,
    pub protocols: Vec<String>,
    pub tls: TlsOptions,
    pub config: WebSocketConfig,
    /// Extra request headers (checked already).
    pub headers: Vec<(HeaderName, HeaderValue)>,
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

/// How a connection ended: lua-websockets' `was_clean, code, reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub clean: bool,
    pub code: u16,
    pub reason: String,
}

impl Ending {
    pub fn unclean(code: u16, reason: impl Into<String>) -> Self {
        Ending {
            clean: false,
            code,
            reason: reason.into(),
        }
    }

    fn from_close_frame(frame: Option<CloseFrame>) -> Self {
        match frame {
            Some(frame) => Ending {
                clean: true,
                code: frame.code.into(),
                reason: frame.reason.to_string(),
            },
            // A close frame without a status: RFC 6455 7.1.5 reports 1005.
            None => Ending {
                clean: true,
                code: 1005,
                reason: String::new(),
            },
        }
    }
}

/// A message as received: the payload and whether it is text.
pub struct Received {
    pub payload: Bytes,
    pub is_text: bool,
}

#[derive(Default)]
pub struct Connection {
    stream: Option<Stream>,
    state: State,
    /// A close frame waiting for room in the write buffer (the close handshake's first step).
    close_to_send: Option<Message>,
    keepalive: Option<Keepalive>,
    /// Messages tungstenite has returned (see `Transport::poll_worth_reading`).
    messages_returned: u64,
    /// A ping was returned: its pong must reach the socket before more is read (see
    /// `poll_pong_room`).
    pong_due: bool,
    /// A server's connection or a client's (a new tungstenite context needs it).
    role: Option<Role>,
    /// The connection was failed because its peer reset it.
    peer_reset: bool,
}

impl Connection {
    /// An OPEN connection over a stream whose handshake is done, with keepalive when
    /// `keepalive` is set (inside the runtime: its timer belongs to it).
    pub fn open(stream: Stream, role: Role, keepalive: Option<KeepaliveSettings>) -> Self {
        Connection {
            stream: Some(stream),
            state: State::Open,
            close_to_send: None,
            keepalive: keepalive.map(Keepalive::new),
            messages_returned: 0,
            pong_due: false,
            role: Some(role),
            peer_reset: false,
        }
    }

    /// What this connection holds, for the memory budget (None once it is closed).
    pub fn account(&self) -> Option<&std::rc::Rc<crate::memory_budget::Account>> {
        self.stream
            .as_ref()
            .map(|stream| stream.get_ref().account())
    }

    /// Whether the connection was failed because its peer reset it.
    pub fn peer_was_reset(&self) -> bool {
        self.peer_reset
    }

    /// While nothing reads this connection: what became of its peer (see
    /// `Transport::peer_gone`).
    pub fn peer_gone(&self) -> Option<PeerGone> {
        self.stream.as_ref()?.get_ref().peer_gone()
    }

    /// Whether reading waits for room in the memory budget.
    pub fn is_waiting_for_budget(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|stream| stream.get_ref().is_waiting_for_budget())
    }

    /// Fails the connection for a peer that went away while nothing read it; `reset`: it
    /// reset the connection.
    pub fn drop_departed(&mut self, reset: bool) -> Ending {
        self.peer_reset |= reset;
        self.finish(Ending::unclean(1006, crate::socket_error::CLOSED))
    }

    /// Bytes read ahead of tungstenite move into a buffer of their own size (the connection
    /// stops reading for a while).
    pub fn compact(&mut self) {
        if let Some(stream) = self.stream.as_mut() {
            stream.get_mut().compact();
        }
    }

    /// Whether tungstenite's buffers grew beyond what small messages need since they were
    /// last made anew (see `renew_buffers`).
    #[inline]
    pub fn buffers_grew(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|stream| stream.get_ref().buffers_grew())
    }

    /// Gives the connection a new tungstenite context once its buffers grew (a large frame
    /// read or message written: tungstenite keeps that capacity for good) and it holds
    /// nothing: a connection that carried a 16 MiB message then costs what an idle one does.
    #[inline]
    fn renew_buffers_if_grown(&mut self) {
        let (Some(stream), Some(role)) = (self.stream.as_ref(), self.role) else {
            return;
        };
        let transport = stream.get_ref();
        if self.state != State::Open
            || !transport.buffers_grew()
            || !transport.is_idle(self.messages_returned)
        {
            return;
        }
        let Some(stream) = self.stream.take() else {
            return;
        };
        let config = *stream.get_config();
        let mut transport = stream.into_inner();
        transport.reset_largest();
        // Ready at once: a context without a handshake only wraps the stream.
        self.stream =
            WebSocketStream::from_raw_socket(transport, role, Some(config)).now_or_never();
        if self.stream.is_none() {
            self.finish(Ending::unclean(1006, crate::socket_error::CLOSED));
        }
    }

    /// `message`, copied out when it is small and tungstenite's read buffer grew: its bytes
    /// share that buffer's allocation, which a small message waiting for Lua would
    /// otherwise keep whole (a 16 MiB buffer behind a 10-byte message).
    #[inline]
    fn detached_if_grown(&self, message: Received) -> Received {
        let small = (message.payload.len() as u64) < crate::message_count::LARGE_FRAME;
        if small && self.buffers_grew() {
            return Received {
                payload: Bytes::copy_from_slice(&message.payload),
                is_text: message.is_text,
            };
        }
        message
    }

    /// After a ping, before reading on: Pending (woken when the socket has room) while
    /// tungstenite holds unwritten bytes. tungstenite answers every ping and keeps each pong
    /// it could not write, so a peer that pings and never reads would grow that backlog
    /// without end; not reading it meanwhile holds it back instead (RFC 6455 5.5.3 lets the
    /// answer go to the latest ping only).
    #[inline]
    fn poll_pong_room(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.pong_due {
            return Poll::Ready(());
        }
        if let Some(stream) = self.stream.as_mut() {
            ready!(stream.get_mut().poll_write_room(cx));
        }
        self.pong_due = false;
        Poll::Ready(())
    }

    /// When the keepalive timer fires next, if there is one.
    pub fn keepalive_deadline(&self) -> Option<tokio::time::Instant> {
        self.keepalive.as_ref().map(Keepalive::deadline)
    }

    /// Sends the keepalive pings that are due; Ready with how the connection ended when a
    /// pong did not come in time (the peer gets close 1011 if the socket still takes it).
    pub fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> Poll<Ending> {
        loop {
            let (Some(keepalive), Some(stream)) = (self.keepalive.as_mut(), self.stream.as_mut())
            else {
                return Poll::Pending;
            };
            if self.state != State::Open {
                return Poll::Pending;
            }
            match ready!(keepalive.poll_due(cx)) {
                Due::SendPing => {
                    if stream.get_ref().writer_holds_bytes() {
                        // The socket takes nothing now: a ping would only wait in memory
                        // (one more each interval). Try again an interval later.
                        keepalive.restart();
                        continue;
                    }
                    if stream.start_send_unpin(Message::Ping(Bytes::new())).is_ok() {
                        let _ = stream.poll_flush_unpin(cx);
                    }
                }
                Due::Fail => {
                    let notice = Message::Close(Some(CloseFrame {
                        code: CloseCode::Error,
                        reason: "".into(),
                    }));
                    if stream.start_send_unpin(notice).is_ok() {
                        let _ = stream.poll_flush_unpin(cx);
                    }
                    return Poll::Ready(self.finish(Ending::unclean(1006, KEEPALIVE_TIMEOUT)));
                }
            }
        }
    }

    /// Holds keepalive back while nobody reads (a pong may wait behind unread messages).
    pub fn pause_keepalive(&mut self) {
        if let Some(keepalive) = self.keepalive.as_mut() {
            keepalive.restart();
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Opens the TCP (and TLS) connection and performs the opening handshake.
    pub async fn connect(
        &mut self,
        request: ConnectRequest,
        keepalive: Option<KeepaliveSettings>,
    ) -> Result<Accepted, ConnectError> {
        let opened = open(request).await?;
        *self = Connection::open(opened.stream, Role::Client, keepalive);
        Ok(opened.accepted)
    }

    /// The next message, keeping the keepalive going while it waits.
    pub async fn receive(&mut self) -> Result<Received, Ending> {
        poll_fn(|cx| {
            if let Poll::Ready(ending) = self.poll_keepalive(cx) {
                return Poll::Ready(Err(ending));
            }
            self.poll_receive(cx)
        })
        .await
    }

    pub async fn send(&mut self, message: Message) -> Result<(), Ending> {
        let mut unsent = Some(message);
        poll_fn(|cx| self.poll_send(cx, &mut unsent)).await
    }

    /// The close handshake, bounded by `wait`.
    pub async fn close(&mut self, code: u16, reason: &str, wait: Duration) -> Ending {
        let handshake = poll_fn(|cx| self.poll_close(cx, code, reason));
        match tokio::time::timeout(wait, handshake).await {
            Ok(ending) => ending,
            Err(_) => self.finish(Ending::unclean(1006, TIMEOUT)),
        }
    }

    /// The next whole TEXT or BINARY message. Pings are answered and skipped; a close by the
    /// peer completes the close handshake and ends the connection.
    pub fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<Result<Received, Ending>> {
        let stream = match self.stream.as_mut() {
            Some(stream) if self.state == State::Open => stream,
            _ => return Poll::Ready(Err(Ending::unclean(1006, "wrong state"))),
        };
        // Only here, not after a ping below: tungstenite sends the pong with its next read.
        ready!(stream
            .get_mut()
            .poll_worth_reading(cx, self.messages_returned));
        loop {
            ready!(self.poll_pong_room(cx));
            let Some(stream) = self.stream.as_mut() else {
                return Poll::Ready(Err(Ending::unclean(1006, "wrong state")));
            };
            let next = ready!(stream.poll_next_unpin(cx));
            if let Some(Ok(_)) = next {
                self.messages_returned += 1;
                stream.get_mut().message_returned();
            }
            let received = match next {
                Some(Ok(Message::Text(text))) => Ok(Received {
                    payload: text.into(),
                    is_text: true,
                }),
                Some(Ok(Message::Binary(data))) => Ok(Received {
                    payload: data,
                    is_text: false,
                }),
                // tungstenite queues the pong itself and sends it with the next read or write.
                Some(Ok(Message::Ping(_))) => {
                    self.pong_due = stream.get_ref().writer_holds_bytes();
                    continue;
                }
                Some(Ok(Message::Frame(_))) => continue,
                Some(Ok(Message::Pong(_))) => {
                    if let Some(keepalive) = self.keepalive.as_mut() {
                        keepalive.pong_received();
                    }
                    continue;
                }
                Some(Ok(Message::Close(frame))) => {
                    // Send the close frame that tungstenite queued as the reply, then hang up.
                    let _ = stream.poll_flush_unpin(cx);
                    Err(self.finish(Ending::from_close_frame(frame)))
                }
                Some(Err(err)) => Err(self.fail(cx, err)),
                None => Err(self.finish(Ending::unclean(1006, "closed"))),
            };
            let received = received.map(|message| self.detached_if_grown(message));
            if received.is_ok() {
                self.renew_buffers_if_grown();
            }
            return Poll::Ready(received);
        }
    }

    /// Sends `unsent` (taken once it is buffered) and flushes it to the socket.
    pub fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        unsent: &mut Option<Message>,
    ) -> Poll<Result<(), Ending>> {
        let stream = match self.open_stream() {
            Ok(stream) => stream,
            Err(ending) => return Poll::Ready(Err(ending)),
        };
        if let Some(message) = unsent.take() {
            match stream.poll_ready_unpin(cx) {
                Poll::Pending => {
                    *unsent = Some(message);
                    return Poll::Pending;
                }
                Poll::Ready(ready) => {
                    if let Err(err) = ready.and_then(|()| stream.start_send_unpin(message)) {
                        return Poll::Ready(Err(self.fail(cx, err)));
                    }
                }
            }
        }
        match ready!(stream.poll_flush_unpin(cx)) {
            Ok(()) => {
                self.renew_buffers_if_grown();
                Poll::Ready(Ok(()))
            }
            Err(err) => Poll::Ready(Err(self.fail(cx, err))),
        }
    }

    /// Writes a TEXT or BINARY message of `payload` (framed by data_frame.rs, masked when
    /// `masked`: a client's) straight to the socket when it takes it now and nothing else
    /// waits to be written; OPEN only. Refused otherwise, and for a payload above
    /// data_frame::MAX_DIRECT_PAYLOAD: then send it as a message.
    pub fn try_write_data(&mut self, payload: &[u8], is_text: bool, masked: bool) -> FrameWrite {
        let Ok(stream) = self.open_stream() else {
            return FrameWrite::Refused;
        };
        let transport = stream.get_mut();
        data_frame::with_data_frame(payload, is_text, masked, |frame| {
            transport.try_write_frame(frame)
        })
        .unwrap_or(FrameWrite::Refused)
    }

    /// Writes out whatever waits to be written (a frame's rest, tungstenite's buffer).
    pub async fn flush(&mut self) -> Result<(), Ending> {
        poll_fn(|cx| self.poll_send(cx, &mut None)).await
    }

    /// Writes `frame` (from `data_frame::encode_server_frame`) straight to the socket when it takes it
    /// now and nothing else waits to be written (see `Transport::try_write_frame`); OPEN only.
    pub fn try_write_frame(&mut self, frame: &[u8]) -> FrameWrite {
        match self.open_stream() {
            Ok(stream) => stream.get_mut().try_write_frame(frame),
            Err(_) => FrameWrite::Refused,
        }
    }

    /// Starts the close handshake (once), waits for the peer's close frame, and hangs up.
    pub fn poll_close(&mut self, cx: &mut Context<'_>, code: u16, reason: &str) -> Poll<Ending> {
        match self.state {
            State::Closed => return Poll::Ready(Ending::unclean(1006, "wrong state")),
            State::Open => {
                self.state = State::Closing;
                self.close_to_send = Some(Message::Close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.to_string().into(),
                })));
            }
            State::Closing => {}
        }
        let Some(stream) = self.stream.as_mut() else {
            return Poll::Ready(self.finish(Ending::unclean(1006, "closed")));
        };
        if let Some(close) = self.close_to_send.take() {
            match stream.poll_ready_unpin(cx) {
                Poll::Pending => {
                    self.close_to_send = Some(close);
                    return Poll::Pending;
                }
                Poll::Ready(ready) => {
                    if let Err(err) = ready.and_then(|()| stream.start_send_unpin(close)) {
                        let ending = Ending::unclean(1006, ws_error::describe(&err));
                        return Poll::Ready(self.finish(ending));
                    }
                }
            }
        }
        if let Err(err) = ready!(stream.poll_flush_unpin(cx)) {
            return Poll::Ready(self.finish(Ending::unclean(1006, ws_error::describe(&err))));
        }
        loop {
            let next = ready!(stream.poll_next_unpin(cx));
            if let Some(Ok(_)) = next {
                self.messages_returned += 1;
                stream.get_mut().message_returned();
            }
            let ending = match next {
                Some(Ok(Message::Close(reply))) => Ending::from_close_frame(reply),
                // Messages still in flight from the peer are dropped.
                Some(Ok(_)) => continue,
                Some(Err(err)) => Ending::unclean(1006, ws_error::describe(&err)),
                None => Ending::unclean(1006, "closed"),
            };
            return Poll::Ready(self.finish(ending));
        }
    }

    fn open_stream(&mut self) -> Result<&mut Stream, Ending> {
        match self.stream.as_mut() {
            Some(stream) if self.state == State::Open => Ok(stream),
            _ => Err(Ending::unclean(1006, "wrong state")),
        }
    }

    /// Fails the connection after an error: tells a misbehaving peer why (RFC 6455 7.1.7),
    /// as far as the socket takes it without waiting, then hangs up.
    fn fail(&mut self, cx: &mut Context<'_>, err: Error) -> Ending {
        if let Error::Io(io) = &err {
            self.peer_reset |= io.kind() == std::io::ErrorKind::ConnectionReset;
        }
        let bad_length = self
            .stream
            .as_ref()
            .is_some_and(|stream| stream.get_ref().saw_bad_length());
        let ending = if ws_error::is_disconnect(&err) {
            Ending::unclean(1006, ws_error::describe(&err))
        } else {
            // RFC 6455 5.2: a 64-bit length's top bit must be 0; tungstenite calls the
            // frame too large.
            let code = if bad_length {
                1002
            } else {
                ws_error::close_code(&err)
            };
            if let Some(stream) = self.stream.as_mut() {
                let notice = Message::Close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: "".into(),
                }));
                if stream.start_send_unpin(notice).is_ok() {
                    let _ = stream.poll_flush_unpin(cx);
                }
            }
            let reason = if bad_length {
                "protocol error: frame length with its top bit set".to_string()
            } else {
                ws_error::describe(&err)
            };
            Ending::unclean(code, reason)
        };
        self.finish(ending)
    }

    /// Drops the socket and marks the connection CLOSED.
    fn finish(&mut self, ending: Ending) -> Ending {
        self.stream = None;
        self.close_to_send = None;
        self.keepalive = None;
        self.state = State::Closed;
        ending
    }
}

/// Opens the TCP (and TLS) connection and performs the opening handshake.
pub async fn open(request: ConnectRequest) -> Result<Opened, ConnectError> {
    let address = &request.address;
    let tcp = open_tcp(&address.host, address.port, request.on_socket.as_deref()).await?;
    // Small messages must not wait for Nagle's algorithm.
    let _ = tcp.set_nodelay(true);

    let mut http_request = address
        .url
        .as_str()
        .into_client_request()
        .map_err(|err| ws_error::describe_handshake(&err))?;
    for (name, value) in request.headers {
        http_request.headers_mut().insert(name, value);
    }
    if !request.protocols.is_empty() {
        let offered = HeaderValue::from_str(&request.protocols.join(", "))
            .map_err(|_| "invalid protocol name".to_string())?;
        http_request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", offered);
    }
    let tcp = BatchedRead::new(tcp);
    let inner = if address.secure {
        let connector = tokio_rustls::TlsConnector::from(client_config(&request.tls)?);
        let name = ServerName::try_from(address.host.clone())
            .map_err(|_| format!("invalid TLS server name '{}'", address.host))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|err| ws_error::describe_io_or_tls(&err))?;
        Inner::ClientTls(Box::new(tls))
    } else {
        Inner::Plain(tcp)
    };
    let mut transport = Transport::new(inner);
    if let Some(first) = request.protocols.first() {
        transport.accept_missing_subprotocol(first.clone());
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

/// Connects to the first address of `host` that answers. `on_socket` learns each socket
/// before it connects, so that whoever waits for the connect can watch it.
async fn open_tcp(
    host: &str,
    port: u16,
    on_socket: Option<&dyn Fn(std::os::fd::RawFd)>,
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
        .unwrap_or_else(|| crate::socket_error::UNKNOWN_HOST.to_string())
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
