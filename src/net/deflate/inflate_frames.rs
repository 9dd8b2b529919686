//! The frames a peer sends, rewritten before tungstenite reads them: a compressed message
//! (RSV1 on its first frame) comes out inflated, in frames of at most OUT_FRAME bytes with
//! RSV1 clear, as if it had been sent uncompressed. Everything else passes through as it
//! came, so tungstenite still judges it (RSV1 on a control or continuation frame, RSV2,
//! RSV3: 1002).
//!
//! Inflating streams: the compressed payload is unmasked and inflated as it arrives, and
//! the inflated bytes go out while they come, so neither a large message nor a bomb is ever
//! held whole here. The message's inflated size is checked against the connection's
//! `max_message_size` as it grows: past it, the connection fails with 1009 having inflated
//! at most the limit (a 10 KB message that would inflate to 1 GB costs the limit).

use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use super::codec::{BadData, Inflater, TAIL};
use crate::net::data_frame::apply_mask;
use crate::net::message_count::{header_length, payload_length, HEADER_MAX};

/// The most inflated bytes one emitted frame carries.
const OUT_FRAME: usize = 16 * 1024;

/// Why the connection fails: its close code and reason.
pub type Failure = (u16, String);

pub struct InflateFrames {
    /// Frames are masked (this side is the server): emitted ones carry a zero mask, which
    /// leaves the payload as it is and satisfies tungstenite.
    masked: bool,
    /// The peer resets its deflater after each message: the inflater may go too.
    no_context_takeover: bool,
    /// Made on the first compressed message; dropped after each without context takeover.
    inflater: Option<Inflater>,
    max_message: usize,
    phase: Phase,
    /// In a compressed message (its first frame had RSV1): its continuation frames are
    /// compressed too.
    compressed: Option<Message>,
    /// Inflated bytes not yet framed.
    pending: Vec<u8>,
    /// The inflater stopped because its output was full: it may hold more without input.
    draining: bool,
}

/// A compressed message under way.
struct Message {
    /// TEXT or BINARY: the opcode of its first emitted frame.
    data: Data,
    emitted_first: bool,
    inflated: usize,
}

enum Phase {
    Header {
        bytes: [u8; HEADER_MAX],
        length: usize,
    },
    /// A frame passed through: payload bytes still to copy.
    Copy { left: u64 },
    /// A compressed frame's payload: bytes still to come, its mask and how far into it,
    /// whether the frame ends the message.
    Inflate {
        left: u64,
        mask: Option<[u8; 4]>,
        at: usize,
        fin: bool,
    },
    /// The message's end: how much of TAIL the inflater took.
    Tail { taken: usize },
}

const fn new_header() -> Phase {
    Phase::Header {
        bytes: [0; HEADER_MAX],
        length: 0,
    }
}

impl InflateFrames {
    pub fn new(masked: bool, no_context_takeover: bool, max_message: usize) -> Self {
        InflateFrames {
            masked,
            no_context_takeover,
            inflater: None,
            max_message,
            phase: new_header(),
            compressed: None,
            pending: Vec::new(),
            draining: false,
        }
    }

    /// Whether `feed` has work without new input (inflated bytes still to come out).
    pub fn has_work(&self) -> bool {
        self.draining || matches!(self.phase, Phase::Tail { .. })
    }

    /// Rewrites `input`, appending to `out` what tungstenite is to read, and returns how
    /// many input bytes it took: all of them, unless `out` reached `out_limit` first.
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        out_limit: usize,
    ) -> Result<usize, Failure> {
        let mut taken = 0;
        while out.len() < out_limit {
            if self.draining {
                self.inflate_step(&[], out)?;
                continue;
            }
            let rest = &input[taken..];
            match &mut self.phase {
                Phase::Tail { taken: 4 } => self.finish_message(out),
                Phase::Tail { taken: tail } => {
                    let from = *tail;
                    let step = self.inflate_step(&TAIL[from..], out)?;
                    if let Phase::Tail { taken: tail } = &mut self.phase {
                        *tail += step;
                    }
                }
                _ if rest.is_empty() => break,
                Phase::Header { bytes, length } => {
                    let wanted = header_length(&bytes[..*length]) - *length;
                    let step = wanted.min(rest.len());
                    bytes[*length..*length + step].copy_from_slice(&rest[..step]);
                    *length += step;
                    taken += step;
                    if *length == header_length(&bytes[..*length]) {
                        let (header, length) = (*bytes, *length);
                        self.start_frame(&header[..length], out);
                    }
                }
                Phase::Copy { left } => {
                    let step = (*left).min(rest.len() as u64) as usize;
                    out.extend_from_slice(&rest[..step]);
                    *left -= step as u64;
                    if *left == 0 {
                        self.phase = new_header();
                    }
                    taken += step;
                }
                Phase::Inflate {
                    left,
                    mask,
                    at,
                    fin,
                } => {
                    let step = (*left).min(rest.len() as u64).min(OUT_FRAME as u64) as usize;
                    let mut chunk = rest[..step].to_vec();
                    if let Some(mask) = *mask {
                        let start = *at;
                        let rotated = [0, 1, 2, 3].map(|i| mask[(start + i) % 4]);
                        apply_mask(&mut chunk, rotated);
                    }
                    let fin = *fin;
                    let used = self.inflate_step(&chunk, out)?;
                    taken += used;
                    if let Phase::Inflate { left, at, .. } = &mut self.phase {
                        *at += used;
                        *left -= used as u64;
                        if *left == 0 {
                            self.phase = if fin {
                                Phase::Tail { taken: 0 }
                            } else {
                                new_header()
                            };
                        }
                    }
                }
            }
        }
        Ok(taken)
    }

    /// A whole frame header: pass the frame through, or start inflating its payload.
    fn start_frame(&mut self, header: &[u8], out: &mut Vec<u8>) {
        let (fin, rsv1, opcode) = (
            header[0] & 0x80 != 0,
            header[0] & 0x40 != 0,
            header[0] & 0x0f,
        );
        let payload = payload_length(header);
        let mask = (header[1] & 0x80 != 0).then(|| {
            let at = header.len() - 4;
            [header[at], header[at + 1], header[at + 2], header[at + 3]]
        });
        let starts_compressed = rsv1 && matches!(opcode, 1 | 2) && self.compressed.is_none();
        let continues_compressed = opcode == 0 && !rsv1 && self.compressed.is_some();
        if !starts_compressed && !continues_compressed {
            out.extend_from_slice(header);
            self.phase = if payload == 0 {
                new_header()
            } else {
                Phase::Copy { left: payload }
            };
            return;
        }
        if starts_compressed {
            let data = if opcode == 1 {
                Data::Text
            } else {
                Data::Binary
            };
            self.compressed = Some(Message {
                data,
                emitted_first: false,
                inflated: 0,
            });
            self.inflater.get_or_insert_with(Inflater::new);
        }
        self.phase = match (payload, fin) {
            (0, true) => Phase::Tail { taken: 0 },
            (0, false) => new_header(),
            (left, fin) => Phase::Inflate {
                left,
                mask,
                at: 0,
                fin,
            },
        };
    }

    /// Inflates what it can of `input` (unmasked compressed bytes) into the pending bytes,
    /// framing them once OUT_FRAME are ready; returns the input bytes taken.
    fn inflate_step(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, Failure> {
        let Some(inflater) = self.inflater.as_mut() else {
            self.draining = false;
            return Ok(input.len());
        };
        let before = self.pending.len();
        let used = inflater
            .inflate(input, &mut self.pending, OUT_FRAME)
            .map_err(|BadData| (1007, "invalid compressed data".to_string()))?;
        if let Some(message) = self.compressed.as_mut() {
            message.inflated += self.pending.len() - before;
            if message.inflated > self.max_message {
                let reason = format!(
                    "message too big: more than {} bytes inflated",
                    self.max_message
                );
                return Err((1009, reason));
            }
        }
        self.draining = self.pending.len() >= OUT_FRAME;
        if self.draining {
            self.emit(out, false);
        }
        Ok(used)
    }

    /// The whole message is inflated: its last frame goes out.
    fn finish_message(&mut self, out: &mut Vec<u8>) {
        self.emit(out, true);
        self.compressed = None;
        self.phase = new_header();
        if self.no_context_takeover {
            self.inflater = None;
        }
    }

    /// Appends a frame of the pending inflated bytes (the first of the message has its
    /// opcode, the rest are continuations); `fin` ends the message.
    fn emit(&mut self, out: &mut Vec<u8>, fin: bool) {
        let Some(message) = self.compressed.as_mut() else {
            return;
        };
        let opcode = if message.emitted_first {
            Data::Continue
        } else {
            message.data
        };
        message.emitted_first = true;
        let header = FrameHeader {
            is_final: fin,
            opcode: OpCode::Data(opcode),
            mask: self.masked.then_some([0; 4]),
            ..FrameHeader::default()
        };
        // Formatting into a Vec cannot fail.
        let _ = header.format(self.pending.len() as u64, out);
        out.extend_from_slice(&self.pending);
        self.pending.clear();
    }
}
