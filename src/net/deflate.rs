//! permessage-deflate (RFC 7692) below tungstenite, which rejects RSV1 and has no extension
//! support: frames the peer compressed are inflated before tungstenite reads them
//! (inflate_frames.rs), and the messages tungstenite writes are compressed on their way to
//! the socket (deflate_frames.rs). tungstenite stays the protocol engine for everything
//! else. params.rs negotiates, codec.rs holds the deflate streams.
//!
//! A connection holds no deflate state until its first compressed message; without context
//! takeover it holds none between messages either (its deflater is the thread's shared one).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

mod codec;
mod deflate_frames;
mod inflate_frames;
pub mod params;
#[cfg(test)]
mod tests;

use deflate_frames::DeflateFrames;
use inflate_frames::{Failure, InflateFrames};
pub use params::{Agreed, Wishes};

/// The frame of a TEXT (`is_text`) or BINARY message of `payload`, compressed standing
/// alone with a window of `window_bits` (unmasked: a server's, the same for every member
/// of a broadcast).
pub fn standalone_frame(payload: &[u8], is_text: bool, window_bits: u8) -> Vec<u8> {
    deflate_frames::standalone_frame(payload, is_text, window_bits)
}

/// The most bytes read from the socket at once, and the inflated bytes held for
/// tungstenite before the socket is read again.
const BATCH: usize = 64 * 1024;

thread_local! {
    /// Where socket reads land before the inflater takes them: one buffer for the thread,
    /// so that an idle connection holds none.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A connection's compression: the two rewriters and the bytes between them and the socket.
pub struct Compression {
    inflate: InflateFrames,
    deflate: DeflateFrames,
    /// Bytes read from the socket, not yet taken by the inflater.
    raw: Vec<u8>,
    /// Rewritten bytes for tungstenite, and how many it took.
    inflated: Vec<u8>,
    inflated_taken: usize,
    /// Rewritten bytes for the socket.
    encoded: Vec<u8>,
    failure: Option<Failure>,
}

impl Compression {
    /// `is_client`: this side's frames are masked and the peer's are not.
    pub fn new(is_client: bool, agreed: Agreed, max_message: usize) -> Self {
        Compression {
            inflate: InflateFrames::new(
                !is_client,
                agreed.inflate_no_context_takeover,
                max_message,
            ),
            deflate: DeflateFrames::new(is_client, agreed),
            raw: Vec::new(),
            inflated: Vec::new(),
            inflated_taken: 0,
            encoded: Vec::new(),
            failure: None,
        }
    }

    /// Bytes read after the opening handshake's head, before compression was set up.
    pub fn push_raw(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
    }

    /// Why the connection failed here (bad compressed data, an inflated message too
    /// large): the close code and reason.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// Bytes held on the way in and on the way out, for the memory budget.
    pub fn held(&self) -> (usize, usize) {
        let reading = self.raw.len() + self.inflated.len() - self.inflated_taken;
        (reading, self.encoded.len())
    }

    /// Whether bytes wait to be written to the socket (or a frame tungstenite began).
    pub fn has_unwritten(&self) -> bool {
        !self.encoded.is_empty() || self.deflate.has_partial()
    }

    /// The window this side deflates with when every message stands alone (no context
    /// takeover): then one frame compressed for a broadcast serves every such connection.
    pub fn standalone_window(&self) -> Option<u8> {
        self.deflate.standalone_window()
    }

    /// Fills `buf` for tungstenite: inflated bytes first, then work on what was read, then
    /// the socket (`inner`, at most `room` bytes, which `poll_room` gives when needed).
    pub fn poll_read<S: AsyncRead + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        mut poll_room: impl FnMut(&S, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.inflated_taken < self.inflated.len() {
                let rest = &self.inflated[self.inflated_taken..];
                let n = rest.len().min(buf.remaining());
                buf.put_slice(&rest[..n]);
                self.inflated_taken += n;
                if self.inflated_taken == self.inflated.len() {
                    self.inflated = Vec::new();
                    self.inflated_taken = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if !self.raw.is_empty() || self.inflate.has_work() {
                // Inflating adds to what the connection holds: it waits for the memory
                // budget as a socket read does.
                ready!(poll_room(&*inner, cx))?;
                let taken = match self.inflate.feed(&self.raw, &mut self.inflated, BATCH) {
                    Ok(taken) => taken,
                    Err(failure) => {
                        let problem = io::Error::new(io::ErrorKind::InvalidData, failure.1.clone());
                        self.failure = Some(failure);
                        return Poll::Ready(Err(problem));
                    }
                };
                self.raw.drain(..taken);
                if self.raw.is_empty() {
                    // No buffer kept while idle.
                    self.raw = Vec::new();
                }
                if !self.inflated.is_empty() || self.inflate.has_work() {
                    continue;
                }
            }
            let room = ready!(poll_room(&*inner, cx))?;
            let read = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                scratch.resize(BATCH, 0);
                let mut read = ReadBuf::new(&mut scratch[..room.clamp(1, BATCH)]);
                let polled = Pin::new(&mut *inner).poll_read(cx, &mut read);
                let count = read.filled().len();
                polled.map_ok(|()| {
                    // Taken into the inflater's input at once: what it leaves stays here.
                    self.raw.extend_from_slice(&scratch[..count]);
                    count
                })
            });
            if ready!(read)? == 0 {
                // The end of the stream: tungstenite sees it as such.
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// Takes tungstenite's `buf` (compressing its messages) once what was taken before is
    /// written, and writes what it can at once.
    pub fn poll_write<S: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_write_encoded(inner, cx))?;
        self.deflate.take(buf, &mut self.encoded);
        // Written now if the socket takes it; else the next write or flush goes on.
        if let Poll::Ready(Err(err)) = self.poll_write_encoded(inner, cx) {
            return Poll::Ready(Err(err));
        }
        Poll::Ready(Ok(buf.len()))
    }

    /// Writes the rewritten bytes waiting for the socket.
    pub fn poll_write_encoded<S: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.encoded.is_empty() {
            let written = ready!(Pin::new(&mut *inner).poll_write(cx, &self.encoded))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.encoded.drain(..written);
        }
        self.encoded = Vec::new();
        Poll::Ready(Ok(()))
    }
}
