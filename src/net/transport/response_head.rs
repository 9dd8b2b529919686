//! A client's handshake response, read whole before tungstenite sees it, for two things
//! tungstenite does not do:
//! - a client that offered protocols accepts a 101 response naming none (lua-websockets and
//!   Python `websockets` do; RFC 6455 only fails a response naming a protocol that was not
//!   offered). tungstenite refuses it, so the head it reads is given the first offered
//!   protocol, and the connection reports none;
//! - a client that offered compression sets it up from the response's
//!   `Sec-WebSocket-Extensions` before any frame is read: the server may send its first
//!   (compressed) message right behind the head.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::{Replay, Transport};
use crate::net::deflate::{params, Compression, Wishes};
use crate::net::http_head;

#[derive(Default)]
pub(super) struct ResponseHead {
    /// The first protocol offered, given to tungstenite if the response names none.
    protocol: Option<String>,
    /// The compression offered, and the largest message to inflate.
    deflate: Option<(Wishes, usize)>,
    head: Vec<u8>,
    /// Set once the head is read.
    read: bool,
    /// The protocol was filled in.
    filled_in: bool,
    /// The response's compression terms could not be honoured.
    compression_problem: Option<String>,
}

impl ResponseHead {
    pub(super) fn is_unread(&self) -> bool {
        !self.read
    }
}

impl Transport {
    /// A client stream that will accept a response naming no protocol; `offered_first` is
    /// the first protocol the request offers.
    pub fn accept_missing_subprotocol(&mut self, offered_first: String) {
        self.response_head
            .get_or_insert_with(Default::default)
            .protocol = Some(offered_first);
    }

    /// A client stream whose request offers compression with `wishes`; messages are
    /// inflated up to `max_message` bytes.
    pub fn offer_compression(&mut self, wishes: Wishes, max_message: usize) {
        self.response_head
            .get_or_insert_with(Default::default)
            .deflate = Some((wishes, max_message));
    }

    /// Whether the handshake's response named no protocol (and one was filled in for
    /// tungstenite).
    pub fn subprotocol_was_missing(&self) -> bool {
        self.response_head
            .as_ref()
            .is_some_and(|head| head.filled_in)
    }

    /// Why the response's compression terms cannot be honoured, if they cannot.
    pub fn compression_problem(&self) -> Option<&str> {
        self.response_head.as_ref()?.compression_problem.as_deref()
    }

    /// Reads the response head whole, fills the protocol in, sets up compression, and
    /// queues the head for replay.
    pub(super) fn poll_patch_head(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let Some(patch) = self.response_head.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            if let Some(end) = http_head::end_of_head(&patch.head) {
                let head = std::mem::take(&mut patch.head);
                let (head, rest) = head.split_at(end);
                let mut bytes = match &patch.protocol {
                    Some(protocol) => http_head::fill_in_subprotocol(head, protocol)
                        .inspect(|_| patch.filled_in = true)
                        .unwrap_or_else(|| head.to_vec()),
                    None => head.to_vec(),
                };
                patch.read = true;
                let agreed = match &patch.deflate {
                    Some((wishes, max_message)) => {
                        let offered = http_head::response_header(head, "sec-websocket-extensions");
                        match params::accept_response(offered.as_deref(), wishes) {
                            Ok(agreed) => agreed.map(|agreed| (agreed, *max_message)),
                            Err(problem) => {
                                patch.compression_problem = Some(problem);
                                None
                            }
                        }
                    }
                    None => None,
                };
                match agreed {
                    Some((agreed, max_message)) => {
                        // Frames behind the head already go through the inflater.
                        let mut compression = Compression::new(true, agreed, max_message);
                        compression.push_raw(rest);
                        self.compression = Some(Box::new(compression));
                    }
                    None => bytes.extend_from_slice(rest),
                }
                self.replay = Some(Replay { bytes, taken: 0 });
                return Poll::Ready(Ok(()));
            }
            if patch.head.len() > http_head::MAX_HEAD {
                // Not a head we can read: let tungstenite judge what came.
                self.give_up_head();
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 4096];
            let mut buf = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf))?;
            if buf.filled().is_empty() {
                self.give_up_head();
                return Poll::Ready(Ok(()));
            }
            if let Some(patch) = self.response_head.as_mut() {
                patch.head.extend_from_slice(buf.filled());
            }
        }
    }

    /// Hands what was read to tungstenite as it came.
    fn give_up_head(&mut self) {
        if let Some(patch) = self.response_head.as_mut() {
            patch.read = true;
            let bytes = std::mem::take(&mut patch.head);
            self.replay = Some(Replay { bytes, taken: 0 });
        }
    }
}
