//! The byte stream under every WebSocket: TCP, TLS as a client, or TLS as a server, all read
//! in batches (batched_read.rs).
//!
//! Two adjustments apply during the opening handshake only, before tungstenite sees a byte:
//! - `replay`: bytes read already (the server reads the request head itself, so that Lua can
//!   look at the request before the upgrade) are handed out again first;
//! - `lenient_subprotocol`: a client that offered protocols accepts a 101 response naming
//!   none (lua-websockets and Python `websockets` do; RFC 6455 only fails a response naming a
//!   protocol that was not offered). tungstenite refuses it, so the head it reads is given the
//!   first offered protocol, and the connection reports none.
//!
//! A broadcast encodes its frame once and offers the same bytes to every connection
//! (`try_write_frame`), around tungstenite: only when tungstenite holds nothing unwritten, and
//! whatever part of the frame the socket did not take goes out before tungstenite's next bytes.

use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::net::batched_read::BatchedRead;
use crate::net::deflate::Compression;
use crate::net::departure;
pub use crate::net::departure::PeerGone;
use crate::net::memory_budget::{Account, Part};
use crate::net::message_count::MessageCount;
use crate::net::socket::Socket;

/// The socket under a connection (TCP or unix), read in batches.
pub type Wire = BatchedRead<Socket>;

/// The stream under a transport (its AsyncRead and AsyncWrite are in inner_io.rs).
pub enum Inner {
    Plain(Wire),
    ClientTls(Box<tokio_rustls::client::TlsStream<Wire>>),
    ServerTls(Box<tokio_rustls::server::TlsStream<Wire>>),
}

pub struct Transport {
    inner: Inner,
    replay: Option<Replay>,
    /// A client's handshake response, read whole before tungstenite sees it
    /// (response_head.rs).
    response_head: Option<ResponseHead>,
    /// permessage-deflate, once negotiated (deflate.rs).
    compression: Option<Box<Compression>>,
    /// The part of a frame from `try_write_frame` that the socket has not taken yet, or
    /// broadcast frames held for one write (around.rs).
    frame_rest: Vec<u8>,
    /// The socket did not take all of `frame_rest`: no more frames are held until it has.
    socket_was_full: bool,
    /// tungstenite's last write was refused or taken only in part: it holds bytes that must
    /// go out before any frame written around it. (tungstenite always offers its whole
    /// buffer, and with no write buffer (options.rs) writes as soon as it has a frame, so a
    /// write taken whole leaves it empty.)
    writer_holds_bytes: bool,
    /// The messages in the bytes handed to tungstenite (see `poll_worth_reading`).
    handed: MessageCount,
    /// What this connection holds, for the memory budget (memory_budget.rs).
    account: Rc<Account>,
    /// The last read from the socket was held back because the budget had no room.
    waiting_for_budget: bool,
    /// The largest write tungstenite made since `reset_largest`: its write buffer keeps
    /// that capacity.
    largest_write: usize,
}

/// What became of a frame offered with `Transport::try_write_frame`.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameWrite {
    Written,
    /// Held, with this many bytes, for one write with the others at the core's next step
    /// (`poll_write_held`).
    Held(usize),
    /// The socket took a part; the rest goes out with the next flush or write.
    Partly,
    /// Nothing was written: the socket is full, something else waits, or this is TLS.
    Refused,
}

/// Bytes to hand out before reading the socket again.
struct Replay {
    bytes: Vec<u8>,
    taken: usize,
}

impl Transport {
    pub fn new(inner: Inner) -> Self {
        Transport {
            inner,
            replay: None,
            response_head: None,
            compression: None,
            frame_rest: Vec::new(),
            socket_was_full: false,
            writer_holds_bytes: false,
            handed: MessageCount::default(),
            account: Account::new(),
            waiting_for_budget: false,
            largest_write: 0,
        }
    }

    /// What this connection holds, for the memory budget.
    pub fn account(&self) -> &Rc<Account> {
        &self.account
    }

    /// The bytes written to this transport that the socket has not taken yet.
    pub fn unwritten(&self) -> usize {
        self.account.holds(Part::Writing)
    }

    /// Whether tungstenite's last write was refused or taken only in part.
    #[inline]
    pub fn writer_holds_bytes(&self) -> bool {
        self.writer_holds_bytes
            || !self.frame_rest.is_empty()
            || self.compression.as_ref().is_some_and(|c| c.has_unwritten())
    }

    /// Tells that tungstenite returned a message (of any kind): the bytes it came in are no
    /// longer held.
    #[inline]
    pub fn message_returned(&mut self) {
        self.handed.message_returned();
        self.count_reading();
    }

    /// Whether tungstenite holds nothing but what it must keep: every message handed to it
    /// returned, no partial frame, nothing waiting to be written.
    #[inline]
    pub fn is_idle(&self, returned: u64) -> bool {
        self.handed.all_returned(returned)
            && self.handed.at_frame_boundary()
            && !self.writer_holds_bytes()
            && self.replay.is_none()
    }

    /// Whether tungstenite's buffers have grown large since `reset_largest` (a large frame
    /// read, a large message written): they keep that capacity until it is made anew.
    #[inline]
    pub fn buffers_grew(&self) -> bool {
        self.handed.largest_frame() > crate::net::message_count::LARGE_FRAME
            || self.largest_write as u64 > crate::net::message_count::LARGE_FRAME
    }

    pub fn reset_largest(&mut self) {
        self.handed.reset_largest_frame();
        self.largest_write = 0;
        self.count_reading();
    }

    /// A frame announced a 64-bit length with its top bit set (a protocol error).
    pub fn saw_bad_length(&self) -> bool {
        self.handed.saw_bad_length()
    }

    /// Moves bytes read ahead into a buffer of their size (see BatchedRead::compact).
    pub fn compact(&mut self) {
        if let Some(tcp) = self.wire_mut() {
            tcp.compact();
        }
    }

    fn wire_mut(&mut self) -> Option<&mut Wire> {
        match &mut self.inner {
            Inner::Plain(tcp) => Some(tcp),
            Inner::ClientTls(tls) => Some(tls.get_mut().0),
            Inner::ServerTls(tls) => Some(tls.get_mut().0),
        }
    }

    fn wire(&self) -> &Wire {
        match &self.inner {
            Inner::Plain(tcp) => tcp,
            Inner::ClientTls(tls) => tls.get_ref().0,
            Inner::ServerTls(tls) => tls.get_ref().0,
        }
    }

    /// What became of the peer, as far as the kernel tells without reading (for a
    /// connection nothing reads now: its messages wait for Lua, or the budget has no room).
    /// Its readiness is left alone: clearing it would hide bytes still to read.
    pub fn peer_gone(&self) -> Option<PeerGone> {
        departure::peer_gone(self.wire().get_ref())
    }

    /// Whether the last read from the socket was held back for the memory budget.
    pub fn is_waiting_for_budget(&self) -> bool {
        self.waiting_for_budget
    }

    /// Ready when tungstenite holds no unwritten bytes, or the socket has room for them.
    pub fn poll_write_room(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.writer_holds_bytes() {
            return Poll::Ready(());
        }
        self.wire().get_ref().poll_write_ready(cx).map(|_| ())
    }

    /// Bytes read from the socket and not returned as a message yet, for the account.
    #[inline]
    fn count_reading(&mut self) {
        let leftover = match &self.inner {
            Inner::Plain(tcp) => tcp.leftover_len(),
            _ => 0,
        };
        let replay = self
            .replay
            .as_ref()
            .map_or(0, |replay| replay.bytes.len() - replay.taken);
        // Buffers that grew keep their capacity until the connection renews them: counted,
        // so that what the budget bounds is what memory holds.
        let grown = match self.buffers_grew() {
            true => self.handed.largest_frame() as usize + self.largest_write,
            false => 0,
        };
        let compressed = self.compression.as_ref().map_or(0, |c| c.held().0);
        let reading = self.handed.held() as usize + leftover + replay + grown + compressed;
        self.account.set(Part::Reading, reading);
    }

    /// The bytes the next socket read may bring: Pending (woken when there is room, or
    /// when the peer resets) while the memory budget has none.
    fn poll_read_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        room_for(&self.inner, &self.account, &mut self.waiting_for_budget, cx)
    }

    /// Ready when a read by tungstenite may find something; Pending, with `cx` woken when
    /// the socket has bytes, when it cannot: every message in the bytes it was handed is
    /// among the `returned` ones, none of its bytes wait to be written (its reads write
    /// those first), and no bytes read from the socket wait here. Skipping that read saves
    /// tungstenite zero-filling its read buffer for nothing (message_count.rs).
    pub fn poll_worth_reading(&mut self, cx: &mut Context<'_>, returned: u64) -> Poll<()> {
        let Inner::Plain(tcp) = &self.inner else {
            return Poll::Ready(());
        };
        if self.compression.is_some() {
            return Poll::Ready(());
        }
        let idle = !self.writer_holds_bytes
            && self.frame_rest.is_empty()
            && self.replay.is_none()
            && !tcp.has_leftover()
            && self.handed.all_returned(returned);
        if idle && tcp.get_ref().poll_read_ready(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(())
    }

    /// Writes the compressed bytes waiting for the socket, if any.
    fn poll_write_compressed(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(compression) = self.compression.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let written = compression.poll_write_encoded(&mut self.inner, cx);
        self.account.set(Part::Writing, compression.held().1);
        written
    }

    /// Compresses and inflates messages from now on (a server, once its handshake agreed
    /// to it).
    pub fn enable_compression(&mut self, compression: Compression) {
        self.compression = Some(Box::new(compression));
    }

    /// `'deflate'` when messages may be compressed.
    pub fn compression_name(&self) -> Option<&'static str> {
        self.compression.as_ref().map(|_| "deflate")
    }

    /// Why the connection failed in its compression layer: the close code and reason.
    pub fn compression_failure(&self) -> Option<(u16, String)> {
        self.compression.as_ref()?.failure().cloned()
    }

    /// The stream, with `bytes` (read from it before) to be read again first.
    pub fn with_replay(inner: Inner, bytes: Vec<u8>) -> Self {
        let mut transport = Transport::new(inner);
        if !bytes.is_empty() {
            transport.replay = Some(Replay { bytes, taken: 0 });
        }
        transport
    }
}

/// The bytes the next read of `inner` may bring (see `Transport::poll_read_room`).
fn room_for(
    inner: &Inner,
    account: &Account,
    waiting_for_budget: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if let Inner::Plain(tcp) = inner {
        if tcp.leftover_len() > 0 {
            return Poll::Ready(Ok(usize::MAX));
        }
    }
    match account.poll_room(cx) {
        Poll::Ready(room) => {
            *waiting_for_budget = false;
            Poll::Ready(Ok(room))
        }
        Poll::Pending => {
            *waiting_for_budget = true;
            Poll::Pending
        }
    }
}

impl Drop for Transport {
    /// The account may outlive the transport (messages read ahead wait for Lua): what the
    /// transport held is gone with it.
    fn drop(&mut self) {
        self.account.set(Part::Reading, 0);
        self.account.set(Part::Writing, 0);
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = this.poll_read_handed(cx, buf);
        this.handed.follow(&buf.filled()[before..]);
        this.count_reading();
        read
    }
}

impl Transport {
    /// The next bytes for tungstenite: a replay first, then the socket, as far as the
    /// memory budget allows.
    fn poll_read_handed(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self
            .response_head
            .as_ref()
            .is_some_and(ResponseHead::is_unread)
        {
            ready!(self.poll_patch_head(cx))?;
        }
        if let Some(replay) = self.replay.as_mut() {
            let rest = &replay.bytes[replay.taken..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            replay.taken += n;
            if replay.taken == replay.bytes.len() {
                self.replay = None;
            }
            return Poll::Ready(Ok(()));
        }
        if let Some(mut compression) = self.compression.take() {
            let (account, waiting) = (&self.account, &mut self.waiting_for_budget);
            let read = compression.poll_read(&mut self.inner, cx, buf, |inner, cx| {
                room_for(inner, account, waiting, cx)
            });
            self.compression = Some(compression);
            return read;
        }
        let room = ready!(self.poll_read_room(cx))?;
        match &mut self.inner {
            Inner::Plain(tcp) => {
                tcp.set_limit(room);
                Pin::new(tcp).poll_read(cx, buf)
            }
            tls => {
                let part = buf.initialize_unfilled_to(room.min(buf.remaining()));
                let mut limited = ReadBuf::new(part);
                let read = Pin::new(tls).poll_read(cx, &mut limited);
                let count = limited.filled().len();
                buf.advance(count);
                read
            }
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.compression.is_some() {
            // A broadcast's frame begun around tungstenite goes out first.
            match this.poll_write_frame_rest(cx) {
                Poll::Ready(Ok(())) => {}
                other => {
                    this.writer_holds_bytes = true;
                    return other.map_ok(|()| 0);
                }
            }
        }
        if let Some(compression) = this.compression.as_mut() {
            let result = compression.poll_write(&mut this.inner, cx, buf);
            this.writer_holds_bytes = result.is_pending();
            let (_, unsent) = compression.held();
            this.account.set(Part::Writing, unsent);
            return result;
        }
        let result = match this.poll_write_frame_rest(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_write(cx, buf),
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        };
        // tungstenite offers its whole write buffer each time: what the socket did not take
        // is what it holds.
        let unwritten = match result {
            Poll::Ready(Ok(n)) => buf.len() - n.min(buf.len()),
            _ => buf.len(),
        };
        this.writer_holds_bytes = unwritten > 0;
        if buf.len() > this.largest_write {
            this.largest_write = buf.len();
            this.count_reading();
        }
        this.account
            .set(Part::Writing, unwritten + this.frame_rest.len());
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_frame_rest(cx))?;
        ready!(self.poll_write_compressed(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_frame_rest(cx))?;
        ready!(self.poll_write_compressed(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

mod around;
mod response_head;
use response_head::ResponseHead;

#[cfg(test)]
mod tests;
