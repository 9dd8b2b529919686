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

use std::collections::VecDeque;

use crate::net::http_head::{HeadEnd, MAX_HEAD};

/// The longest frame header (RFC 6455 5.2).
pub(crate) const HEADER_MAX: usize = 14;

/// Frames larger than this leave tungstenite's buffers large (see `largest_frame`).
pub const LARGE_FRAME: u64 = 64 * 1024;

pub struct MessageCount {
    phase: Phase,
    /// Messages that ended so far (a final data frame, or any control frame).
    ended: u64,
    /// Bytes followed so far.
    offset: u64,
    /// Where each message that ended and was not returned yet ends (an offset).
    ends: VecDeque<u64>,
    /// Where the bytes tungstenite still holds begin: the end of the head, then of the last
    /// message returned.
    released: u64,
    /// The most payload bytes of one frame handed out since `reset_largest_frame`
    /// (tungstenite's read buffer grows to hold a whole frame, and keeps that size).
    largest_frame: u64,
    /// A frame announced a 64-bit length with its top bit set (RFC 6455 5.2: a protocol
    /// error, which tungstenite reports as too large).
    bad_length: bool,
}

enum Phase {
    /// In the HTTP head: its length so far, and where its blank line is.
    Head { length: usize, end: HeadEnd },
    /// In a frame header: its bytes so far.
    Header {
        bytes: [u8; HEADER_MAX],
        length: usize,
    },
    /// In a payload: the bytes still to come, those that came, and whether the frame ends a
    /// message.
    Payload {
        left: u64,
        came: u64,
        ends_message: bool,
    },
    /// The head was too long to be one: the count means nothing.
    Lost,
}

impl Default for MessageCount {
    fn default() -> Self {
        MessageCount {
            phase: Phase::Head {
                length: 0,
                end: HeadEnd::default(),
            },
            ended: 0,
            offset: 0,
            ends: VecDeque::new(),
            released: 0,
            largest_frame: 0,
            bad_length: false,
        }
    }
}

impl MessageCount {
    /// Whether `returned` messages account for every message that ended in the bytes so far.
    pub fn all_returned(&self, returned: u64) -> bool {
        !matches!(self.phase, Phase::Head { .. } | Phase::Lost) && self.ended == returned
    }

    /// Whether the bytes so far end exactly where a frame does (no partial header or payload).
    #[inline]
    pub fn at_frame_boundary(&self) -> bool {
        matches!(self.phase, Phase::Header { length: 0, .. })
    }

    /// Tells that tungstenite returned the oldest message not returned yet: the bytes up to
    /// its end are no longer held.
    #[inline]
    pub fn message_returned(&mut self) {
        if let Some(end) = self.ends.pop_front() {
            self.released = end;
        }
    }

    /// Bytes followed that tungstenite may still hold: the head while it lasts, then those
    /// after the end of the last message returned (none once the count is lost).
    #[inline]
    pub fn held(&self) -> u64 {
        match self.phase {
            Phase::Lost => 0,
            _ => self.offset - self.released,
        }
    }

    #[inline]
    pub fn largest_frame(&self) -> u64 {
        self.largest_frame
    }

    pub fn reset_largest_frame(&mut self) {
        self.largest_frame = 0;
    }

    pub fn saw_bad_length(&self) -> bool {
        self.bad_length
    }

    /// Follows `bytes`, the next ones handed out.
    pub fn follow(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let taken = match &mut self.phase {
                Phase::Head { length, end } => {
                    let (taken, found) = end.scan(bytes);
                    *length += taken;
                    if found {
                        self.phase = new_header();
                        self.released = self.offset + taken as u64;
                    } else if *length > MAX_HEAD {
                        // Not a head: the count means nothing (reads are never skipped).
                        self.phase = Phase::Lost;
                    }
                    taken
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
                        self.bad_length |= payload >> 63 != 0;
                        self.phase = Phase::Payload {
                            left: payload,
                            came: 0,
                            ends_message,
                        };
                    }
                    taken
                }
                Phase::Payload { left, came, .. } => {
                    let taken = (*left).min(bytes.len() as u64) as usize;
                    *left -= taken as u64;
                    *came += taken as u64;
                    self.largest_frame = self.largest_frame.max(*came);
                    taken
                }
                Phase::Lost => return,
            };
            self.offset += taken as u64;
            self.end_frame_if_done();
            bytes = &bytes[taken..];
        }
    }

    /// At the end of a payload: counts the message the frame ended, starts the next header.
    fn end_frame_if_done(&mut self) {
        if let Phase::Payload {
            left: 0,
            ends_message,
            ..
        } = self.phase
        {
            if ends_message {
                self.ended += 1;
                self.ends.push_back(self.offset);
            }
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

/// The whole header's length, as far as `seen` (its first bytes) tells: 2 until both of the
/// first two bytes are there.
pub(crate) fn header_length(seen: &[u8]) -> usize {
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
    (payload_length(header), ends_message)
}

/// A whole header's payload length.
pub(crate) fn payload_length(header: &[u8]) -> u64 {
    match header[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
        127 => {
            let mut length = [0u8; 8];
            length.copy_from_slice(&header[2..10]);
            u64::from_be_bytes(length)
        }
        short => u64::from(short),
    }
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

    #[test]
    fn held_bytes_end_where_the_last_returned_message_ends() {
        let mut count = MessageCount::default();
        count.follow(HEAD);
        assert_eq!(count.held(), 0);
        let first = frame(OpCode::Data(Data::Binary), true, 10, true);
        let second = frame(OpCode::Data(Data::Binary), true, 300, true);
        count.follow(&first);
        count.follow(&second[..50]);
        assert_eq!(count.held(), (first.len() + 50) as u64);
        assert!(!count.at_frame_boundary());
        count.message_returned();
        assert_eq!(count.held(), 50);
        count.follow(&second[50..]);
        assert!(count.at_frame_boundary());
        count.message_returned();
        assert_eq!(count.held(), 0);
        assert_eq!(count.largest_frame(), 300);
        count.reset_largest_frame();
        assert_eq!(count.largest_frame(), 0);
    }

    #[test]
    fn a_bare_lf_head_ends_too() {
        let mut count = MessageCount::default();
        count.follow(b"HTTP/1.1 101 OK\nUpgrade: websocket\n\n");
        assert!(count.all_returned(0));
        assert_eq!(count.held(), 0);
    }

    #[test]
    fn a_length_with_its_top_bit_set_is_seen() {
        let mut count = MessageCount::default();
        count.follow(HEAD);
        count.follow(&[0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(!count.saw_bad_length());
        let mut count = MessageCount::default();
        count.follow(HEAD);
        count.follow(&[0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert!(count.saw_bad_length());
    }
}
