//! TEXT and BINARY frames encoded here, straight from the caller's bytes, for the writes
//! that go around tungstenite: a small send that the socket takes at once
//! (`Connection::try_write_data`: no copy into a message, no pass through tungstenite's
//! writer, which would copy the payload twice more) and a broadcast, encoded once for
//! every member (`BroadcastFrames`: plain, and compressed once per window size for members
//! without context takeover).

use std::cell::RefCell;
use std::rc::Rc;

use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::Message;

use crate::net::deflate;

/// Payloads up to this size are framed here; larger ones go through tungstenite (their
/// copies cost little beside their writes, and the scratch buffer stays small).
pub const MAX_DIRECT_PAYLOAD: usize = 16 * 1024;

thread_local! {
    /// One buffer for every connection of this thread: a frame lives in it only while one
    /// write takes it (the rest of a partial write is copied out).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Calls `write` with the frame of one final TEXT (`is_text`) or BINARY message of
/// `payload`, masked with a fresh random key when `masked` (a client's frame, RFC 6455
/// 5.3). None when the payload is larger than MAX_DIRECT_PAYLOAD.
pub fn with_data_frame<T>(
    payload: &[u8],
    is_text: bool,
    masked: bool,
    write: impl FnOnce(&[u8]) -> T,
) -> Option<T> {
    if payload.len() > MAX_DIRECT_PAYLOAD {
        return None;
    }
    SCRATCH.with(|scratch| {
        let mut frame = scratch.try_borrow_mut().ok()?;
        frame.clear();
        encode_into(
            &mut frame,
            payload,
            is_text,
            masked.then(rand::random::<[u8; 4]>),
        )?;
        Some(write(&frame))
    })
}

/// The bytes a server sends for a TEXT or BINARY `message` (unmasked, so the same for every
/// connection: a broadcast encodes them once). None for the other kinds.
pub fn encode_server_frame(message: &Message) -> Option<Vec<u8>> {
    let (payload, is_text): (&[u8], bool) = match message {
        Message::Text(text) => (text.as_bytes(), true),
        Message::Binary(bytes) => (bytes, false),
        _ => return None,
    };
    let mut frame = Vec::with_capacity(payload.len() + 10);
    encode_into(&mut frame, payload, is_text, None)?;
    Some(frame)
}

/// A broadcast's frames, each made at most once for every member that takes it: the plain
/// frame, and for members that compress each message standing alone (no context takeover)
/// the compressed frame of their window size.
pub struct BroadcastFrames<'a> {
    message: &'a Message,
    plain: Option<Vec<u8>>,
    compressed: RefCell<Vec<(u8, Rc<[u8]>)>>,
}

impl<'a> BroadcastFrames<'a> {
    pub fn new(message: &'a Message) -> Self {
        BroadcastFrames {
            message,
            plain: encode_server_frame(message),
            compressed: RefCell::new(Vec::new()),
        }
    }

    pub fn message(&self) -> &Message {
        self.message
    }

    /// The uncompressed frame; None for a message of another kind than TEXT or BINARY.
    pub fn plain(&self) -> Option<&[u8]> {
        self.plain.as_deref()
    }

    /// The frame compressed standing alone with a window of `window_bits`.
    pub fn compressed(&self, window_bits: u8) -> Option<Rc<[u8]>> {
        let (payload, is_text): (&[u8], bool) = match self.message {
            Message::Text(text) => (text.as_bytes(), true),
            Message::Binary(bytes) => (bytes, false),
            _ => return None,
        };
        let mut made = self.compressed.borrow_mut();
        if let Some((_, frame)) = made.iter().find(|(bits, _)| *bits == window_bits) {
            return Some(Rc::clone(frame));
        }
        let frame: Rc<[u8]> = deflate::standalone_frame(payload, is_text, window_bits).into();
        made.push((window_bits, Rc::clone(&frame)));
        Some(frame)
    }
}

/// Appends to `out` one final TEXT or BINARY frame of `payload`, masked with `mask` if any.
fn encode_into(
    out: &mut Vec<u8>,
    payload: &[u8],
    is_text: bool,
    mask: Option<[u8; 4]>,
) -> Option<()> {
    let data = if is_text { Data::Text } else { Data::Binary };
    let header = FrameHeader {
        opcode: OpCode::Data(data),
        mask,
        ..FrameHeader::default()
    };
    header.format(payload.len() as u64, out).ok()?;
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(mask) = mask {
        apply_mask(&mut out[start..], mask);
    }
    Some(())
}

/// XORs `bytes` with `mask` repeated (RFC 6455 5.3), eight bytes at a time.
pub(crate) fn apply_mask(bytes: &mut [u8], mask: [u8; 4]) {
    let key = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut words = bytes.chunks_exact_mut(8);
    for word in &mut words {
        let mut value = [0; 8];
        value.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(value) ^ key).to_ne_bytes());
    }
    for (byte, key_byte) in words.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= key_byte;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::Bytes;

    /// The frame tungstenite itself would write for the same message and mask.
    fn tungstenite_frame(payload: &[u8], is_text: bool, mask: Option<[u8; 4]>) -> Vec<u8> {
        let data = if is_text { Data::Text } else { Data::Binary };
        let mut frame = Frame::message(Bytes::copy_from_slice(payload), OpCode::Data(data), true);
        frame.header_mut().mask = mask;
        let mut bytes = Vec::new();
        frame.format(&mut bytes).expect("a frame");
        bytes
    }

    #[test]
    fn unmasked_frames_are_tungstenite_s_for_every_length_format() {
        for length in [
            0,
            1,
            125,
            126,
            127,
            65_535.min(MAX_DIRECT_PAYLOAD),
            MAX_DIRECT_PAYLOAD,
        ] {
            let payload = vec![b'a'; length];
            for is_text in [true, false] {
                let ours = with_data_frame(&payload, is_text, false, <[u8]>::to_vec);
                assert_eq!(ours, Some(tungstenite_frame(&payload, is_text, None)));
            }
        }
    }

    #[test]
    fn masked_frames_unmask_to_the_payload_with_the_key_they_carry() {
        for length in [0, 1, 3, 4, 5, 7, 8, 9, 12, 125, 126, 1000, 1027] {
            let payload: Vec<u8> = (0..length).map(|i| (i * 7) as u8).collect();
            let frame = with_data_frame(&payload, false, true, <[u8]>::to_vec).expect("framed");
            let header_length = frame.len() - length - 4;
            let mask: [u8; 4] = frame[header_length..header_length + 4]
                .try_into()
                .expect("4");
            assert_eq!(frame, tungstenite_frame(&payload, false, Some(mask)));
        }
    }

    #[test]
    fn keys_differ_from_frame_to_frame() {
        let key = || with_data_frame(b"x", true, true, |frame| frame[2..6].to_vec());
        let keys: std::collections::HashSet<_> = (0..20).map(|_| key()).collect();
        assert!(keys.len() > 1);
    }

    #[test]
    fn a_broadcast_s_frame_is_tungstenite_s_unmasked_frame() {
        let text = encode_server_frame(&Message::text("héllo"));
        assert_eq!(
            text,
            Some(tungstenite_frame("héllo".as_bytes(), true, None))
        );
        let binary = encode_server_frame(&Message::binary(vec![7; 70_000]));
        assert_eq!(binary, Some(tungstenite_frame(&[7; 70_000], false, None)));
        assert_eq!(encode_server_frame(&Message::Ping(Bytes::new())), None);
    }

    #[test]
    fn payloads_above_the_limit_are_left_to_tungstenite() {
        let payload = vec![0; MAX_DIRECT_PAYLOAD + 1];
        assert_eq!(with_data_frame(&payload, false, true, |_| ()), None);
    }
}

#[cfg(test)]
mod broadcast_tests {
    use super::*;
    use tokio_tungstenite::tungstenite::Bytes;

    #[test]
    fn a_broadcast_compresses_once_per_window_and_the_frame_stands_alone() {
        let message = Message::text("broadcast ".repeat(500));
        let frames = BroadcastFrames::new(&message);
        let first = frames.compressed(12).expect("a data message");
        let again = frames.compressed(12).expect("a data message");
        assert!(Rc::ptr_eq(&first, &again), "made once");
        assert!(!Rc::ptr_eq(
            &first,
            &frames.compressed(15).expect("another window")
        ));
        assert_eq!(first[0], 0xC1, "FIN, RSV1, TEXT");
        assert!(first.len() < 200);
        assert_eq!(frames.plain().map(<[u8]>::len), Some(5000 + 4));
        assert!(BroadcastFrames::new(&Message::Ping(Bytes::new()))
            .compressed(15)
            .is_none());
    }
}
