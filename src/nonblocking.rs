//! A connection whose every call returns at once: the copas client and the server's
//! connections. A call that would have to wait answers `PENDING` instead; Lua then waits for
//! `ready()` (copas resumes it when the doorbell rings and the flag is up) and calls the
//! matching `resume_*` method.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use mlua::{IntoLuaMulti, LightUserData, Lua, MultiValue, UserData, UserDataMethods, Value};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

use crate::connection::{self, ConnectError, Connection, Ending, Opened, Received, State};
use crate::core::{Core, DeadlineId, Pump, WaitAlarm};
use crate::memory_budget::{Account, Part};
use crate::options::{
    argument_errors_as_values, close_code, close_reason, connect_request, message_to_send,
    ClientOptions, ConnectArguments, ConnectionSettings,
};
use crate::ready::Readiness;
use crate::request::RequestInfo;
use crate::results;
use crate::transport::{FrameWrite, PeerGone};

/// How often a paused connection looks for a peer that reset or hung up.
const DEPARTURE_CHECK: std::time::Duration = std::time::Duration::from_millis(500);

/// The value a call returns first when it would have to wait.
pub fn pending() -> LightUserData {
    static MARKER: u8 = 0;
    LightUserData(&MARKER as *const u8 as *mut std::ffi::c_void)
}

type Connecting = Pin<Box<dyn Future<Output = Result<Opened, ConnectError>>>>;

/// Told when a connection ends (the server drops it from its broadcast group).
pub trait EndNotice {
    fn ended(&self, id: u64);
}

/// What a Lua call in progress and the core's driving share.
struct Shared {
    connection: Connection,
    readiness: Readiness,
    settings: ConnectionSettings,
    connecting: Option<Connecting>,
    unsent: Option<Message>,
    /// A Lua send waits for the socket to take its message.
    send_waiting: bool,
    /// A broadcast's message waits in the write buffer for the socket (see Member::offer).
    flush_waiting: bool,
    /// The close frame's code and reason, once a close has started.
    closing_with: Option<(u16, String)>,
    /// Messages read ahead for a later receive (at most `settings.max_queue`).
    inbox: VecDeque<Received>,
    /// The bytes of the messages in `inbox`.
    inbox_bytes: usize,
    /// What this connection holds, for the memory budget: it outlives the socket while
    /// messages read ahead wait for Lua.
    account: Option<Rc<Account>>,
    /// The handler returned: messages left when the connection ends are nobody's.
    handler_returned: bool,
    /// The waker's count when reading last found nothing. A poll that returns Pending has
    /// promised to fire the waker once it can go on, so until the count moves another read
    /// would find nothing too, and is skipped (it would cost tungstenite a buffer fill).
    read_parked_at: Option<u32>,
    /// How the connection ended, for the next receive once the inbox is empty.
    ended: Option<Ending>,
    /// The doorbell's deadline for the keepalive timer, while there is one.
    keepalive_alarm: Option<(tokio::time::Instant, DeadlineId)>,
    /// The next look for a departed peer while the connection is paused.
    departure_alarm: Option<(tokio::time::Instant, DeadlineId)>,
    /// A client's connection: its frames are masked.
    is_client: bool,
    /// Whether the connection was ever open, and whether its end was reported.
    opened: bool,
    end_reported: bool,
    on_end: Option<Rc<dyn EndNotice>>,
}

impl Shared {
    fn poll_close(&mut self) -> Poll<Ending> {
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
        if self.read_parked_at == Some(wakes) {
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
                Poll::Ready(Err(ending)) => self.end(ending),
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
        Some(message)
    }

    fn count(&self, part: Part, bytes: usize) {
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
    }

    fn drop_inbox(&mut self) {
        self.inbox.clear();
        self.inbox_bytes = 0;
        self.count(Part::Queued, 0);
    }

    fn drive_connection(&mut self) {
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
    fn settle(&mut self, core: &Core) {
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
        let outcome = match self.take_queued() {
            Some(message) => Poll::Ready(Ok(message)),
            None => {
                self.drive_connection();
                match (self.take_queued(), self.ended.take()) {
                    (Some(message), ended) => {
                        self.ended = ended;
                        Poll::Ready(Ok(message))
                    }
                    (None, Some(ending)) => Poll::Ready(Err(ending)),
                    (None, None) if self.connection.state() == State::Closed => {
                        Poll::Ready(Err(Ending::unclean(1006, "wrong state")))
                    }
                    (None, None) => Poll::Pending,
                }
            }
        };
        self.settle(core);
        outcome
    }

    /// Writes the message a send left in `unsent`; Pending while the socket has no room.
    fn resume_send(&mut self, core: &Core) -> Poll<Result<(), Ending>> {
        let _runtime = core.enter();
        if let Some(ending) = &self.ended {
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

/// Runs `work` on `connection`'s Shared; None when a Lua call on it holds it.
fn with_shared<T>(
    connection: &RefCell<dyn Pump>,
    work: impl FnOnce(&mut Shared) -> T,
) -> Option<T> {
    let mut pump = connection.try_borrow_mut().ok()?;
    let shared = pump.as_any_mut().downcast_mut::<Shared>()?;
    Some(work(shared))
}

/// A receive on `connection`: what `Shared::poll_receive` finds; when that is nothing yet
/// and `step_first`, one step of the core and another look, if such steps found something
/// lately. Lua asks for the step when this coroutine would watch the doorbell anyway: a busy
/// connection's next message is usually in the kernel already, and one call then finds it
/// (an echo's never is: copas' select waits for it). None when the connection is held.
pub fn receive_on(
    core: &Core,
    connection: &RefCell<dyn Pump>,
    step_first: bool,
) -> Option<Poll<Result<Received, Ending>>> {
    let outcome = with_shared(connection, |shared| shared.poll_receive(core))?;
    if outcome.is_ready() || !step_first || !core.first_steps.worth_trying() {
        return Some(outcome);
    }
    // No borrow of the connection is held here: the step drives it.
    core.step();
    let found = with_shared(connection, |shared| shared.readiness.is_raised())?;
    core.first_steps.record(found);
    if !found {
        return Some(Poll::Pending);
    }
    with_shared(connection, |shared| shared.poll_receive(core))
}

/// A send of `message` on `connection`; None when the connection is held.
pub fn send_on(
    core: &Core,
    connection: &RefCell<dyn Pump>,
    message: Message,
) -> Option<Poll<Result<(), Ending>>> {
    with_shared(connection, |shared| {
        shared.unsent = Some(message);
        shared.resume_send(core)
    })
}

/// A send of a TEXT (`is_text`) or BINARY message of `payload` on `connection`: written
/// straight to the socket when nothing else waits to be written and the socket takes it
/// at once (no copy into a message), else as `send_on`. None when the connection is held.
pub fn send_payload_on(
    core: &Core,
    connection: &RefCell<dyn Pump>,
    payload: &[u8],
    is_text: bool,
) -> Option<Poll<Result<(), Ending>>> {
    with_shared(connection, |shared| {
        let idle = shared.ended.is_none()
            && shared.unsent.is_none()
            && !shared.send_waiting
            && !shared.flush_waiting;
        let written = if idle {
            let masked = shared.is_client;
            shared.connection.try_write_data(payload, is_text, masked)
        } else {
            FrameWrite::Refused
        };
        match written {
            FrameWrite::Written => Poll::Ready(Ok(())),
            // The rest of the frame goes out with a flush, which may wait for room.
            FrameWrite::Partly => shared.resume_send(core),
            FrameWrite::Refused => match connection::data_message(payload, is_text) {
                Ok(message) => {
                    shared.unsent = Some(message);
                    shared.resume_send(core)
                }
                Err(ending) => Poll::Ready(Err(ending)),
            },
        }
    })
}

/// The error of a call on a connection that another call holds (a bug).
fn connection_in_use() -> mlua::Error {
    mlua::Error::runtime("websocket: the connection is in use by another call")
}

/// The core drives a connection whenever its waker fires, whether or not Lua waits on it.
impl Pump for Shared {
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
        before != after || self.send_waiting || self.connecting.is_some()
    }

    fn is_closing(&self) -> bool {
        self.connection.state() == State::Closing
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A connection as a broadcast sees it.
#[derive(Clone)]
pub struct Member(std::rc::Weak<RefCell<Shared>>);

/// What became of a broadcast's message for one member.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    Sent,
    /// Something else waits to be written first (a Lua send, an earlier broadcast the socket
    /// did not take yet): Lua sends it with a send that waits, so that nothing is lost and
    /// memory stays bounded by one message per connection.
    Busy,
    /// Not OPEN.
    Gone,
}

impl Member {
    /// Writes `message` to the socket without waiting, when nothing else waits to be written:
    /// `frame` (the message encoded, the same bytes for every member) straight to the
    /// socket when it can, else through tungstenite.
    pub fn offer(&self, core: &Core, message: &Message, frame: Option<&[u8]>) -> Offered {
        let Some(shared) = self.0.upgrade() else {
            return Offered::Gone;
        };
        let Ok(mut guard) = shared.try_borrow_mut() else {
            return Offered::Busy;
        };
        let shared = &mut *guard;
        if shared.connection.state() != State::Open || shared.ended.is_some() {
            return Offered::Gone;
        }
        if shared.unsent.is_some() || shared.send_waiting || shared.flush_waiting {
            return Offered::Busy;
        }
        let written = frame.map_or(FrameWrite::Refused, |frame| {
            shared.connection.try_write_frame(frame)
        });
        let mut unsent = match written {
            FrameWrite::Written => return Offered::Sent,
            // Only the rest of the frame is left to write: a flush does it.
            FrameWrite::Partly => None,
            FrameWrite::Refused => Some(message.clone()),
        };
        let mut cx = shared.readiness.waker_context();
        let sent = shared.connection.poll_send(&mut cx, &mut unsent);
        match sent {
            Poll::Ready(Ok(())) => Offered::Sent,
            Poll::Ready(Err(ending)) => {
                shared.ended = Some(ending);
                shared.settle(core);
                Offered::Gone
            }
            Poll::Pending if unsent.is_some() => Offered::Busy,
            Poll::Pending => {
                // Taken, not all written: the core flushes it when the socket has room.
                shared.flush_waiting = true;
                Offered::Sent
            }
        }
    }
}

pub struct NonBlockingConnection {
    core: Rc<Core>,
    shared: Rc<RefCell<Shared>>,
    /// The deadline of the wait under way, if it has one.
    wait_alarm: WaitAlarm,
    /// A server connection's request.
    request: Option<Rc<RequestInfo>>,
}

/// `websocket_native.copas_client(opts)`: a client whose calls never wait.
pub fn new_client(lua: &Lua, opts: Value) -> mlua::Result<MultiValue> {
    let made = ClientOptions::from_lua(opts, "copas").and_then(|options| {
        let core = Core::of(lua)?;
        let client = NonBlockingConnection::new(core, Connection::default(), options.settings);
        lua.create_userdata(client)?.into_lua_multi(lua)
    });
    argument_errors_as_values(lua, made)
}

impl NonBlockingConnection {
    /// A handle over `connection` (open already for a server, closed for a client).
    pub fn new(core: Rc<Core>, connection: Connection, settings: ConnectionSettings) -> Self {
        let opened = connection.state() == State::Open;
        let account = connection.account().cloned();
        let shared = Rc::new(RefCell::new(Shared {
            connection,
            readiness: core.readiness(),
            settings,
            connecting: None,
            unsent: None,
            send_waiting: false,
            flush_waiting: false,
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
        }));
        let id = shared.borrow().readiness.id();
        let pump: Rc<RefCell<dyn Pump>> = shared.clone();
        core.add_pump(id, Rc::downgrade(&pump));
        NonBlockingConnection {
            core,
            shared,
            wait_alarm: WaitAlarm::default(),
            request: None,
        }
    }

    /// A server connection for `request`: served by the core until it ends, and `notice`
    /// hears of its end.
    pub fn serve(mut self, notice: Rc<dyn EndNotice>, request: Rc<RequestInfo>) -> Self {
        self.request = Some(request);
        {
            let mut shared = self.shared.borrow_mut();
            shared.on_end = Some(notice);
            self.core.start_service(shared.readiness.id());
            // Start reading ahead and the keepalive at once.
            shared.readiness.wake();
        }
        self
    }

    /// This connection as a broadcast's member.
    pub fn member(&self) -> Member {
        Member(Rc::downgrade(&self.shared))
    }

    pub fn id(&self) -> u64 {
        self.shared.borrow().readiness.id()
    }

    fn connect(&mut self, lua: &Lua, arguments: ConnectArguments) -> mlua::Result<MultiValue> {
        let (state, settings) = {
            let shared = self.shared.borrow();
            let state = match shared.connecting {
                Some(_) => State::Open, // a connect in progress counts as not CLOSED
                None => shared.connection.state(),
            };
            (state, shared.settings.clone())
        };
        let mut request = match connect_request(lua, arguments, state, &settings)? {
            Ok(request) => request,
            Err(answer) => return Ok(answer),
        };
        let core = Rc::clone(&self.core);
        request.on_socket = Some(Box::new(move |fd| {
            let _ = core.watch(fd);
        }));
        let _runtime = self.core.enter();
        self.shared.borrow_mut().connecting = Some(Box::pin(connection::open(request)));
        self.resume_connect(lua)
    }

    fn resume_connect(&mut self, lua: &Lua) -> mlua::Result<MultiValue> {
        let _runtime = self.core.enter();
        let mut guard = self.shared.borrow_mut();
        let shared = &mut *guard;
        let Some(connecting) = shared.connecting.as_mut() else {
            return (Value::Nil, "wrong state").into_lua_multi(lua);
        };
        let mut cx = shared.readiness.poll_context();
        let outcome = match connecting.as_mut().poll(&mut cx) {
            Poll::Pending => return pending().into_lua_multi(lua),
            Poll::Ready(outcome) => outcome,
        };
        shared.connecting = None;
        let outcome = outcome.map(|opened| {
            let keepalive = shared.settings.keepalive;
            shared.connection = Connection::open(opened.stream, Role::Client, keepalive);
            shared.account = shared.connection.account().cloned();
            shared.drop_inbox();
            shared.ended = None;
            shared.closing_with = None;
            shared.opened = true;
            shared.end_reported = false;
            if keepalive.is_some() {
                // Pings go out whether or not the program waits on this client.
                self.core.start_service(shared.readiness.id());
            }
            // Read ahead from now on.
            shared.readiness.wake();
            opened.accepted
        });
        results::connected(lua, outcome)
    }

    /// Gives up a connect in progress (its timeout expired).
    fn cancel_connect(&mut self) {
        self.shared.borrow_mut().connecting = None;
    }

    /// `receive_on` this connection, as Lua values.
    fn receive(&mut self, lua: &Lua, step_first: bool) -> mlua::Result<MultiValue> {
        match receive_on(&self.core, &*self.shared, step_first) {
            None => Err(connection_in_use()),
            Some(Poll::Pending) => pending().into_lua_multi(lua),
            Some(Poll::Ready(outcome)) => results::received(lua, outcome),
        }
    }

    fn send(&mut self, lua: &Lua, payload: Value, opcode: Value) -> mlua::Result<MultiValue> {
        let message = message_to_send(payload, opcode)?;
        match send_on(&self.core, &*self.shared, message) {
            None => Err(connection_in_use()),
            Some(outcome) => sent_values(lua, outcome),
        }
    }

    fn resume_send(&mut self, lua: &Lua) -> mlua::Result<MultiValue> {
        match with_shared(&*self.shared, |shared| shared.resume_send(&self.core)) {
            None => Err(connection_in_use()),
            Some(outcome) => sent_values(lua, outcome),
        }
    }

    fn close(&mut self, lua: &Lua, code: Value, reason: Value) -> mlua::Result<MultiValue> {
        let code = close_code(code)?;
        let reason = close_reason(reason)?;
        {
            let mut shared = self.shared.borrow_mut();
            if shared.connection.state() == State::Open {
                shared.closing_with = Some((code, reason));
            }
        }
        self.resume_close(lua)
    }

    fn resume_close(&mut self, lua: &Lua) -> mlua::Result<MultiValue> {
        let _runtime = self.core.enter();
        let mut shared = self.shared.borrow_mut();
        shared.readiness.lower();
        let ending = match shared.ended.take() {
            Some(ending) => ending,
            None => match shared.poll_close() {
                Poll::Pending => return pending().into_lua_multi(lua),
                Poll::Ready(ending) => ending,
            },
        };
        shared.drop_inbox();
        shared.settle(&self.core);
        results::closed(lua, ending)
    }

    /// Closes in the background: the core finishes the close handshake on its own.
    fn close_in_background(&mut self, code: Value, reason: Value) -> mlua::Result<()> {
        let code = close_code(code)?;
        let reason = close_reason(reason)?;
        let mut shared = self.shared.borrow_mut();
        if shared.connection.state() == State::Open {
            shared.closing_with = Some((code, reason));
            shared.readiness.wake();
        }
        Ok(())
    }

    /// Whether a close started by `close_in_background` has finished (driving it first); a
    /// receive waiting on the same connection still learns how it ended.
    fn close_finished(&mut self) -> bool {
        let _runtime = self.core.enter();
        let mut shared = self.shared.borrow_mut();
        shared.readiness.lower();
        shared.drive_connection();
        shared.settle(&self.core);
        shared.connection.state() == State::Closed
    }

    /// The server's handler for this connection returned: Lua holds no message of it any
    /// more, and messages read ahead are dropped once the connection ends (nobody is left
    /// to receive them; a program that keeps the ws to receive later still can while the
    /// connection is open).
    fn handler_returned(&mut self) {
        let _runtime = self.core.enter();
        let mut shared = self.shared.borrow_mut();
        shared.handler_returned = true;
        shared.count(Part::Taken, 0);
        if shared.ended.is_some() || shared.connection.state() == State::Closed {
            shared.drop_inbox();
        }
        // A peer that hung up while its messages waited is let go now.
        shared.readiness.wake();
    }

    /// Drops the socket at once (a close whose timeout expired).
    fn abort(&mut self) -> Ending {
        let mut shared = self.shared.borrow_mut();
        shared.connecting = None;
        shared.connection = Connection::default();
        shared.settle(&self.core);
        Ending::unclean(1006, crate::socket_error::TIMEOUT)
    }

    fn state(&self) -> &'static str {
        let shared = self.shared.borrow();
        if shared.ended.is_some() {
            return State::Closed.name();
        }
        shared.connection.state().name()
    }
}

/// A send's outcome as Lua values.
fn sent_values(lua: &Lua, outcome: Poll<Result<(), Ending>>) -> mlua::Result<MultiValue> {
    match outcome {
        Poll::Pending => pending().into_lua_multi(lua),
        Poll::Ready(outcome) => results::sent(lua, outcome),
    }
}

impl Drop for NonBlockingConnection {
    fn drop(&mut self) {
        let mut shared = self.shared.borrow_mut();
        if let Some((_, alarm)) = shared.keepalive_alarm.take() {
            self.core.cancel_deadline(alarm);
        }
        if let Some((_, alarm)) = shared.departure_alarm.take() {
            self.core.cancel_deadline(alarm);
        }
        self.core.remove_pump(shared.readiness.id());
    }
}

impl UserData for NonBlockingConnection {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("connect", |lua, this, arguments: ConnectArguments| {
            argument_errors_as_values(lua, this.connect(lua, arguments))
        });
        methods.add_method_mut("resume_connect", |lua, this, ()| this.resume_connect(lua));
        methods.add_method_mut("cancel_connect", |_, this, ()| {
            this.cancel_connect();
            Ok(())
        });
        methods.add_method_mut("receive", |lua, this, step_first: Option<bool>| {
            this.receive(lua, step_first.unwrap_or(false))
        });
        methods.add_method_mut("send", |lua, this, (payload, opcode): (Value, Value)| {
            argument_errors_as_values(lua, this.send(lua, payload, opcode))
        });
        methods.add_method_mut("resume_send", |lua, this, ()| this.resume_send(lua));
        methods.add_method_mut("close", |lua, this, (code, reason): (Value, Value)| {
            argument_errors_as_values(lua, this.close(lua, code, reason))
        });
        methods.add_method_mut("resume_close", |lua, this, ()| this.resume_close(lua));
        methods.add_method_mut("close_in_background", |_, this, (code, reason)| {
            this.close_in_background(code, reason)
        });
        methods.add_method_mut("close_finished", |_, this, ()| Ok(this.close_finished()));
        methods.add_method_mut("abort", |lua, this, ()| results::closed(lua, this.abort()));
        methods.add_method("state", |_, this, ()| Ok(this.state()));
        methods.add_method_mut("handler_returned", |_, this, ()| {
            this.handler_returned();
            Ok(())
        });
        // A server connection's request as a Lua table (a new one each call), else nil.
        methods.add_method("request", |lua, this, ()| {
            this.request
                .as_ref()
                .map(|info| info.to_lua(lua))
                .transpose()
        });
        methods.add_method("ready", |_, this, ()| {
            Ok(this.shared.borrow().readiness.is_raised())
        });
        // The id `websocket_native.take_raised` reports this handle by.
        methods.add_method("id", |_, this, ()| Ok(this.shared.borrow().readiness.id()));
        // The deadline of the wait under way (seconds on `now()`'s clock), replacing any
        // earlier one; nil cancels it.
        methods.add_method_mut("wake_at", |_, this, seconds: Option<f64>| {
            let readiness = this.shared.borrow().readiness.clone();
            this.wait_alarm.set(&this.core, seconds, &readiness);
            Ok(())
        });
    }
}
