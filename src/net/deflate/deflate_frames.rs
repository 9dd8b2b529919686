//! The frames tungstenite writes, rewritten before they reach the socket: a whole TEXT or
//! BINARY message (one final frame, as tungstenite writes every message here) goes out
//! compressed, with RSV1 set (and masked anew, for a client). Control frames, and the rare
//! fragmented message, pass through as they are: an uncompressed message is allowed on a
//! connection that negotiated compression (RFC 7692 section 6).

use std::borrow::Cow;

use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use super::codec::{standalone_message, Deflater};
use super::params::Agreed;
use crate::net::data_frame::apply_mask;
use crate::net::message_count::{header_length, payload_length};

pub struct DeflateFrames {
    /// This side is the client: its frames are masked.
    masked: bool,
    agreed: Agreed,
    /// With context takeover, this connection's own stream (made on its first message);
    /// without, messages are compressed by the thread's shared deflater.
    deflater: Option<Deflater>,
    /// Bytes of a frame tungstenite wrote only in part so far.
    partial: Vec<u8>,
}

impl DeflateFrames {
    pub fn new(masked: bool, agreed: Agreed) -> Self {
        DeflateFrames {
            masked,
            agreed,
            deflater: None,
            partial: Vec::new(),
        }
    }

    /// Whether tungstenite wrote part of a frame that is not complete yet.
    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// The window messages are compressed with when each stands alone.
    pub fn standalone_window(&self) -> Option<u8> {
        self.agreed
            .deflate_no_context_takeover
            .then_some(self.agreed.deflate_window_bits)
    }

    /// Takes all of `written` (bytes tungstenite wrote), appending to `out` the frames it
    /// completes, compressed where they are whole messages.
    pub fn take(&mut self, mut written: &[u8], out: &mut Vec<u8>) {
        loop {
            let header_len = header_length(&self.partial);
            if self.partial.len() < header_len {
                if written.is_empty() {
                    return;
                }
                let step = (header_len - self.partial.len()).min(written.len());
                self.partial.extend_from_slice(&written[..step]);
                written = &written[step..];
                continue;
            }
            let whole = header_len + payload_length(&self.partial) as usize;
            let step = (whole - self.partial.len()).min(written.len());
            self.partial.extend_from_slice(&written[..step]);
            written = &written[step..];
            if self.partial.len() < whole {
                return;
            }
            // A whole frame (an empty one needs no byte beyond its header).
            let frame = std::mem::take(&mut self.partial);
            self.rewrite(&frame, header_len, out);
        }
    }

    /// Writes one whole frame to `out`, compressed if it is a whole data message.
    fn rewrite(&mut self, frame: &[u8], header_len: usize, out: &mut Vec<u8>) {
        let first = frame[0];
        let whole_message = first & 0x80 != 0 && first & 0x70 == 0 && matches!(first & 0x0f, 1 | 2);
        if !whole_message {
            out.extend_from_slice(frame);
            return;
        }
        // A client's frame is unmasked into a copy; a server's payload is used in place.
        let payload: Cow<[u8]> = if frame[1] & 0x80 != 0 {
            let at = header_len - 4;
            let mut unmasked = frame[header_len..].to_vec();
            apply_mask(
                &mut unmasked,
                [frame[at], frame[at + 1], frame[at + 2], frame[at + 3]],
            );
            Cow::Owned(unmasked)
        } else {
            Cow::Borrowed(&frame[header_len..])
        };
        let mut compressed = Vec::with_capacity(payload.len() / 2 + 16);
        if self.agreed.deflate_no_context_takeover {
            standalone_message(self.agreed.deflate_window_bits, &payload, &mut compressed);
        } else {
            let bits = self.agreed.deflate_window_bits;
            self.deflater
                .get_or_insert_with(|| Deflater::new(bits))
                .message(&payload, &mut compressed);
        }
        let mask = self.masked.then(rand::random::<[u8; 4]>);
        compressed_frame(&mut compressed, first & 0x0f == 1, mask, out);
    }
}

/// Appends to `out` a final compressed frame (RSV1) of `compressed`, masked with `mask`.
fn compressed_frame(
    compressed: &mut [u8],
    is_text: bool,
    mask: Option<[u8; 4]>,
    out: &mut Vec<u8>,
) {
    let data = if is_text { Data::Text } else { Data::Binary };
    let header = FrameHeader {
        rsv1: true,
        opcode: OpCode::Data(data),
        mask,
        ..FrameHeader::default()
    };
    // Formatting into a Vec cannot fail.
    let _ = header.format(compressed.len() as u64, out);
    if let Some(mask) = mask {
        apply_mask(compressed, mask);
    }
    out.extend_from_slice(compressed);
}

/// A server's frame of one message compressed standing alone (see deflate.rs).
pub(super) fn standalone_frame(payload: &[u8], is_text: bool, window_bits: u8) -> Vec<u8> {
    let mut compressed = Vec::with_capacity(payload.len() / 2 + 16);
    standalone_message(window_bits, payload, &mut compressed);
    let mut frame = Vec::with_capacity(compressed.len() + 10);
    compressed_frame(&mut compressed, is_text, None, &mut frame);
    frame
}
