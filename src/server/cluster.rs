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

use tokio::sync::mpsc;

use crate::runtime::doorbell::RemoteRinger;
use crate::runtime::ready::Readiness;

mod link;
mod wire;

use link::Link;
use wire::{encode, ORIGIN_LEN};
pub use wire::{Broadcast, Group};

/// What the Redis thread tells the Lua thread.
#[derive(Debug)]
pub enum ClusterEvent {
    /// Another process broadcast this.
    Broadcast(Broadcast),
    /// Redis became unreachable (once per outage).
    Outage(String),
}

/// What the Redis thread hands over, and how it wakes the Lua thread.
pub(super) struct Inbox {
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

    /// Queues `event` for Lua. Only the first event of a batch rings: Lua takes every
    /// queued event before it waits again, so a ring per message would only cost a system
    /// call and a wake-up each.
    pub(super) fn push(&self, event: ClusterEvent) {
        let was_empty = {
            let mut events = self.events();
            events.push_back(event);
            events.len() == 1
        };
        if was_empty {
            self.readiness.wake();
            self.ringer.ring();
        }
    }
}

/// What the Lua thread asks of the Redis thread.
pub(super) enum Outgoing {
    /// Bytes to publish on the cluster's channel, or on a topic's.
    Publish(Option<String>, Vec<u8>),
    /// Start hearing a topic's channel: this process has a subscriber for it now.
    Subscribe(String),
    /// Stop hearing it: the last local subscriber left.
    Unsubscribe(String),
}

/// A server's link to its cluster. Dropping it ends the Redis thread.
pub struct Cluster {
    origin: [u8; ORIGIN_LEN],
    outgoing: mpsc::UnboundedSender<Outgoing>,
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
        let topic = match &broadcast.group {
            Group::Topic(topic) => Some(topic.clone()),
            _ => None,
        };
        let bytes = encode(&self.origin, broadcast);
        let _ = self.outgoing.send(Outgoing::Publish(topic, bytes));
    }

    /// Starts hearing the other processes' publishes to `topic`.
    pub fn subscribe(&self, topic: &str) {
        let _ = self.outgoing.send(Outgoing::Subscribe(topic.to_string()));
    }

    /// Stops hearing them.
    pub fn unsubscribe(&self, topic: &str) {
        let _ = self.outgoing.send(Outgoing::Unsubscribe(topic.to_string()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_differ() {
        assert_ne!(new_origin(), new_origin());
    }
}
