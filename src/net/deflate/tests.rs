//! The two rewriters together: what one side's deflate_frames writes, the other side's
//! inflate_frames gives tungstenite as the frames of the uncompressed message.

use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;

use super::codec::Deflater;
use super::deflate_frames::DeflateFrames;
use super::inflate_frames::InflateFrames;
use super::params::Agreed;

const TAKEOVER: Agreed = Agreed {
    deflate_no_context_takeover: false,
    inflate_no_context_takeover: false,
    deflate_window_bits: 15,
};

fn frame(data: Data, payload: &[u8], fin: bool, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut frame = Frame::message(payload.to_vec(), OpCode::Data(data), fin);
    frame.header_mut().mask = mask;
    let mut bytes = Vec::new();
    frame.format(&mut bytes).expect("a frame");
    bytes
}

/// Frames in `bytes`: (first byte, mask, payload unmasked).
fn frames(mut bytes: &[u8]) -> Vec<(u8, Option<[u8; 4]>, Vec<u8>)> {
    let mut found = Vec::new();
    while !bytes.is_empty() {
        let header_len = crate::net::message_count::header_length(bytes);
        let length = crate::net::message_count::payload_length(bytes) as usize;
        let mask = (bytes[1] & 0x80 != 0).then(|| {
            let at = header_len - 4;
            [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]
        });
        let mut payload = bytes[header_len..header_len + length].to_vec();
        if let Some(mask) = mask {
            crate::net::data_frame::apply_mask(&mut payload, mask);
        }
        found.push((bytes[0], mask, payload));
        bytes = &bytes[header_len + length..];
    }
    found
}

/// Feeds `input` to `inflate` in pieces of `piece` bytes; what comes out.
fn inflate_in_pieces(
    inflate: &mut InflateFrames,
    input: &[u8],
    piece: usize,
) -> Result<Vec<u8>, (u16, String)> {
    let mut out = Vec::new();
    for chunk in input.chunks(piece) {
        let mut taken = 0;
        while taken < chunk.len() || inflate.has_work() {
            taken += inflate.feed(&chunk[taken..], &mut out, usize::MAX)?;
        }
    }
    Ok(out)
}

#[test]
fn a_server_message_comes_out_as_the_frame_it_was() {
    let text = br#"{"type":"chat","user":"alice","text":"hello, hello, hello, world"}"#;
    let original = frame(Data::Text, text, true, None);
    let mut deflate = DeflateFrames::new(false, TAKEOVER);
    let mut wire = Vec::new();
    deflate.take(&original, &mut wire);
    let sent = frames(&wire);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, 0x80 | 0x40 | 1, "FIN, RSV1, TEXT");
    assert!(sent[0].2.len() < text.len());
    // Whole, and byte by byte.
    for piece in [wire.len(), 1] {
        let mut inflate = InflateFrames::new(false, false, 1 << 20);
        assert_eq!(
            inflate_in_pieces(&mut inflate, &wire, piece).unwrap(),
            original
        );
    }
}

#[test]
fn a_client_message_is_masked_anew_and_reaches_the_server_with_a_zero_mask() {
    let payload: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
    let original = frame(Data::Binary, &payload, true, Some([1, 2, 3, 4]));
    let mut deflate = DeflateFrames::new(true, TAKEOVER);
    let mut wire = Vec::new();
    // tungstenite's write taken in two parts.
    deflate.take(&original[..3], &mut wire);
    assert!(wire.is_empty());
    deflate.take(&original[3..], &mut wire);
    let sent = frames(&wire);
    assert!(sent[0].1.is_some(), "masked");
    let mut inflate = InflateFrames::new(true, false, 1 << 20);
    let received = frames(&inflate_in_pieces(&mut inflate, &wire, 7).unwrap());
    assert_eq!(received, vec![(0x82, Some([0; 4]), payload)]);
}

#[test]
fn a_large_message_comes_out_in_frames_and_context_carries_over() {
    // Bytes that do not compress alone, shorter than the window: the second copy refers
    // back to the first.
    let mut state = 0x2545_f491_u32;
    let payload: Vec<u8> = (0..20_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    let mut deflate = DeflateFrames::new(false, TAKEOVER);
    let mut wire = Vec::new();
    deflate.take(&frame(Data::Binary, &payload, true, None), &mut wire);
    let first_size = wire.len();
    deflate.take(&frame(Data::Binary, &payload, true, None), &mut wire);
    assert!(
        wire.len() - first_size < first_size / 2,
        "the second refers to the first"
    );
    let mut inflate = InflateFrames::new(false, false, 1 << 20);
    let received = frames(&inflate_in_pieces(&mut inflate, &wire, 1000).unwrap());
    let mut messages = vec![Vec::new()];
    for (first, _, bytes) in &received {
        messages.last_mut().unwrap().extend_from_slice(bytes);
        if first & 0x80 != 0 {
            messages.push(Vec::new());
        }
    }
    assert_eq!(messages, vec![payload.clone(), payload, Vec::new()]);
    assert_eq!(received[0].0, 0x02, "BINARY, not final");
    assert_eq!(received[1].0, 0x80, "a final continuation");
}

#[test]
fn control_frames_between_compressed_fragments_and_other_frames_pass_through() {
    // A message compressed in two fragments, a ping between them.
    let mut compressed = Vec::new();
    Deflater::new(15).message(b"fragmented message", &mut compressed);
    let (one, two) = compressed.split_at(compressed.len() / 2);
    let mut first = frame(Data::Text, one, false, None);
    first[0] |= 0x40;
    let ping = {
        let mut bytes = Vec::new();
        Frame::ping(b"p".to_vec()).format(&mut bytes).unwrap();
        bytes
    };
    let second = frame(Data::Continue, two, true, None);
    let plain = frame(Data::Binary, b"not compressed", true, None);
    let mut rsv1_ping = ping.clone();
    rsv1_ping[0] |= 0x40;
    let wire = [
        first,
        ping.clone(),
        second,
        plain.clone(),
        rsv1_ping.clone(),
    ]
    .concat();
    let mut inflate = InflateFrames::new(false, false, 1 << 20);
    let out = inflate_in_pieces(&mut inflate, &wire, 3).unwrap();
    let received = frames(&out);
    assert_eq!(received[0], (0x89, None, b"p".to_vec()));
    assert_eq!(received[1], (0x81, None, b"fragmented message".to_vec()));
    assert!(
        out.ends_with(&[plain, rsv1_ping].concat()),
        "passed through as they came"
    );
}

#[test]
fn a_bomb_stops_at_the_limit_and_garbage_fails_with_1007() {
    let zeros = vec![0u8; 50_000_000];
    let mut deflate = DeflateFrames::new(false, TAKEOVER);
    let mut wire = Vec::new();
    deflate.take(&frame(Data::Binary, &zeros, true, None), &mut wire);
    assert!(wire.len() < 100_000);
    let mut inflate = InflateFrames::new(false, false, 1_000_000);
    let (code, reason) = inflate_in_pieces(&mut inflate, &wire, 4096).unwrap_err();
    assert_eq!(code, 1009);
    assert!(reason.contains("1000000"), "{reason}");

    let mut garbage = frame(Data::Text, &[0xff; 40], true, None);
    garbage[0] |= 0x40;
    let mut inflate = InflateFrames::new(false, false, 1_000_000);
    assert_eq!(
        inflate_in_pieces(&mut inflate, &garbage, 100)
            .unwrap_err()
            .0,
        1007
    );
}

#[test]
fn an_empty_message_comes_out_empty() {
    // Python's websockets and RFC 7692 7.2.3.6: an empty message's payload is 0x00.
    let mut inflate = InflateFrames::new(false, false, 1000);
    let out = inflate_in_pieces(&mut inflate, &[0xC1, 0x01, 0x00], 3).unwrap();
    assert_eq!(frames(&out), vec![(0x81, None, Vec::new())]);
    // And with no payload at all.
    let mut inflate = InflateFrames::new(false, false, 1000);
    let out = inflate_in_pieces(&mut inflate, &[0xC1, 0x00], 2).unwrap();
    assert_eq!(frames(&out), vec![(0x81, None, Vec::new())]);
}

#[test]
fn an_empty_message_and_an_empty_ping_go_out() {
    let mut deflate = DeflateFrames::new(false, TAKEOVER);
    let mut wire = Vec::new();
    deflate.take(&frame(Data::Text, b"", true, None), &mut wire);
    let mut ping = Vec::new();
    Frame::ping(Vec::new()).format(&mut ping).unwrap();
    deflate.take(&ping, &mut wire);
    assert_eq!(
        frames(&wire),
        vec![(0xC1, None, vec![0x00]), (0x89, None, Vec::new())]
    );
}
