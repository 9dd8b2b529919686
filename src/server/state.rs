//! What a server's listener, its pending requests and its connections share: the handshake
//! stages under way, the broadcast groups, the ids of connections that ended.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio_tungstenite::tungstenite::Message;

use super::cluster::Group;
use super::StageOutcome;
use crate::copas::driven::EndNotice;
use crate::copas::member::{Member, Offered};
use crate::net::data_frame::BroadcastFrames;
use crate::runtime::core::Core;
use crate::runtime::ready::Readiness;

/// What the listener and its pending requests and connections share.
pub(super) struct ServerState {
    pub(super) stages: RefCell<FuturesUnordered<LocalBoxFuture<'static, StageOutcome>>>,
    /// Stages added while `stages` is being polled (a stage may add the next one).
    pub(super) new_stages: RefCell<Vec<LocalBoxFuture<'static, StageOutcome>>>,
    /// Ids of server connections that ended, for Lua to drop from their groups.
    pub(super) ended: RefCell<Vec<u64>>,
    /// The broadcast groups: protocol (None: the default handler's) -> connection id ->
    /// member, and each connection's group.
    pub(super) groups: RefCell<HashMap<Option<String>, HashMap<u64, Member>>>,
    pub(super) group_of: RefCell<HashMap<u64, Option<String>>>,
    /// The topics (`ws:subscribe`): topic -> subscriber id -> member, and each
    /// connection's topics.
    pub(super) topics: RefCell<HashMap<String, HashMap<u64, Member>>>,
    pub(super) topics_of: RefCell<HashMap<u64, HashSet<String>>>,
    /// Topics whose last subscriber left by ending, for the listener to tell the cluster.
    pub(super) emptied_topics: RefCell<Vec<String>>,
    pub(super) readiness: Readiness,
    pub(super) next_request_id: Cell<u64>,
    /// Set by server:close(): handshakes still answered by Lua go no further.
    pub(super) closed: Cell<bool>,
}

impl ServerState {
    pub(super) fn add_stage(&self, stage: LocalBoxFuture<'static, StageOutcome>) {
        if self.closed.get() {
            return;
        }
        self.new_stages.borrow_mut().push(stage);
        // The new stage is polled on the next look.
        self.readiness.raise();
    }
}

impl EndNotice for ServerState {
    fn ended(&self, id: u64) {
        if let Some(group) = self.group_of.borrow_mut().remove(&id) {
            if let Some(members) = self.groups.borrow_mut().get_mut(&group) {
                members.remove(&id);
            }
        }
        let topics = self.topics_of.borrow_mut().remove(&id).unwrap_or_default();
        for topic in topics {
            if self.leave_topic(id, &topic) {
                self.emptied_topics.borrow_mut().push(topic);
            }
        }
        self.ended.borrow_mut().push(id);
        self.readiness.raise();
    }
}

impl ServerState {
    pub(super) fn join(&self, id: u64, group: Option<String>, member: Member) {
        self.group_of.borrow_mut().insert(id, group.clone());
        self.groups
            .borrow_mut()
            .entry(group)
            .or_default()
            .insert(id, member);
    }

    /// Subscribes connection `id` to `topic`: Some(true) when the topic had no subscriber
    /// before, Some(false) when it had, None when the connection is gone.
    pub(super) fn subscribe(&self, id: u64, topic: &str) -> Option<bool> {
        let member = {
            let group = self.group_of.borrow().get(&id)?.clone();
            self.groups.borrow().get(&group)?.get(&id)?.clone()
        };
        self.topics_of
            .borrow_mut()
            .entry(id)
            .or_default()
            .insert(topic.to_string());
        let mut topics = self.topics.borrow_mut();
        let subscribers = topics.entry(topic.to_string()).or_default();
        let first = subscribers.is_empty();
        subscribers.insert(id, member);
        Some(first)
    }

    /// Unsubscribes connection `id` from `topic`: true when that was its last subscriber.
    pub(super) fn unsubscribe(&self, id: u64, topic: &str) -> bool {
        let was_subscribed = self
            .topics_of
            .borrow_mut()
            .get_mut(&id)
            .is_some_and(|topics| topics.remove(topic));
        was_subscribed && self.leave_topic(id, topic)
    }

    /// Takes `id` out of `topic`'s subscribers: true when none are left.
    fn leave_topic(&self, id: u64, topic: &str) -> bool {
        let mut topics = self.topics.borrow_mut();
        let Some(subscribers) = topics.get_mut(topic) else {
            return false;
        };
        subscribers.remove(&id);
        let emptied = subscribers.is_empty();
        if emptied {
            topics.remove(topic);
        }
        emptied
    }

    /// Offers `message` to every member of `group` (every protocol group for `Group::All`,
    /// a topic's subscribers for `Group::Topic`) but `except`; the ids of the members that
    /// were busy, for Lua to send to with a send that waits (or queues).
    pub(super) fn broadcast(
        &self,
        core: &Core,
        group: &Group,
        message: &Message,
        except: Option<u64>,
    ) -> Vec<u64> {
        // Listed first: a member whose socket fails ends, and leaves its group, meanwhile.
        let members: Vec<(u64, Member)> = {
            let listed = |members: &HashMap<u64, Member>| -> Vec<(u64, Member)> {
                members
                    .iter()
                    .filter(|(id, _)| Some(**id) != except)
                    .map(|(id, member)| (*id, member.clone()))
                    .collect()
            };
            let groups = self.groups.borrow();
            match group {
                Group::All => groups.values().flat_map(listed).collect(),
                Group::Default => groups.get(&None).map(listed).unwrap_or_default(),
                Group::Protocol(name) => groups
                    .get(&Some(name.clone()))
                    .map(listed)
                    .unwrap_or_default(),
                Group::Topic(name) => self
                    .topics
                    .borrow()
                    .get(name)
                    .map(listed)
                    .unwrap_or_default(),
            }
        };
        let frames = BroadcastFrames::new(message);
        let mut busy = Vec::new();
        for (id, member) in members {
            if member.offer(core, &frames) == Offered::Busy {
                busy.push(id);
            }
        }
        core.write_held_if_many();
        busy
    }
}
