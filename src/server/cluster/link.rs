//! The Redis thread's side of a cluster: two Redis connections, one subscribed to the
//! cluster's channel and to the channels of the topics this process has subscribers for,
//! one that publishes. It reconnects with backoff when Redis goes away, and subscribes
//! again to every topic it should hear.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::wire::{decode, topic_channel, ORIGIN_LEN};
use super::{ClusterEvent, Inbox, Outgoing};

/// How long a connect, a publish or a subscribe may take before Redis counts as
/// unreachable.
const REDIS_TIMEOUT: Duration = Duration::from_secs(3);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The most publishes sent to Redis in one round trip.
const MAX_PIPELINE: usize = 512;

pub(super) struct Link {
    pub(super) client: redis::Client,
    pub(super) channel: String,
    pub(super) origin: [u8; ORIGIN_LEN],
    pub(super) inbox: Arc<Inbox>,
}

/// Why a connected session ended.
enum SessionEnd {
    /// The server is gone: the thread ends.
    Closed,
    Lost(String),
}

/// What a session keeps across reconnects: the topics to hear.
struct Hearing {
    topics: HashSet<String>,
}

impl Hearing {
    /// Applies a subscription change; false for a publish (which it leaves to the caller).
    fn apply(&mut self, outgoing: &Outgoing) -> bool {
        match outgoing {
            Outgoing::Subscribe(topic) => {
                self.topics.insert(topic.clone());
                true
            }
            Outgoing::Unsubscribe(topic) => {
                self.topics.remove(topic);
                true
            }
            Outgoing::Publish(..) => false,
        }
    }
}

impl Link {
    /// Connects, relays both ways until Redis goes away, reports the outage once, and
    /// reconnects with backoff; ends when the server drops its Cluster.
    pub(super) async fn run(self, mut outgoing: mpsc::UnboundedReceiver<Outgoing>) {
        let mut backoff = FIRST_BACKOFF;
        let mut in_outage = false;
        let mut hearing = Hearing {
            topics: HashSet::new(),
        };
        loop {
            let problem = match self
                .session(&mut outgoing, &mut hearing, &mut backoff, &mut in_outage)
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
            // and is not sent later (it would arrive out of time). Subscriptions are kept.
            let pause = tokio::time::sleep(backoff);
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    _ = &mut pause => break,
                    next = outgoing.recv() => match next {
                        Some(next) => { hearing.apply(&next); }
                        None => return,
                    },
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn session(
        &self,
        outgoing: &mut mpsc::UnboundedReceiver<Outgoing>,
        hearing: &mut Hearing,
        backoff: &mut Duration,
        in_outage: &mut bool,
    ) -> SessionEnd {
        // Publishes queued while disconnected were delivered locally already.
        while let Ok(next) = outgoing.try_recv() {
            hearing.apply(&next);
        }
        let connected = tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut subscriber = self.client.get_async_pubsub().await?;
            subscriber.subscribe(&self.channel).await?;
            for topic in &hearing.topics {
                subscriber
                    .subscribe(topic_channel(&self.channel, topic))
                    .await?;
            }
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
        let (mut subscriptions, mut messages) = subscriber.split();
        // A subscription change found while gathering publishes, for the next turn.
        let mut put_back: Option<Outgoing> = None;
        loop {
            let next = if let Some(next) = put_back.take() {
                next
            } else {
                tokio::select! {
                message = messages.next() => match message {
                    Some(message) => {
                        self.deliver(message.get_payload_bytes());
                        continue;
                    }
                    None => return SessionEnd::Lost("the subscription ended".into()),
                },
                next = outgoing.recv() => match next {
                    Some(next) => next,
                    None => return SessionEnd::Closed,
                },
                }
            };
            let asked = match next {
                Outgoing::Publish(topic, bytes) => {
                    // What Lua published meanwhile goes in the same round trip to Redis.
                    let mut pipeline = redis::pipe();
                    self.add_publish(&mut pipeline, topic, bytes);
                    for _ in 1..MAX_PIPELINE {
                        match outgoing.try_recv() {
                            Ok(Outgoing::Publish(topic, bytes)) => {
                                self.add_publish(&mut pipeline, topic, bytes)
                            }
                            Ok(other) => {
                                put_back = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let publish = pipeline.query_async::<()>(&mut publisher);
                    tokio::time::timeout(REDIS_TIMEOUT, publish).await
                }
                Outgoing::Subscribe(topic) => {
                    if !hearing.topics.insert(topic.clone()) {
                        continue;
                    }
                    let channel = topic_channel(&self.channel, &topic);
                    tokio::time::timeout(REDIS_TIMEOUT, subscriptions.subscribe(channel)).await
                }
                Outgoing::Unsubscribe(topic) => {
                    if !hearing.topics.remove(&topic) {
                        continue;
                    }
                    let channel = topic_channel(&self.channel, &topic);
                    tokio::time::timeout(REDIS_TIMEOUT, subscriptions.unsubscribe(channel)).await
                }
            };
            match asked {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return SessionEnd::Lost(err.to_string()),
                Err(_) => return SessionEnd::Lost("Redis did not answer in time".into()),
            }
        }
    }

    /// Adds the PUBLISH of `bytes` to the cluster's channel, or to `topic`'s.
    fn add_publish(&self, pipeline: &mut redis::Pipeline, topic: Option<String>, bytes: Vec<u8>) {
        let channel = match topic {
            Some(topic) => topic_channel(&self.channel, &topic),
            None => self.channel.clone(),
        };
        pipeline.cmd("PUBLISH").arg(channel).arg(bytes).ignore();
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
