//! A copas connection as a server's broadcast sees it: a message is written to its socket
//! without waiting (a small one held for one write with others at the core's next step)
//! when nothing else waits to be written, else the member is reported busy and Lua sends
//! with a send that waits (nothing lost, at most one message per connection held).

use std::cell::RefCell;
use std::task::Poll;

use super::driven::DrivenConnection;
use crate::connection::State;
use crate::net::data_frame::BroadcastFrames;
use crate::net::transport::FrameWrite;
use crate::runtime::core::Core;

/// A connection as a broadcast sees it.
#[derive(Clone)]
pub(crate) struct Member(pub(super) std::rc::Weak<RefCell<DrivenConnection>>);

/// What became of a broadcast's message for one member.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Offered {
    Sent,
    /// Something else waits to be written first (a Lua send, an earlier broadcast the socket
    /// did not take yet): Lua sends it with a send that waits, so that nothing is lost and
    /// memory stays bounded by one message per connection.
    Busy,
    /// Not OPEN.
    Gone,
}

impl Member {
    /// Writes the broadcast's message to the socket without waiting, when nothing else waits
    /// to be written: one of `frames` (encoded once for every member that takes the same
    /// bytes) straight to the socket when it can, else through tungstenite.
    pub(crate) fn offer(&self, core: &Core, frames: &BroadcastFrames) -> Offered {
        let Some(driven) = self.0.upgrade() else {
            return Offered::Gone;
        };
        let Ok(mut guard) = driven.try_borrow_mut() else {
            return Offered::Busy;
        };
        let driven = &mut *guard;
        if driven.connection.state() != State::Open || driven.ended.is_some() {
            return Offered::Gone;
        }
        if driven.unsent.is_some() || driven.send_waiting || driven.flush_waiting {
            return Offered::Busy;
        }
        let written = driven.connection.try_write_broadcast(frames);
        let mut unsent = match written {
            FrameWrite::Held(bytes) => {
                let first = !std::mem::replace(&mut driven.holds_frames, true);
                core.hold(driven.readiness.id(), first, bytes);
                return Offered::Sent;
            }
            FrameWrite::Written => return Offered::Sent,
            // Only the rest of the frame is left to write: a flush does it.
            FrameWrite::Partly => None,
            FrameWrite::Refused => Some(frames.message().clone()),
        };
        let mut cx = driven.readiness.waker_context();
        let sent = driven.connection.poll_send(&mut cx, &mut unsent);
        match sent {
            Poll::Ready(Ok(())) => Offered::Sent,
            Poll::Ready(Err(ending)) => {
                driven.ended = Some(ending);
                driven.settle(core);
                Offered::Gone
            }
            Poll::Pending if unsent.is_some() => Offered::Busy,
            Poll::Pending => {
                // Taken, not all written: the core flushes it when the socket has room.
                driven.flush_waiting = true;
                Offered::Sent
            }
        }
    }
}

impl DrivenConnection {
    /// Writes the broadcast frames held for this connection (runtime/corked.rs).
    pub(super) fn write_held_frames(&mut self, core: &Core) {
        if !std::mem::take(&mut self.holds_frames) || self.connection.state() != State::Open {
            // A close writes what is held before its frame.
            return;
        }
        let mut cx = self.readiness.waker_context();
        match self.connection.poll_send(&mut cx, &mut None) {
            Poll::Ready(Ok(())) => {}
            // The core flushes the rest when the socket has room.
            Poll::Pending => self.flush_waiting = true,
            Poll::Ready(Err(ending)) => {
                self.ended = Some(ending);
                self.settle(core);
                self.readiness.raise();
            }
        }
    }
}
