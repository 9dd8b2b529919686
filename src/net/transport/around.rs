//! Frames written around tungstenite, straight to a plain socket: a small send the socket
//! takes at once, and a broadcast's frame encoded once for every member (module comment of
//! transport.rs). Whatever part of a frame the socket did not take goes out before
//! tungstenite's next bytes.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;

use super::{FrameWrite, Inner, Transport};
use crate::net::data_frame::BroadcastFrames;
use crate::net::memory_budget::Part;

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

    /// Writes a broadcast's frame that fits this connection: the plain one, or with
    /// compression the one compressed standing alone for its window (with context
    /// takeover, a message goes through tungstenite and is compressed for this connection).
    pub fn try_write_broadcast(&mut self, frames: &BroadcastFrames) -> FrameWrite {
        let Some(compression) = self.compression.as_ref() else {
            return frames
                .plain()
                .map_or(FrameWrite::Refused, |frame| self.write_around(frame));
        };
        // Behind bytes compressed for this connection alone nothing may go around them.
        let window = compression
            .standalone_window()
            .filter(|_| !compression.has_unwritten());
        match window.and_then(|bits| frames.compressed(bits)) {
            Some(frame) => self.write_around(&frame),
            None => FrameWrite::Refused,
        }
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
                self.account.set(Part::Writing, self.frame_rest.len());
                FrameWrite::Partly
            }
            // Full (or failed: tungstenite's next write meets the same error and reports it).
            Err(_) => FrameWrite::Refused,
        }
    }

    /// Writes what is left of a frame from `try_write_frame`.
    pub(super) fn poll_write_frame_rest(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.frame_rest.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.frame_rest))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.frame_rest.drain(..written);
            self.account.set(Part::Writing, self.frame_rest.len());
        }
        Poll::Ready(Ok(()))
    }
}
