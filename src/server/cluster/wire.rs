//! How a broadcast travels between the processes of a cluster: the bytes published on
//! Redis, and the channel each goes to.

/// Which connections a broadcast is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Group {
    /// Every group.
    All,
    /// The default handler's connections.
    Default,
    /// The connections of one protocol.
    Protocol(String),
    /// The subscribers of a topic (`ws:subscribe`).
    Topic(String),
}

/// A broadcast as it travels between processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub group: Group,
    pub is_text: bool,
    pub payload: Vec<u8>,
}

/// Starts a message: a format mark and version.
const MARK: &[u8; 4] = b"LWR1";
/// Bytes that tell processes apart.
pub const ORIGIN_LEN: usize = 16;

/// The Redis channel a topic's publishes go to: one channel per topic, so that a process
/// hears only the topics it has subscribers for (Redis drops a publish nobody listens to).
pub fn topic_channel(channel: &str, topic: &str) -> String {
    format!("{channel}:topic:{topic}")
}

/// `origin | group kind | group name length (u16) | group name | text flag | payload`.
pub fn encode(origin: &[u8; ORIGIN_LEN], broadcast: &Broadcast) -> Vec<u8> {
    let (kind, name): (u8, &[u8]) = match &broadcast.group {
        Group::All => (0, b""),
        Group::Default => (1, b""),
        Group::Protocol(name) => (2, name.as_bytes()),
        Group::Topic(name) => (3, name.as_bytes()),
    };
    let name = &name[..name.len().min(u16::MAX as usize)];
    let mut bytes = Vec::with_capacity(32 + name.len() + broadcast.payload.len());
    bytes.extend_from_slice(MARK);
    bytes.extend_from_slice(origin);
    bytes.push(kind);
    bytes.extend_from_slice(&(name.len() as u16).to_be_bytes());
    bytes.extend_from_slice(name);
    bytes.push(u8::from(broadcast.is_text));
    bytes.extend_from_slice(&broadcast.payload);
    bytes
}

/// The sender and the broadcast, or None for bytes that are not ours (another program on
/// the same channel).
pub fn decode(bytes: &[u8]) -> Option<([u8; ORIGIN_LEN], Broadcast)> {
    let rest = bytes.strip_prefix(MARK)?;
    let origin: [u8; ORIGIN_LEN] = rest.get(..ORIGIN_LEN)?.try_into().ok()?;
    let rest = &rest[ORIGIN_LEN..];
    let (&kind, rest) = rest.split_first()?;
    let name_len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let name = rest.get(2..2 + name_len)?;
    let rest = &rest[2 + name_len..];
    let (&text_flag, payload) = rest.split_first()?;
    let name = || String::from_utf8(name.to_vec()).ok();
    let group = match kind {
        0 => Group::All,
        1 => Group::Default,
        2 => Group::Protocol(name()?),
        3 => Group::Topic(name()?),
        _ => return None,
    };
    let is_text = text_flag == 1;
    if is_text && simdutf8::basic::from_utf8(payload).is_err() {
        return None;
    }
    Some((
        origin,
        Broadcast {
            group,
            is_text,
            payload: payload.to_vec(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn broadcasts_decode_as_encoded(
            name in "[a-z]{0,12}",
            kind in 0u8..4,
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let group = match kind {
                0 => Group::All,
                1 => Group::Default,
                2 => Group::Protocol(name),
                _ => Group::Topic(name),
            };
            let broadcast = Broadcast { group, is_text: false, payload };
            let origin = [7u8; ORIGIN_LEN];
            let bytes = encode(&origin, &broadcast);
            proptest::prop_assert_eq!(decode(&bytes), Some((origin, broadcast)));
        }

        #[test]
        fn foreign_bytes_are_ignored(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            // Anything decodes to a well-formed broadcast or to nothing, never a panic.
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn text_that_is_not_utf8_is_refused() {
        let broadcast = Broadcast {
            group: Group::All,
            is_text: true,
            payload: vec![0xff],
        };
        assert_eq!(decode(&encode(&[1; ORIGIN_LEN], &broadcast)), None);
    }

    #[test]
    fn a_topic_has_a_channel_of_its_own() {
        assert_eq!(topic_channel("chat", "room-7"), "chat:topic:room-7");
    }
}
