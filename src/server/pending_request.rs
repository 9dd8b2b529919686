//! A request whose head was read, waiting for Lua's answer: `pending:accept()` goes on with
//! the upgrade, `pending:respond(…)` sends a plain HTTP answer and closes. A watchdog
//! drops a request left unanswered at the handshake's deadline.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use futures_util::FutureExt;

use super::handshake::{answer_and_close, timed_out, upgrade};
use super::state::ServerState;
use super::{Arrived, Event, HandshakeSettings, Slot};
use crate::connection::request::RequestInfo;
use crate::runtime::core::DeadlineId;

/// A request Lua has not answered yet: `pending:accept()` or `pending:respond(…)`.
pub(crate) struct PendingRequest {
    pub(crate) id: u64,
    slot: Slot,
    shared: Rc<ServerState>,
    handshake: Rc<HandshakeSettings>,
    deadline: Instant,
    alarm: DeadlineId,
    /// Dropped once Lua answered (or forgot the request): the watchdog then stops.
    _answered: tokio::sync::oneshot::Sender<()>,
}

impl PendingRequest {
    /// Holds `arrived` for Lua's answer, and drops it at `deadline` if none came.
    pub(super) fn new(
        shared: Rc<ServerState>,
        handshake: Rc<HandshakeSettings>,
        arrived: Arrived,
        deadline: Instant,
        alarm: DeadlineId,
    ) -> Self {
        let id = shared.next_request_id.get();
        shared.next_request_id.set(id + 1);
        let slot: Slot = Rc::new(RefCell::new(Some(arrived)));
        let watched = Rc::clone(&slot);
        let (answered, answer_seen) = tokio::sync::oneshot::channel();
        let watchdog = async move {
            let expiry = tokio::time::sleep_until(deadline.into());
            let expired = tokio::select! {
                _ = expiry => true,
                _ = answer_seen => false,
            };
            // Taken by Lua's answer: that answer's stage reports the outcome.
            let unanswered = watched.borrow_mut().take().is_some();
            let event = match (unanswered, expired) {
                (false, _) => None,
                (true, true) => Some(timed_out(Some(id))),
                (true, false) => Some(Event::Failed(
                    "request dropped without an answer".into(),
                    Some(id),
                )),
            };
            let alarm = unanswered.then_some(alarm);
            (event, alarm)
        };
        shared.add_stage(watchdog.boxed_local());
        PendingRequest {
            id,
            slot,
            shared,
            handshake,
            deadline,
            alarm,
            _answered: answered,
        }
    }

    /// The request, until it is answered or timed out.
    pub(crate) fn request(&self) -> Option<Rc<RequestInfo>> {
        self.slot
            .borrow()
            .as_ref()
            .map(|arrived| Rc::clone(&arrived.info))
    }

    /// Takes the request for an answer; None once answered or timed out.
    fn take(&self) -> Option<Arrived> {
        self.slot.borrow_mut().take()
    }

    /// Goes on with the upgrade; false when the request was answered or timed out already.
    pub(crate) fn accept(&self) -> bool {
        let Some(arrived) = self.take() else {
            return false;
        };
        let (handshake, id, deadline) = (Rc::clone(&self.handshake), self.id, self.deadline);
        let alarm = self.alarm;
        let stage = async move {
            let upgrade = upgrade(arrived, handshake, id);
            let event = match tokio::time::timeout_at(deadline.into(), upgrade).await {
                Ok(event) => event,
                Err(_) => timed_out(Some(id)),
            };
            (Some(event), Some(alarm))
        };
        self.shared.add_stage(stage.boxed_local());
        true
    }

    /// Sends `response` (a whole HTTP response) and closes; false when the request was
    /// answered or timed out already.
    pub(crate) fn respond(&self, response: Vec<u8>) -> bool {
        let Some(mut arrived) = self.take() else {
            return false;
        };
        let (deadline, alarm) = (self.deadline, self.alarm);
        let stage = async move {
            let answer = answer_and_close(&mut arrived.inner, &response);
            let _ = tokio::time::timeout_at(deadline.into(), answer).await;
            (None, Some(alarm))
        };
        self.shared.add_stage(stage.boxed_local());
        true
    }
}
