//! One WebSocket connection, client or server: receive, send and close, as async Rust
//! (connect.rs opens a client's).
//!
//! Nothing here knows about Lua. Callers bound each operation with their own timeout; every
//! operation leaves the connection consistent when its future is dropped half-way, because
//! tokio-tungstenite keeps partial frames buffered in the stream.

use std::future::poll_fn;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use crate::connection::connect::{open, Accepted, ConnectError, ConnectRequest, Stream};
use crate::connection::keepalive::{Due, Keepalive, KeepaliveSettings};
use crate::net::data_frame::{self, BroadcastFrames};
use crate::net::socket_error::TIMEOUT;
use crate::net::socket_error::WRONG_STATE;
use crate::net::transport::FrameWrite;
use crate::net::ws_error;

pub(crate) mod connect;
mod failure;
pub(crate) mod keepalive;
mod memory;
pub(crate) mod request;
pub(crate) mod round_trip;
pub(crate) mod settings;

use round_trip::RoundTrip;

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
    /// The compression its handshake agreed to (`'deflate'`), if any.
    compression: Option<&'static str>,
    /// A peer's protocol violation is answered only once the messages it sent before are
    /// answered (failure.rs).
    defers_failures: bool,
    /// The close code and ending of a violation not answered yet.
    deferred: Option<(u16, Ending)>,
    /// The program's last `ping()` and its round trip.
    round_trip: RoundTrip,
}

impl Connection {
    /// An OPEN connection over a stream whose handshake is done, with keepalive when
    /// `keepalive` is set (inside the runtime: its timer belongs to it).
    pub fn open(stream: Stream, role: Role, keepalive: Option<KeepaliveSettings>) -> Self {
        let compression = stream.get_ref().compression_name();
        Connection {
            compression,
            defers_failures: false,
            deferred: None,
            stream: Some(stream),
            state: State::Open,
            close_to_send: None,
            keepalive: keepalive.map(Keepalive::new),
            messages_returned: 0,
            pong_due: false,
            role: Some(role),
            peer_reset: false,
            round_trip: RoundTrip::default(),
        }
    }

    /// The ping a program's `ping([payload])` sends (a payload of our own when None); its
    /// pong's arrival is awaited from now on.
    pub fn start_ping(&mut self, payload: Option<Bytes>) -> Message {
        Message::Ping(self.round_trip.start(payload))
    }

    /// The round trip of the last `start_ping`, once its pong came.
    pub fn take_round_trip(&mut self) -> Option<Duration> {
        self.round_trip.take()
    }

    /// Whether the round trip of the last `start_ping` is known and not taken yet.
    pub fn has_round_trip(&self) -> bool {
        self.round_trip.is_measured()
    }

    /// Whether the pong of the last `start_ping` is still awaited.
    pub fn awaits_pong(&self) -> bool {
        self.round_trip.is_waiting()
    }

    /// The bytes sent that the socket has not taken yet.
    pub fn unwritten(&self) -> usize {
        self.stream
            .as_ref()
            .map_or(0, |stream| stream.get_ref().unwritten())
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
            if self.state != State::Open || self.deferred.is_some() {
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

    /// The compression the handshake agreed to: `'deflate'`, or None.
    pub fn compression(&self) -> Option<&'static str> {
        self.compression
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
        if let Some((_, ending)) = &self.deferred {
            return Poll::Ready(Err(ending.clone()));
        }
        let stream = match self.stream.as_mut() {
            Some(stream) if self.state == State::Open => stream,
            _ => return Poll::Ready(Err(Ending::unclean(1006, WRONG_STATE))),
        };
        // Only here, not after a ping below: tungstenite sends the pong with its next read.
        ready!(stream
            .get_mut()
            .poll_worth_reading(cx, self.messages_returned));
        loop {
            ready!(self.poll_pong_room(cx));
            let Some(stream) = self.stream.as_mut() else {
                return Poll::Ready(Err(Ending::unclean(1006, WRONG_STATE)));
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
                Some(Ok(Message::Pong(payload))) => {
                    if let Some(keepalive) = self.keepalive.as_mut() {
                        keepalive.pong_received();
                    }
                    self.round_trip.pong(&payload);
                    continue;
                }
                Some(Ok(Message::Close(frame))) => {
                    // Send the close frame that tungstenite queued as the reply, then hang up.
                    let _ = stream.poll_flush_unpin(cx);
                    Err(self.finish(Ending::from_close_frame(frame)))
                }
                Some(Err(err)) => Err(self.fail_or_defer(cx, err)),
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

    /// Writes the frame of `frames` that fits this connection straight to the socket when it
    /// takes it now and nothing else waits to be written (see
    /// `Transport::try_write_broadcast`); OPEN only.
    pub fn try_write_broadcast(&mut self, frames: &BroadcastFrames) -> FrameWrite {
        match self.open_stream() {
            Ok(stream) => stream.get_mut().try_write_broadcast(frames),
            Err(_) => FrameWrite::Refused,
        }
    }

    /// Starts the close handshake (once), waits for the peer's close frame, and hangs up.
    pub fn poll_close(&mut self, cx: &mut Context<'_>, code: u16, reason: &str) -> Poll<Ending> {
        if let Some(ending) = self.finish_deferred(cx) {
            return Poll::Ready(ending);
        }
        match self.state {
            State::Closed => return Poll::Ready(Ending::unclean(1006, WRONG_STATE)),
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
            _ => Err(Ending::unclean(1006, WRONG_STATE)),
        }
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
