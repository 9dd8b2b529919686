//! Broadcasts across processes over Redis pub/sub (`config.cluster`).
//!
//! Each server with a cluster has one thread of its own that holds two Redis connections:
//! one subscribed to the channel, one that publishes. Redis is off the hot path (only
//! broadcasts go through it) and must never block the Lua thread, so it gets a thread
//! rather than a place in the Lua thread's core: Lua hands it what to publish through a
//! channel, and it hands Lua what arrived through a queue, ringing the core's doorbell.
//!
//! Every process delivers its own broadcasts to its own connections at once, and skips them
//! when they come back from Redis: each connection gets each broadcast exactly once, also
//! while Redis is away. Messages one process publishes arrive everywhere in the order it
//! sent them (one publishing connection, and Redis keeps a connection's order).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::runtime::doorbell::RemoteRinger;
use crate::runtime::ready::Readiness;

/// Which connections a broadcast is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Group {
    /// Every group.
    All,
    /// The default handler's connections.
    Default,
    /// The connections of one protocol.
    Protocol(String),
}

/// A broadcast as it travels between processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub group: Group,
    pub is_text: bool,
    pub payload: Vec<u8>,
}

/// What the Redis thread tells the Lua thread.
#[derive(Debug)]
pub enum ClusterEvent {
    /// Another process broadcast this.
    Broadcast(Broadcast),
    /// Redis became unreachable (once per outage).
    Outage(String),
}

/// Starts a message: a format mark and version.
const MARK: &[u8; 4] = b"LWR1";
/// Bytes that tell processes apart.
const ORIGIN_LEN: usize = 16;

/// How long a connect or a publish may take before Redis counts as unreachable.
const REDIS_TIMEOUT: Duration = Duration::from_secs(3);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// `origin | group kind | group name length (u16) | group name | text flag | payload`.
pub fn encode(origin: &[u8; ORIGIN_LEN], broadcast: &Broadcast) -> Vec<u8> {
    let name: &[u8] = match &broadcast.group {
        Group::Protocol(name) => name.as_bytes(),
        _ => b"",
    };
    let kind = match broadcast.group {
        Group::All => 0u8,
        Group::Default => 1,
        Group::Protocol(_) => 2,
    };
    let mut bytes = Vec::with_capacity(32 + name.len() + broadcast.payload.len());
    bytes.extend_from_slice(MARK);
    bytes.extend_from_slice(origin);
    bytes.push(kind);
    bytes.extend_from_slice(&(name.len().min(u16::MAX as usize) as u16).to_be_bytes());
    bytes.extend_from_slice(&name[..name.len().min(u16::MAX as usize)]);
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
    let group = match kind {
        0 => Group::All,
        1 => Group::Default,
        2 => Group::Protocol(String::from_utf8(name.to_vec()).ok()?),
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

/// What the Redis thread hands over, and how it wakes the Lua thread.
struct Inbox {
    events: Mutex<VecDeque<ClusterEvent>>,
    /// The listener's flag: the core raises it for Lua.
    readiness: Readiness,
    ringer: RemoteRinger,
}

impl Inbox {
    fn events(&self) -> MutexGuard<'_, VecDeque<ClusterEvent>> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, event: ClusterEvent) {
        self.events().push_back(event);
        self.readiness.wake();
        self.ringer.ring();
    }
}

/// A server's link to its cluster. Dropping it ends the Redis thread.
pub struct Cluster {
    origin: [u8; ORIGIN_LEN],
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    inbox: Arc<Inbox>,
}

impl Cluster {
    /// Starts the Redis thread for `url` and `channel`; an error for a URL Redis cannot use.
    pub fn start(
        url: &str,
        channel: &str,
        readiness: Readiness,
        ringer: RemoteRinger,
    ) -> Result<Cluster, String> {
        let client =
            redis::Client::open(url).map_err(|err| format!("bad Redis URL '{url}': {err}"))?;
        if url.starts_with("rediss:") {
            // rustls needs a process-wide crypto provider; keep one installed already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let origin = new_origin();
        let inbox = Arc::new(Inbox {
            events: Mutex::new(VecDeque::new()),
            readiness,
            ringer,
        });
        let (outgoing, to_publish) = mpsc::unbounded_channel();
        let link = Link {
            client,
            channel: channel.to_string(),
            origin,
            inbox: Arc::clone(&inbox),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|err| format!("cannot start the cluster thread: {err}"))?;
        std::thread::Builder::new()
            .name("websocket-cluster".into())
            .spawn(move || runtime.block_on(link.run(to_publish)))
            .map_err(|err| format!("cannot start the cluster thread: {err}"))?;
        Ok(Cluster {
            origin,
            outgoing,
            inbox,
        })
    }

    /// Hands `broadcast` to Redis (never waits).
    pub fn publish(&self, broadcast: &Broadcast) {
        let _ = self.outgoing.send(encode(&self.origin, broadcast));
    }

    /// What arrived since the last call.
    pub fn next_event(&self) -> Option<ClusterEvent> {
        self.inbox.events().pop_front()
    }

    pub fn has_events(&self) -> bool {
        !self.inbox.events().is_empty()
    }
}

/// Random enough to tell the processes of a cluster apart: the time, the process id, and
/// std's per-process random hasher keys.
fn new_origin() -> [u8; ORIGIN_LEN] {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    let high = hasher.finish();
    hasher.write_u64(high);
    let low = hasher.finish();
    let mut origin = [0u8; ORIGIN_LEN];
    origin[..8].copy_from_slice(&high.to_be_bytes());
    origin[8..].copy_from_slice(&low.to_be_bytes());
    origin
}

/// The Redis thread's side.
struct Link {
    client: redis::Client,
    channel: String,
    origin: [u8; ORIGIN_LEN],
    inbox: Arc<Inbox>,
}

/// Why a connected session ended.
enum SessionEnd {
    /// The server is gone: the thread ends.
    Closed,
    Lost(String),
}

impl Link {
    /// Connects, relays both ways until Redis goes away, reports the outage once, and
    /// reconnects with backoff; ends when the server drops its Cluster.
    async fn run(self, mut to_publish: mpsc::UnboundedReceiver<Vec<u8>>) {
        let mut backoff = FIRST_BACKOFF;
        let mut in_outage = false;
        loop {
            let problem = match self
                .session(&mut to_publish, &mut backoff, &mut in_outage)
                .await
            {
                SessionEnd::Closed => return,
                SessionEnd::Lost(problem) => problem,
            };
            if !in_outage {
                in_outage = true;
                self.inbox.push(ClusterEvent::Outage(format!(
                    "cluster: Redis unreachable ({problem}); broadcasts reach this process only until it is back"
                )));
            }
            // Wait out the backoff; what Lua publishes meanwhile reached local connections
            // and is not sent later (it would arrive out of time).
            let pause = tokio::time::sleep(backoff);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    _ = &mut pause => break,
                    dropped = to_publish.recv() => if dropped.is_none() { return },
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn session(
        &self,
        to_publish: &mut mpsc::UnboundedReceiver<Vec<u8>>,
        backoff: &mut Duration,
        in_outage: &mut bool,
    ) -> SessionEnd {
        let connected = tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut subscriber = self.client.get_async_pubsub().await?;
            subscriber.subscribe(&self.channel).await?;
            let publisher = self.client.get_multiplexed_async_connection().await?;
            Ok::<_, redis::RedisError>((subscriber, publisher))
        })
        .await;
        let (subscriber, mut publisher) = match connected {
            Ok(Ok(connections)) => connections,
            Ok(Err(err)) => return SessionEnd::Lost(err.to_string()),
            Err(_) => return SessionEnd::Lost("no answer in time".into()),
        };
        *backoff = FIRST_BACKOFF;
        *in_outage = false;
        // Messages queued while disconnected were delivered locally already.
        while to_publish.try_recv().is_ok() {}
        let mut messages = subscriber.into_on_message();
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => self.deliver(message.get_payload_bytes()),
                    None => return SessionEnd::Lost("the subscription ended".into()),
                },
                outgoing = to_publish.recv() => {
                    let Some(bytes) = outgoing else { return SessionEnd::Closed };
                    let mut command = redis::cmd("PUBLISH");
                    command.arg(&self.channel).arg(bytes);
                    let publish = command.query_async::<i64>(&mut publisher);
                    match tokio::time::timeout(REDIS_TIMEOUT, publish).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => return SessionEnd::Lost(err.to_string()),
                        Err(_) => return SessionEnd::Lost("a publish got no answer in time".into()),
                    }
                }
            }
        }
    }

    fn deliver(&self, bytes: &[u8]) {
        match decode(bytes) {
            // Our own: delivered locally when it was sent.
            Some((origin, _)) if origin == self.origin => {}
            Some((_, broadcast)) => self.inbox.push(ClusterEvent::Broadcast(broadcast)),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn broadcasts_decode_as_encoded(
            name in "[a-z]{0,12}",
            kind in 0u8..3,
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let group = match kind {
                0 => Group::All,
                1 => Group::Default,
                _ => Group::Protocol(name),
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
    fn origins_differ() {
        assert_ne!(new_origin(), new_origin());
    }
}
