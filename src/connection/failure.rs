//! Failing a connection whose peer broke the protocol (RFC 6455 7.1.7): the peer is told why
//! with a close frame, as far as the socket takes it without waiting, and the socket is
//! dropped.
//!
//! A connection that reads ahead (the copas flavours) may defer that: the messages the peer
//! sent before the violation are still delivered, and what the program sends in answer
//! still goes out, before the close. (A peer writing a valid message and a bad frame in one
//! go gets its echo, then the close: what the Autobahn test suite calls strict.) The
//! failure completes when the program's receive reaches it, when it closes, or when the
//! server's handler returns.

use std::task::Context;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message};

use super::{Connection, Ending};
use crate::net::ws_error;

impl Connection {
    /// From now on, answer a violation only once the program reached it (see above).
    pub fn defer_failures(&mut self) {
        self.defers_failures = true;
    }

    /// Whether a violation waits to be answered.
    pub fn has_deferred_failure(&self) -> bool {
        self.deferred.is_some()
    }

    /// Answers a deferred violation now: the close frame, then the socket dropped.
    pub fn finish_deferred(&mut self, cx: &mut Context<'_>) -> Option<Ending> {
        let (code, ending) = self.deferred.take()?;
        self.send_close_notice(cx, code);
        Some(self.finish(ending))
    }

    /// Fails the connection after `err` from a read, or defers that (see above).
    pub(super) fn fail_or_defer(&mut self, cx: &mut Context<'_>, err: Error) -> Ending {
        match self.violation(&err) {
            Some((code, ending)) if self.defers_failures => {
                self.deferred = Some((code, ending.clone()));
                ending
            }
            _ => self.fail(cx, err),
        }
    }

    /// Fails the connection after an error: tells a misbehaving peer why, then hangs up.
    pub(super) fn fail(&mut self, cx: &mut Context<'_>, err: Error) -> Ending {
        if let Error::Io(io) = &err {
            self.peer_reset |= io.kind() == std::io::ErrorKind::ConnectionReset;
        }
        match self.violation(&err) {
            Some((code, ending)) => {
                self.send_close_notice(cx, code);
                self.finish(ending)
            }
            None => self.finish(Ending::unclean(1006, ws_error::describe(&err))),
        }
    }

    /// The close code and ending of a peer's violation; None when the peer went away.
    fn violation(&self, err: &Error) -> Option<(u16, Ending)> {
        let transport = self.stream.as_ref().map(|stream| stream.get_ref());
        // Bad compressed data, or a message that inflates past the limit.
        if let Some((code, reason)) =
            transport.and_then(|transport| transport.compression_failure())
        {
            return Some((code, Ending::unclean(code, reason)));
        }
        if ws_error::is_disconnect(err) {
            return None;
        }
        // RFC 6455 5.2: a 64-bit length's top bit must be 0; tungstenite calls the frame
        // too large.
        if transport.is_some_and(|transport| transport.saw_bad_length()) {
            let reason = "protocol error: frame length with its top bit set";
            return Some((1002, Ending::unclean(1002, reason)));
        }
        let code = ws_error::close_code(err);
        Some((code, Ending::unclean(code, ws_error::describe(err))))
    }

    /// Tells the peer why its connection fails, as far as the socket takes it at once.
    pub(super) fn send_close_notice(&mut self, cx: &mut Context<'_>, code: u16) {
        if let Some(stream) = self.stream.as_mut() {
            let notice = Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            }));
            if stream.start_send_unpin(notice).is_ok() {
                let _ = stream.poll_flush_unpin(cx);
            }
        }
    }
}
