//! A copas connection's state as the core drives it: whenever its waker fires, whether or
//! not a Lua call waits on it, it reads ahead into its inbox, keeps its keepalive, finishes
//! writes and closes. The calls Lua makes (connection.rs) and a server's broadcasts
//! (`Member`) act on the same state.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use tokio_tungstenite::tungstenite::Message;

use crate::connection::connect::{ConnectError, Opened};
use crate::connection::{self, Connection, Ending, Received, State};
use crate::net::memory_budget::{Account, Part};
use crate::net::socket_error::WRONG_STATE;
use crate::runtime::core::{Core, DeadlineId, Pump};

use crate::connection::settings::ConnectionSettings;
use crate::net::transport::{FrameWrite, PeerGone};
use crate::runtime::ready::Readiness;

/// How often a paused connection looks for a peer that reset or hung up.
const DEPARTURE_CHECK: std::time::Duration = std::time::Duration::from_millis(500);

pub(super) type Connecting = Pin<Box<dyn Future<Output = Result<Opened, ConnectError>>>>;

/// Told when a connection ends (the server drops it from its broadcast group).
pub(crate) trait EndNotice {
    fn ended(&self, id: u64);
}

/// What a Lua call in progress and the core's driving share.
pub(crate) struct DrivenConnection {
    pub(super) connection: Connection,
    pub(super) readiness: Readiness,
    pub(super) settings: ConnectionSettings,
    pub(super) connecting: Option<Connecting>,
    pub(super) unsent: Option<Message>,
    /// A Lua send waits for the socket to take its message.
    pub(super) send_waiting: bool,
    /// A broadcast's message waits in the write buffer for the socket (see Member::offer).
    pub(super) flush_waiting: bool,
    /// Broadcast frames are held for the core's next step (runtime/corked.rs).
    pub(super) holds_frames: bool,
    /// The close frame's code and reason, once a close has started.
    pub(super) closing_with: Option<(u16, String)>,
    /// Messages read ahead for a later receive (at most `settings.max_queue`).
    pub(super) inbox: VecDeque<Received>,
    /// The bytes of the messages in `inbox`.
    pub(super) inbox_bytes: usize,
    /// What this connection holds, for the memory budget: it outlives the socket while
    /// messages read ahead wait for Lua.
    pub(super) account: Option<Rc<Account>>,
    /// The handler returned: messages left when the connection ends are nobody's.
    pub(super) handler_returned: bool,
    /// The waker's count when reading last found nothing. A poll that returns Pending has
    /// promised to fire the waker once it can go on, so until the count moves another read
    /// would find nothing too, and is skipped (it would cost tungstenite a buffer fill).
    pub(super) read_parked_at: Option<u32>,
    /// How the connection ended, for the next receive once the inbox is empty.
    pub(super) ended: Option<Ending>,
    /// The doorbell's deadline for the keepalive timer, while there is one.
    pub(super) keepalive_alarm: Option<(tokio::time::Instant, DeadlineId)>,
    /// The next look for a departed peer while the connection is paused.
    pub(super) departure_alarm: Option<(tokio::time::Instant, DeadlineId)>,
    /// A client's connection: its frames are masked.
    pub(super) is_client: bool,
    /// Whether the connection was ever open, and whether its end was reported.
    pub(super) opened: bool,
    pub(super) end_reported: bool,
    pub(super) on_end: Option<Rc<dyn EndNotice>>,
    /// Lua took a message and has not asked for the next yet: it may still answer it.
    pub(super) lua_holds_message: bool,
}

impl DrivenConnection {
    /// The state of `connection` (open already for a server, closed for a client), woken
    /// through `readiness`.
    pub(super) fn new(
        mut connection: Connection,
        readiness: Readiness,
        settings: ConnectionSettings,
    ) -> Self {
        // Messages read ahead before a violation are still Lua's to answer.
        connection.defer_failures();
        let opened = connection.state() == State::Open;
        let account = connection.account().cloned();
        DrivenConnection {
            connection,
            readiness,
            settings,
            connecting: None,
            unsent: None,
            send_waiting: false,
            flush_waiting: false,
            holds_frames: false,
            closing_with: None,
            inbox: VecDeque::new(),
            inbox_bytes: 0,
            account,
            handler_returned: false,
            read_parked_at: None,
            ended: None,
            keepalive_alarm: None,
            departure_alarm: None,
            // A server's connections come open; a client's opens with its connect.
            is_client: !opened,
            opened,
            end_reported: false,
            on_end: None,
            lua_holds_message: false,
        }
    }

    pub(super) fn poll_close(&mut self) -> Poll<Ending> {
        let (code, reason) = self.closing_with.clone().unwrap_or((1000, String::new()));
        let mut cx = self.readiness.waker_context();
        self.connection.poll_close(&mut cx, code, &reason)
    }

    /// Reads ahead into the inbox while it has room (a full inbox stops reading: TCP then
    /// holds the peer back), keeps the keepalive and finishes a close under way.
    fn read_ahead(&mut self) {
        // Polled with the handle's own waker, in place (no clone of it per drive).
        let mut cx = self.readiness.waker_context();
        let max_queue = self.settings.max_queue;
        if self.connection.state() == State::Open && self.inbox.len() >= max_queue {
            self.connection.pause_keepalive();
            self.watch_for_departure();
            return;
        }
        if let Poll::Ready(ending) = self.connection.poll_keepalive(&mut cx) {
            self.end(ending);
            return;
        }
        let wakes = self.readiness.wakes();
        if self.read_parked_at == Some(wakes) || self.connection.has_deferred_failure() {
            return;
        }
        while self.connection.state() == State::Open && self.inbox.len() < max_queue {
            let mut cx = self.readiness.waker_context();
            match self.connection.poll_receive(&mut cx) {
                Poll::Pending => {
                    self.read_parked_at = Some(wakes);
                    break;
                }
                Poll::Ready(Ok(message)) => self.queue(message),
                Poll::Ready(Err(ending)) => {
                    self.end(ending);
                    break;
                }
            }
        }
        if self.is_paused() {
            // Nothing reads this socket for a while: its bytes read ahead take no more room
            // than they need.
            self.connection.compact();
            self.watch_for_departure();
        }
    }

    /// Whether nothing reads the socket now: its messages wait for Lua, or the memory
    /// budget has no room.
    fn is_paused(&self) -> bool {
        self.connection.state() == State::Open
            && (self.inbox.len() >= self.settings.max_queue
                || self.connection.is_waiting_for_budget())
    }

    /// While nothing reads the socket (checked at least every DEPARTURE_CHECK): a peer that
    /// reset is let go, and what was read ahead for it dropped (the kernel drops its unread
    /// bytes too); one that hung up is let go once its handler returned (nobody would read
    /// the rest).
    fn watch_for_departure(&mut self) {
        if !self.is_paused() {
            return;
        }
        let reset = match self.connection.peer_gone() {
            None => return,
            Some(PeerGone::Reset) => true,
            Some(PeerGone::HungUp) if self.handler_returned => false,
            Some(PeerGone::HungUp) => return,
        };
        let ending = self.connection.drop_departed(reset);
        self.end(ending);
    }

    /// Keeps an alarm set while the connection is paused, for `watch_for_departure`: the
    /// socket's readiness cannot tell (it stays up while bytes wait unread).
    fn arm_departure_alarm(&mut self, core: &Core) {
        let now = tokio::time::Instant::now();
        let due = match self.departure_alarm {
            Some((at, _)) => at <= now,
            None => true,
        };
        if !self.is_paused() {
            if let Some((_, alarm)) = self.departure_alarm.take() {
                core.cancel_deadline(alarm);
            }
            return;
        }
        if due {
            let at = now + DEPARTURE_CHECK;
            let alarm = core.wake_at(at.into_std(), &self.readiness);
            self.departure_alarm = Some((at, alarm));
        }
    }

    /// Keeps `message` for a later receive.
    fn queue(&mut self, message: Received) {
        self.inbox_bytes += message.payload.len();
        self.inbox.push_back(message);
        self.count(Part::Queued, self.inbox_bytes);
    }

    /// The oldest message read ahead, which Lua now holds.
    fn take_queued(&mut self) -> Option<Received> {
        let message = self.inbox.pop_front()?;
        self.inbox_bytes -= message.payload.len();
        self.count(Part::Queued, self.inbox_bytes);
        self.count(Part::Taken, message.payload.len());
        self.lua_holds_message = true;
        Some(message)
    }

    pub(super) fn count(&self, part: Part, bytes: usize) {
        if let Some(account) = &self.account {
            account.set(part, bytes);
        }
    }

    /// The connection ended: kept for the next receive. Messages read ahead stay for Lua,
    /// unless the peer reset (the kernel drops unread bytes then too) or the handler
    /// returned (nobody will read them).
    fn end(&mut self, ending: Ending) {
        self.ended = Some(ending);
        if self.connection.peer_was_reset() || self.handler_returned {
            self.drop_inbox();
        }
        if self.inbox.is_empty() && !self.lua_holds_message {
            // Nothing left for Lua to answer: the violation is answered now.
            self.finish_failure();
        }
    }

    /// Answers a violation that waited for Lua (connection/failure.rs).
    pub(super) fn finish_failure(&mut self) {
        let mut cx = self.readiness.waker_context();
        self.connection.finish_deferred(&mut cx);
    }

    pub(super) fn drop_inbox(&mut self) {
        self.inbox.clear();
        self.inbox_bytes = 0;
        self.count(Part::Queued, 0);
    }

    pub(super) fn drive_connection(&mut self) {
        if self.connecting.is_some() {
            return; // the connect is Lua's to poll
        }
        if self.flush_waiting {
            let mut cx = self.readiness.waker_context();
            if self.connection.poll_send(&mut cx, &mut None).is_ready() {
                self.flush_waiting = false;
            }
        }
        match self.connection.state() {
            State::Closed => {}
            _ if self.closing_with.is_some() => {
                if let Poll::Ready(ending) = self.poll_close() {
                    self.end(ending);
                }
            }
            _ => self.read_ahead(),
        }
    }

    /// Keeps the doorbell's alarm at the keepalive timer's deadline: tokio's timer wakes the
    /// connection only when the core steps, and the doorbell makes copas step it.
    fn arm_keepalive_alarm(&mut self, core: &Core) {
        let deadline = self.connection.keepalive_deadline();
        if self.keepalive_alarm.map(|(at, _)| at) == deadline {
            return;
        }
        if let Some((_, alarm)) = self.keepalive_alarm.take() {
            core.cancel_deadline(alarm);
        }
        if let Some(deadline) = deadline {
            let alarm = core.wake_at(deadline.into_std(), &self.readiness);
            self.keepalive_alarm = Some((deadline, alarm));
        }
    }

    /// Once the connection has ended: it needs no more service, and the server hears of it.
    fn report_end(&mut self, core: &Core) {
        if self.end_reported || !self.opened || self.connection.state() != State::Closed {
            return;
        }
        self.end_reported = true;
        core.end_service(self.readiness.id());
        if let Some(notice) = &self.on_end {
            notice.ended(self.readiness.id());
        }
    }

    /// Everything that follows a poll: the keepalive alarm and the end.
    pub(super) fn settle(&mut self, core: &Core) {
        self.arm_keepalive_alarm(core);
        self.arm_departure_alarm(core);
        self.report_end(core);
    }

    /// A message read ahead, else what the connection has now; a close under way (started
    /// by server:close()) is what a receive waits for.
    fn poll_receive(&mut self, core: &Core) -> Poll<Result<Received, Ending>> {
        let _runtime = core.enter();
        self.readiness.lower();
        // Lua no longer holds the message it took before (an echo has sent it back).
        self.count(Part::Taken, 0);
        self.lua_holds_message = false;
        let outcome = match self.take_queued() {
            Some(message) => Poll::Ready(Ok(message)),
            None => {
                self.drive_connection();
                match (self.take_queued(), self.ended.take()) {
                    (Some(message), ended) => {
                        self.ended = ended;
                        Poll::Ready(Ok(message))
                    }
                    (None, Some(ending)) => {
                        // Lua reached the end: a violation is answered now.
                        self.finish_failure();
                        Poll::Ready(Err(ending))
                    }
                    (None, None) if self.connection.state() == State::Closed => {
                        Poll::Ready(Err(Ending::unclean(1006, WRONG_STATE)))
                    }
                    (None, None) => Poll::Pending,
                }
            }
        };
        self.settle(core);
        outcome
    }

    /// Writes the message a send left in `unsent`; Pending while the socket has no room.
    pub(super) fn resume_send(&mut self, core: &Core) -> Poll<Result<(), Ending>> {
        let _runtime = core.enter();
        // A peer's violation waiting for Lua still lets Lua answer what came before it.
        let ended = self
            .ended
            .as_ref()
            .filter(|_| !self.connection.has_deferred_failure());
        if let Some(ending) = ended {
            self.unsent = None;
            return Poll::Ready(Err(ending.clone()));
        }
        let mut cx = self.readiness.poll_context();
        let outcome = match self.connection.poll_send(&mut cx, &mut self.unsent) {
            Poll::Pending => {
                self.send_waiting = true;
                return Poll::Pending;
            }
            Poll::Ready(outcome) => outcome,
        };
        self.send_waiting = false;
        self.flush_waiting = false;
        if let Err(ending) = &outcome {
            // A broken connection: the next receive reports the same ending.
            if self.opened && self.ended.is_none() && !self.end_reported {
                self.ended = Some(ending.clone());
            }
        }
        self.settle(core);
        Poll::Ready(outcome)
    }
}

/// Runs `work` on `connection`'s DrivenConnection; None when a Lua call on it holds it.
pub(super) fn with_driven<T>(
    connection: &RefCell<dyn Pump>,
    work: impl FnOnce(&mut DrivenConnection) -> T,
) -> Option<T> {
    let mut pump = connection.try_borrow_mut().ok()?;
    let driven = pump.as_any_mut().downcast_mut::<DrivenConnection>()?;
    Some(work(driven))
}

/// A receive on `connection`: what `DrivenConnection::poll_receive` finds; when that is nothing yet
/// and `step_first`, one step of the core and another look, if such steps found something
/// lately. Lua asks for the step when this coroutine would watch the doorbell anyway: a busy
/// connection's next message is usually in the kernel already, and one call then finds it
/// (an echo's never is: copas' select waits for it). None when the connection is held.
pub(crate) fn receive_on(
    core: &Core,
    connection: &RefCell<dyn Pump>,
    step_first: bool,
) -> Option<Poll<Result<Received, Ending>>> {
    let outcome = with_driven(connection, |driven| driven.poll_receive(core))?;
    if outcome.is_ready() || !step_first || !core.first_steps.worth_trying() {
        return Some(outcome);
    }
    // No borrow of the connection is held here: the step drives it.
    core.step();
    let found = with_driven(connection, |driven| driven.readiness.is_raised())?;
    core.first_steps.record(found);
    if !found {
        return Some(Poll::Pending);
    }
    with_driven(connection, |driven| driven.poll_receive(core))
}

/// A send of `message` on `connection`; None when the connection is held.
pub(crate) fn send_on(
    core: &Core,
    connection: &RefCell<dyn Pump>,
    message: Message,
) -> Option<Poll<Result<(), Ending>>> {
    with_driven(connection, |driven| {
        driven.unsent = Some(message);
        driven.resume_send(core)
    })
}

/// A send of a TEXT (`is_text`) or BINARY message of `payload` on `connection`: written
/// straight to the socket when nothing else waits to be written and the socket takes it
/// at once (no copy into a message), else as `send_on`. None when the connection is held.
pub(crate) fn send_payload_on(
    core: &Core,
    connection: &RefCell<dyn Pump>,
    payload: &[u8],
    is_text: bool,
) -> Option<Poll<Result<(), Ending>>> {
    with_driven(connection, |driven| {
        let idle = driven.ended.is_none()
            && driven.unsent.is_none()
            && !driven.send_waiting
            && !driven.flush_waiting;
        let written = if idle {
            let masked = driven.is_client;
            driven.connection.try_write_data(payload, is_text, masked)
        } else {
            FrameWrite::Refused
        };
        match written {
            FrameWrite::Written => Poll::Ready(Ok(())),
            // The rest of the frame goes out with a flush, which may wait for room.
            FrameWrite::Partly | FrameWrite::Held(_) => driven.resume_send(core),
            FrameWrite::Refused => match connection::data_message(payload, is_text) {
                Ok(message) => {
                    driven.unsent = Some(message);
                    driven.resume_send(core)
                }
                Err(ending) => Poll::Ready(Err(ending)),
            },
        }
    })
}

/// The core drives a connection whenever its waker fires, whether or not Lua waits on it.
impl Pump for DrivenConnection {
    fn drive(&mut self, core: &Core) -> bool {
        let before = (
            self.inbox.len(),
            self.ended.is_some(),
            self.connection.state(),
        );
        self.drive_connection();
        self.settle(core);
        let after = (
            self.inbox.len(),
            self.ended.is_some(),
            self.connection.state(),
        );
        // A ping's pong came: the Lua call waiting for its round trip goes on.
        before != after
            || self.send_waiting
            || self.connecting.is_some()
            || self.connection.has_round_trip()
    }

    fn is_closing(&self) -> bool {
        self.connection.state() == State::Closing
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn write_held(&mut self, core: &Core) {
        self.write_held_frames(core);
    }
}
