//! Counting the messages that end in the bytes handed to tungstenite.
//!
//! tungstenite reads into its own buffer and parses frames from there; it cannot say whether
//! that buffer still holds a whole message. Without knowing, every receive that finds the
//! socket empty first has tungstenite zero-fill its read buffer and try the socket (about a
//! sixth of a small echo's instructions). Following the frames in the bytes it is given
//! answers the question from outside: when as many messages ended in them as tungstenite
//! has returned, it holds at most part of a frame, and only new bytes can move it.
//!
//! The stream starts with an HTTP head (the request for a server, the response for a
//! client); frames begin right after its blank line, where tungstenite's handshake stops.

use crate::http_head::MAX_HEAD;

/// The longest frame header (RFC 6455 5.2).
const HEADER_MAX: usize = 14;
const END_OF_HEAD: &[u8; 4] = b"\r\n\r\n";

pub struct MessageCount {
    phase: Phase,
    /// Messages that ended so far (a final data frame, or any control frame).
    ended: u64,
}

enum Phase {
    /// In the HTTP head: its length so far, and how much of the blank line matched.
    Head { length: usize, matched: usize },
    /// In a frame header: its bytes so far.
    Header {
        bytes: [u8; HEADER_MAX],
        length: usize,
    },
    /// In a payload: the bytes still to come, and whether the frame ends a message.
    Payload { left: u64, ends_message: bool },
    /// The head was too long to be one: the count means nothing.
    Lost,
}

impl Default for MessageCount {
    fn default() -> Self {
        MessageCount {
            phase: Phase::Head {
                length: 0,
                matched: 0,
            },
            ended: 0,
        }
    }
}

impl MessageCount {
    /// Whether `returned` messages account for every message that ended in the bytes so far.
    pub fn all_returned(&self, returned: u64) -> bool {
        !matches!(self.phase, Phase::Head { .. } | Phase::Lost) && self.ended == returned
    }

    /// Follows `bytes`, the next ones handed out.
    pub fn follow(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            bytes = match &mut self.phase {
                Phase::Head { length, matched } => {
                    let (taken, found) = match_end_of_head(bytes, matched);
                    *length += taken;
                    if found {
                        self.phase = new_header();
                    } else if *length > MAX_HEAD {
                        // Not a head: the count means nothing (reads are never skipped).
                        self.phase = Phase::Lost;
                    }
                    &bytes[taken..]
                }
                Phase::Header {
                    bytes: header,
                    length,
                } => {
                    let wanted = header_length(&header[..*length]) - *length;
                    let taken = wanted.min(bytes.len());
                    header[*length..*length + taken].copy_from_slice(&bytes[..taken]);
                    *length += taken;
                    if *length == header_length(&header[..*length]) {
                        let (payload, ends_message) = parse_header(&header[..*length]);
                        self.phase = Phase::Payload {
                            left: payload,
                            ends_message,
                        };
                        self.end_frame_if_done();
                    }
                    &bytes[taken..]
                }
                Phase::Payload { left, .. } => {
                    let taken = (*left).min(bytes.len() as u64) as usize;
                    *left -= taken as u64;
                    self.end_frame_if_done();
                    &bytes[taken..]
                }
                Phase::Lost => return,
            };
        }
    }

    /// At the end of a payload: counts the message the frame ended, starts the next header.
    fn end_frame_if_done(&mut self) {
        if let Phase::Payload {
            left: 0,
            ends_message,
        } = self.phase
        {
            self.ended += u64::from(ends_message);
            self.phase = new_header();
        }
    }
}

fn new_header() -> Phase {
    Phase::Header {
        bytes: [0; HEADER_MAX],
        length: 0,
    }
}

/// Scans `bytes` for the end of the head, `matched` bytes of it seen already: the bytes
/// that belong to the head, and whether it ended.
fn match_end_of_head(bytes: &[u8], matched: &mut usize) -> (usize, bool) {
    for (index, &byte) in bytes.iter().enumerate() {
        *matched = if byte == END_OF_HEAD[*matched] {
            *matched + 1
        } else if byte == b'\r' {
            1
        } else {
            0
        };
        if *matched == END_OF_HEAD.len() {
            return (index + 1, true);
        }
    }
    (bytes.len(), false)
}

/// The whole header's length, as far as `seen` (its first bytes) tells: 2 until both of the
/// first two bytes are there.
fn header_length(seen: &[u8]) -> usize {
    let Some(&second) = seen.get(1) else {
        return 2;
    };
    let extended = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

/// A whole header's payload length, and whether its frame ends a message: a final frame
/// (FIN set) or a control frame (opcode 8 and up).
fn parse_header(header: &[u8]) -> (u64, bool) {
    let ends_message = header[0] & 0x80 != 0 || header[0] & 0x08 != 0;
    let payload = match header[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
        127 => {
            let mut length = [0u8; 8];
            length.copy_from_slice(&header[2..10]);
            u64::from_be_bytes(length)
        }
        short => u64::from(short),
    };
    (payload, ends_message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    const HEAD: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";

    fn frame(opcode: OpCode, is_final: bool, length: usize, masked: bool) -> Vec<u8> {
        let mut frame = match opcode {
            OpCode::Data(_) => Frame::message(vec![b'x'; length], opcode, is_final),
            OpCode::Control(_) => Frame::ping(vec![b'x'; length]),
        };
        if masked {
            frame.header_mut().mask = Some([1, 2, 3, 4]);
        }
        let mut bytes = Vec::new();
        frame.format(&mut bytes).expect("encoded");
        bytes
    }

    #[test]
    fn nothing_counts_until_the_head_ends() {
        let mut count = MessageCount::default();
        count.follow(&HEAD[..HEAD.len() - 1]);
        assert!(!count.all_returned(0));
        count.follow(&HEAD[HEAD.len() - 1..]);
        assert!(count.all_returned(0));
    }

    #[test]
    fn a_head_that_never_ends_loses_the_count() {
        let mut count = MessageCount::default();
        count.follow(&vec![b'a'; MAX_HEAD + 10]);
        count.follow(b"\r\n\r\n");
        assert!(!count.all_returned(0));
    }

    proptest::proptest! {
        /// Messages of every length format, fragmented or not, masked or not, with pings
        /// between fragments, handed out in chunks cut anywhere: after each chunk the count
        /// is the number of messages whose last byte it contained.
        #[test]
        fn counts_the_messages_that_ended_in_any_chunking(
            frames in proptest::collection::vec(
                (proptest::bool::ANY, proptest::bool::ANY,
                 proptest::sample::select(vec![0usize, 1, 125, 126, 127, 65_535, 65_536, 70_000]),
                 proptest::bool::ANY),
                1..12),
            cuts in proptest::collection::vec(1usize..40_000, 1..20),
        ) {
            let mut stream = HEAD.to_vec();
            let mut message_ends = Vec::new();
            let mut in_fragmented = false;
            for (is_ping, is_final, length, masked) in frames {
                if is_ping {
                    stream.extend(frame(OpCode::Control(Control::Ping), true, length.min(125), masked));
                    message_ends.push(stream.len());
                    continue;
                }
                let opcode = if in_fragmented { Data::Continue } else { Data::Binary };
                stream.extend(frame(OpCode::Data(opcode), is_final, length, masked));
                in_fragmented = !is_final;
                if is_final {
                    message_ends.push(stream.len());
                }
            }
            let mut count = MessageCount::default();
            let mut handed = 0;
            let mut cuts = cuts.into_iter().cycle();
            while handed < stream.len() {
                let chunk = cuts.next().unwrap_or(1).min(stream.len() - handed);
                count.follow(&stream[handed..handed + chunk]);
                handed += chunk;
                let ended = message_ends.iter().filter(|&&end| end <= handed).count() as u64;
                // Within the head nothing is known yet.
                proptest::prop_assert_eq!(count.all_returned(ended), handed >= HEAD.len());
                proptest::prop_assert!(!count.all_returned(ended + 1));
            }
        }
    }
}
