//! Frames written around tungstenite, straight to a plain socket: a small send the socket
//! takes at once, and a broadcast's frame encoded once for every member (module comment of
//! transport.rs). Whatever part of a frame the socket did not take goes out before
//! tungstenite's next bytes.
//!
//! A small broadcast frame is held instead ("corked", see runtime/corked.rs): appended to
//! `frame_rest` and written with the others held for this connection at the core's next
//! step. The kernel's work per write is most of what a small delivery costs, and a
//! connection that gets several messages before that step takes them in one write.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use super::{FrameWrite, Inner, Transport};
use crate::net::data_frame::BroadcastFrames;
use crate::net::memory_budget::Part;

/// The most bytes of broadcast frames held for one connection until the core's next step;
/// a frame that would make more is written at once, after them.
pub const MAX_HELD: usize = 16 * 1024;

impl Transport {
    /// Writes `frame`, a whole encoded frame, straight to a plain TCP socket if nothing else
    /// waits to be written. (A TLS connection encrypts per connection anyway: its frames go
    /// through tungstenite.)
    pub fn try_write_frame(&mut self, frame: &[u8]) -> FrameWrite {
        if self.compression.is_some() {
            // Its messages go through tungstenite, and out compressed.
            return FrameWrite::Refused;
        }
        self.write_around(frame)
    }

    /// Holds a broadcast's frame that fits this connection (the plain one, or with
    /// compression the one compressed standing alone for its window) for the next
    /// `write_held`, or writes it now when it is large. Refused when it must go through
    /// tungstenite: TLS, bytes compressed for this connection alone waiting (with context
    /// takeover every message is compressed for its connection), the socket full.
    pub fn try_write_broadcast(&mut self, frames: &BroadcastFrames) -> FrameWrite {
        let Some(compression) = self.compression.as_ref() else {
            return frames
                .plain()
                .map_or(FrameWrite::Refused, |frame| self.hold_around(frame));
        };
        // Behind bytes compressed for this connection alone nothing may go around them.
        let window = compression
            .standalone_window()
            .filter(|_| !compression.has_unwritten());
        match window.and_then(|bits| frames.compressed(bits)) {
            Some(frame) => self.hold_around(&frame),
            None => FrameWrite::Refused,
        }
    }

    /// Appends `frame` to the bytes held for one write, as long as they stay small;
    /// otherwise writes what is held, then the frame, as `write_around`.
    fn hold_around(&mut self, frame: &[u8]) -> FrameWrite {
        let Inner::Plain(tcp) = &self.inner else {
            return FrameWrite::Refused;
        };
        if self.writer_holds_bytes {
            return FrameWrite::Refused;
        }
        let fits = self.frame_rest.len() + frame.len() <= MAX_HELD;
        if fits && !self.socket_was_full {
            self.frame_rest.extend_from_slice(frame);
            self.account.set(Part::Writing, self.frame_rest.len());
            return FrameWrite::Held(frame.len());
        }
        if !self.frame_rest.is_empty() && !self.socket_was_full {
            // Full: what is held goes first, now.
            if let Ok(written) = tcp.get_ref().try_write(&self.frame_rest) {
                self.frame_rest.drain(..written);
            }
            self.socket_was_full = !self.frame_rest.is_empty();
            self.release_rest();
        }
        self.write_around(frame)
    }

    /// Writes a whole encoded frame straight to a plain socket (see `try_write_frame`).
    fn write_around(&mut self, frame: &[u8]) -> FrameWrite {
        let Inner::Plain(tcp) = &self.inner else {
            return FrameWrite::Refused;
        };
        if self.writer_holds_bytes || !self.frame_rest.is_empty() {
            return FrameWrite::Refused;
        }
        match tcp.get_ref().try_write(frame) {
            Ok(written) if written == frame.len() => FrameWrite::Written,
            Ok(written) => {
                self.frame_rest = frame[written..].to_vec();
                self.socket_was_full = true;
                self.account.set(Part::Writing, self.frame_rest.len());
                FrameWrite::Partly
            }
            // Full (or failed: tungstenite's next write meets the same error and reports it).
            Err(_) => FrameWrite::Refused,
        }
    }

    /// Writes what is left of a frame from `try_write_frame`, and the frames held.
    pub(super) fn poll_write_frame_rest(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.frame_rest.is_empty() {
            let written = match Pin::new(&mut self.inner).poll_write(cx, &self.frame_rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(written)) => written,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    self.socket_was_full = true;
                    return Poll::Pending;
                }
            };
            self.frame_rest.drain(..written);
            self.release_rest();
        }
        Poll::Ready(Ok(()))
    }

    /// Accounts for what `frame_rest` holds; once it is empty, its buffer is let go (ten
    /// thousand idle connections would otherwise each keep their largest batch) and frames
    /// may be held again.
    fn release_rest(&mut self) {
        if self.frame_rest.is_empty() {
            self.frame_rest = Vec::new();
            self.socket_was_full = false;
        }
        self.account.set(Part::Writing, self.frame_rest.len());
    }
}
