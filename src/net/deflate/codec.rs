//! The deflate streams of permessage-deflate (RFC 7692 section 7.2), over flate2 with the
//! zlib-rs backend: raw deflate, each message ended by an empty sync-flush block whose last
//! four bytes (00 00 ff ff) are left off the wire and put back before inflating.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The bytes a sync flush ends with, which the sender leaves off.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The deflate level: zlib's default, as Node's `ws` and Python's `websockets` use.
const LEVEL: u32 = 6;

/// Compresses messages with a window of `window_bits`; the stream goes on from message to
/// message unless reset (context takeover).
pub struct Deflater {
    compress: Compress,
}

impl Deflater {
    pub fn new(window_bits: u8) -> Self {
        Deflater {
            compress: Compress::new_with_window_bits(Compression::new(LEVEL), false, window_bits),
        }
    }

    /// Appends to `out` the compressed payload of one whole message (without TAIL).
    pub fn message(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let start = self.compress.total_in();
        let first = out.len();
        loop {
            let consumed = (self.compress.total_in() - start) as usize;
            out.reserve((input.len() - consumed) / 2 + 64);
            // Compressing into memory cannot fail: only a misused stream errs.
            let _ = self
                .compress
                .compress_vec(&input[consumed..], out, FlushCompress::Sync);
            let consumed = (self.compress.total_in() - start) as usize;
            // Done once all is in and the flush did not run out of room.
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out[first..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if out.len() == first {
            // Nothing new to flush (an empty message right after another message's flush):
            // RFC 7692 7.2.3.6 sends a single 0x00, which with the tail the receiver adds
            // is an empty stored block.
            out.push(0x00);
        }
    }

    /// Forgets the stream so far: the next message stands alone.
    pub fn reset(&mut self) {
        self.compress.reset();
    }
}

thread_local! {
    /// Deflaters for connections without context takeover, one per window size, shared by
    /// every such connection of the thread: each message is compressed whole, then the
    /// stream is reset. (A deflater takes about 270 KiB.)
    static SHARED: RefCell<Vec<(u8, Deflater)>> = const { RefCell::new(Vec::new()) };
}

/// Compresses `input` as one message that stands alone, appending it to `out`.
pub fn standalone_message(window_bits: u8, input: &[u8], out: &mut Vec<u8>) {
    SHARED.with(|shared| {
        let mut shared = shared.borrow_mut();
        let index = match shared.iter().position(|(bits, _)| *bits == window_bits) {
            Some(index) => index,
            None => {
                shared.push((window_bits, Deflater::new(window_bits)));
                shared.len() - 1
            }
        };
        let deflater = &mut shared[index].1;
        deflater.message(input, out);
        deflater.reset();
    });
}

/// Inflates messages with a 15-bit window, which decodes any window a peer deflates with.
pub struct Inflater {
    decompress: Decompress,
}

/// Inflated data that is not a deflate stream.
#[derive(Debug, PartialEq, Eq)]
pub struct BadData;

impl Inflater {
    pub fn new() -> Self {
        Inflater {
            decompress: Decompress::new_with_window_bits(false, 15),
        }
    }

    /// Inflates from `input` into `out` until `out` holds `limit` bytes; returns how many
    /// input bytes it took. Called again with the rest while it took less than all (`out`
    /// was full).
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<usize, BadData> {
        let mut chunk = [0u8; 16 * 1024];
        let mut consumed = 0;
        loop {
            let want = limit.saturating_sub(out.len()).min(chunk.len());
            if want == 0 {
                return Ok(consumed);
            }
            let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
            let status = self
                .decompress
                .decompress(
                    &input[consumed..],
                    &mut chunk[..want],
                    FlushDecompress::Sync,
                )
                .map_err(|_| BadData)?;
            let produced = (self.decompress.total_out() - out_before) as usize;
            let taken = (self.decompress.total_in() - in_before) as usize;
            consumed += taken;
            out.extend_from_slice(&chunk[..produced]);
            if status == Status::StreamEnd {
                // A block with BFINAL set ended the stream (RFC 7692 7.2.3.3): what follows
                // starts a new one.
                self.decompress.reset(false);
            }
            if consumed == input.len() && produced < want {
                return Ok(consumed);
            }
            if produced == 0 && taken == 0 && status != Status::StreamEnd {
                // No progress with input left and room to spare: not a deflate stream.
                return Err(BadData);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(
        inflater: &mut Inflater,
        payload: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, BadData> {
        let mut input = payload.to_vec();
        input.extend_from_slice(&TAIL);
        let mut out = Vec::new();
        let mut taken = 0;
        loop {
            taken += inflater.inflate(&input[taken..], &mut out, limit)?;
            if out.len() >= limit || taken == input.len() {
                return Ok(out);
            }
        }
    }

    #[test]
    fn messages_round_trip_with_and_without_context_takeover() {
        let text = br#"{"user":"alice","text":"hello hello hello hello hello hello"}"#;
        let mut deflater = Deflater::new(15);
        let mut first = Vec::new();
        deflater.message(text, &mut first);
        let mut second = Vec::new();
        deflater.message(text, &mut second);
        // The second refers back to the first: smaller.
        assert!(
            second.len() < first.len(),
            "{} {}",
            second.len(),
            first.len()
        );
        let mut inflater = Inflater::new();
        assert_eq!(inflate_all(&mut inflater, &first, 1 << 20).unwrap(), text);
        assert_eq!(inflate_all(&mut inflater, &second, 1 << 20).unwrap(), text);

        let mut alone = Vec::new();
        standalone_message(9, text, &mut alone);
        let mut again = Vec::new();
        standalone_message(9, text, &mut again);
        assert_eq!(alone, again);
        let mut fresh = Inflater::new();
        assert_eq!(inflate_all(&mut fresh, &alone, 1 << 20).unwrap(), text);
    }

    #[test]
    fn large_and_empty_messages_and_a_bomb_stopped_at_the_limit() {
        let large: Vec<u8> = (0..1_000_000u32).map(|i| (i % 97) as u8).collect();
        let mut deflated = Vec::new();
        Deflater::new(15).message(&large, &mut deflated);
        assert_eq!(
            inflate_all(&mut Inflater::new(), &deflated, 2_000_000).unwrap(),
            large
        );
        let mut empty = Vec::new();
        Deflater::new(15).message(b"", &mut empty);
        assert_eq!(inflate_all(&mut Inflater::new(), &empty, 10).unwrap(), b"");
        // An empty message between two others, with context taken over.
        let (mut deflater, mut inflater) = (Deflater::new(15), Inflater::new());
        for message in [&b"hello hello"[..], b"", b"", b"after the empty ones"] {
            let mut deflated = Vec::new();
            deflater.message(message, &mut deflated);
            assert_eq!(inflate_all(&mut inflater, &deflated, 100).unwrap(), message);
        }
        // 100 MB of zeros deflate to about 100 KB; inflating stops at the limit.
        let zeros = vec![0u8; 100_000_000];
        let mut bomb = Vec::new();
        Deflater::new(15).message(&zeros, &mut bomb);
        assert!(bomb.len() < 200_000);
        let out = inflate_all(&mut Inflater::new(), &bomb, 1_000_000).unwrap();
        assert_eq!(out.len(), 1_000_000);
        assert!(out.capacity() <= 1_100_000, "{}", out.capacity());
    }

    #[test]
    fn garbage_is_bad_data() {
        let mut out = Vec::new();
        assert_eq!(
            Inflater::new().inflate(&[0xff; 64], &mut out, 1000),
            Err(BadData)
        );
    }
}
