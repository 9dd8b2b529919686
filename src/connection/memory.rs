//! What a connection does so that it holds no more memory than it needs (see
//! memory_budget.rs): its account, the peer's departure while nothing reads it, tungstenite's
//! grown buffers made anew, and no reading while a pong waits.

use std::task::{ready, Context, Poll};

use futures_util::FutureExt;
use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::WebSocketStream;

use super::{Connection, Ending, Received, State};

use crate::net::memory_budget::Account;
use crate::net::transport::PeerGone;

impl Connection {
    /// What this connection holds, for the memory budget (None once it is closed).
    pub fn account(&self) -> Option<&std::rc::Rc<Account>> {
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
        self.finish(Ending::unclean(1006, crate::net::socket_error::CLOSED))
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
    pub(super) fn renew_buffers_if_grown(&mut self) {
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
            self.finish(Ending::unclean(1006, crate::net::socket_error::CLOSED));
        }
    }

    /// `message`, copied out when it is small and tungstenite's read buffer grew: its bytes
    /// share that buffer's allocation, which a small message waiting for Lua would
    /// otherwise keep whole (a 16 MiB buffer behind a 10-byte message).
    #[inline]
    pub(super) fn detached_if_grown(&self, message: Received) -> Received {
        let small = (message.payload.len() as u64) < crate::net::message_count::LARGE_FRAME;
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
    pub(super) fn poll_pong_room(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.pong_due {
            return Poll::Ready(());
        }
        if let Some(stream) = self.stream.as_mut() {
            ready!(stream.get_mut().poll_write_room(cx));
        }
        self.pong_due = false;
        Poll::Ready(())
    }
}
