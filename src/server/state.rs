//! What a server's listener, its pending requests and its connections share: the handshake
//! stages under way, the broadcast groups, the ids of connections that ended.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

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

    /// Offers `message` to every member of `group` (every group for `Group::All`); the ids
    /// of the members that were busy, for Lua to send to with a send that waits.
    pub(super) fn broadcast(&self, core: &Core, group: &Group, message: &Message) -> Vec<u64> {
        // Listed first: a member whose socket fails ends, and leaves its group, meanwhile.
        let members: Vec<(u64, Member)> = {
            let groups = self.groups.borrow();
            let chosen: Vec<&HashMap<u64, Member>> = match group {
                Group::All => groups.values().collect(),
                Group::Default => groups.get(&None).into_iter().collect(),
                Group::Protocol(name) => groups.get(&Some(name.clone())).into_iter().collect(),
            };
            chosen
                .into_iter()
                .flat_map(|members| members.iter().map(|(id, member)| (*id, member.clone())))
                .collect()
        };
        let frames = BroadcastFrames::new(message);
        let mut busy = Vec::new();
        for (id, member) in members {
            if member.offer(core, &frames) == Offered::Busy {
                busy.push(id);
            }
        }
        busy
    }
}
