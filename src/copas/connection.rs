//! A copas connection: the copas client, or one of a server's connections. Every call
//! returns at once; one that would have to wait answers `Poll::Pending` (PENDING in Lua),
//! and Lua waits for `is_ready()` (copas resumes it when the doorbell rings and the flag is
//! up) and calls the matching `resume_*`. The state these calls act on is driven.rs'.

use std::cell::RefCell;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::driven::{receive_on, send_on, with_driven, DrivenConnection, EndNotice};
use super::member::Member;
use crate::connection::connect::{self, Accepted, ConnectError, ConnectRequest};
use crate::connection::request::RequestInfo;
use crate::connection::settings::ConnectionSettings;
use crate::connection::{Connection, Ending, Received, State};
use crate::net::memory_budget::Part;
use crate::net::socket_error::{TIMEOUT, WRONG_STATE};
use crate::runtime::core::{Core, Pump, WaitAlarm};

/// A call made while another call holds the connection (only a bug could make that
/// happen).
#[derive(Debug)]
pub(crate) struct InUse;

pub(crate) struct CopasConnection {
    core: Rc<Core>,
    driven: Rc<RefCell<DrivenConnection>>,
    /// The deadline of the wait under way, if it has one.
    wait_alarm: WaitAlarm,
    /// A server connection's request.
    request: Option<Rc<RequestInfo>>,
}

impl CopasConnection {
    /// A connection over `connection` (open already for a server, closed for a client).
    pub(crate) fn new(
        core: Rc<Core>,
        connection: Connection,
        settings: ConnectionSettings,
    ) -> Self {
        let driven = DrivenConnection::new(connection, core.readiness(), settings);
        let id = driven.readiness.id();
        let driven = Rc::new(RefCell::new(driven));
        let pump: Rc<RefCell<dyn Pump>> = driven.clone();
        core.add_pump(id, Rc::downgrade(&pump));
        CopasConnection {
            core,
            driven,
            wait_alarm: WaitAlarm::default(),
            request: None,
        }
    }

    /// A server connection for `request`: served by the core until it ends, and `notice`
    /// hears of its end.
    pub(crate) fn serve(mut self, notice: Rc<dyn EndNotice>, request: Rc<RequestInfo>) -> Self {
        self.request = Some(request);
        {
            let mut driven = self.driven.borrow_mut();
            driven.on_end = Some(notice);
            self.core.start_service(driven.readiness.id());
            // Start reading ahead and the keepalive at once.
            driven.readiness.wake();
        }
        self
    }

    /// This connection as a broadcast's member.
    pub(crate) fn member(&self) -> Member {
        Member(Rc::downgrade(&self.driven))
    }

    /// The id the core reports this connection by when its flag goes up.
    pub(crate) fn id(&self) -> u64 {
        self.driven.borrow().readiness.id()
    }

    /// Whether the flag is up: a call waiting on this connection may go on.
    pub(crate) fn is_ready(&self) -> bool {
        self.driven.borrow().readiness.is_raised()
    }

    /// The deadline of the wait under way (seconds on the core's clock), replacing any
    /// earlier one; None cancels it.
    pub(crate) fn wake_at(&mut self, seconds: Option<f64>) {
        let readiness = self.driven.borrow().readiness.clone();
        self.wait_alarm.set(&self.core, seconds, &readiness);
    }

    /// A server connection's request.
    pub(crate) fn request(&self) -> Option<&RequestInfo> {
        self.request.as_deref()
    }

    /// The state a connect judges its call by (a connect in progress counts as not
    /// CLOSED), and the settings it opens with.
    pub(crate) fn connect_state(&self) -> (State, ConnectionSettings) {
        let driven = self.driven.borrow();
        let state = match driven.connecting {
            Some(_) => State::Open,
            None => driven.connection.state(),
        };
        (state, driven.settings.clone())
    }

    /// Starts connecting to what `request` names.
    pub(crate) fn connect(
        &mut self,
        mut request: ConnectRequest,
    ) -> Option<Poll<Result<Accepted, ConnectError>>> {
        let core = Rc::clone(&self.core);
        request.on_socket = Some(Box::new(move |fd| {
            let _ = core.watch(fd);
        }));
        let _runtime = self.core.enter();
        self.driven.borrow_mut().connecting = Some(Box::pin(connect::open(request)));
        self.resume_connect()
    }

    /// Goes on with the connect under way; None when there is none.
    pub(crate) fn resume_connect(&mut self) -> Option<Poll<Result<Accepted, ConnectError>>> {
        let _runtime = self.core.enter();
        let mut guard = self.driven.borrow_mut();
        let driven = &mut *guard;
        let connecting = driven.connecting.as_mut()?;
        let mut cx = driven.readiness.poll_context();
        let outcome = match connecting.as_mut().poll(&mut cx) {
            Poll::Pending => return Some(Poll::Pending),
            Poll::Ready(outcome) => outcome,
        };
        driven.connecting = None;
        Some(Poll::Ready(outcome.map(|opened| {
            let keepalive = driven.settings.keepalive;
            driven.connection = Connection::open(opened.stream, Role::Client, keepalive);
            driven.connection.defer_failures();
            driven.account = driven.connection.account().cloned();
            driven.drop_inbox();
            driven.ended = None;
            driven.closing_with = None;
            driven.opened = true;
            driven.end_reported = false;
            if keepalive.is_some() {
                // Pings go out whether or not the program waits on this client.
                self.core.start_service(driven.readiness.id());
            }
            // Read ahead from now on.
            driven.readiness.wake();
            opened.accepted
        })))
    }

    /// Gives up a connect in progress (its timeout expired).
    pub(crate) fn cancel_connect(&mut self) {
        self.driven.borrow_mut().connecting = None;
    }

    /// The next message, or how the connection ended (see driven::receive_on).
    pub(crate) fn receive(
        &mut self,
        step_first: bool,
    ) -> Result<Poll<Result<Received, Ending>>, InUse> {
        receive_on(&self.core, &*self.driven, step_first).ok_or(InUse)
    }

    pub(crate) fn send(&mut self, message: Message) -> Result<Poll<Result<(), Ending>>, InUse> {
        send_on(&self.core, &*self.driven, message).ok_or(InUse)
    }

    pub(crate) fn resume_send(&mut self) -> Result<Poll<Result<(), Ending>>, InUse> {
        with_driven(&*self.driven, |driven| driven.resume_send(&self.core)).ok_or(InUse)
    }

    /// Sends a ping whose pong `round_trip` then waits for (see Connection::start_ping).
    pub(crate) fn ping(
        &mut self,
        payload: Option<Bytes>,
    ) -> Result<Poll<Result<(), Ending>>, InUse> {
        let message = match self.driven.try_borrow_mut() {
            Ok(mut driven) => driven.connection.start_ping(payload),
            Err(_) => return Err(InUse),
        };
        self.send(message)
    }

    /// The round trip of the last ping once its pong came; how the connection ended when
    /// it ended first (or `wrong state` with no ping under way); Pending meanwhile, with the
    /// handle's flag lowered until something was read.
    pub(crate) fn round_trip(&mut self) -> Poll<Result<Duration, Ending>> {
        let _runtime = self.core.enter();
        let mut driven = self.driven.borrow_mut();
        driven.readiness.lower();
        if let Some(round_trip) = driven.connection.take_round_trip() {
            return Poll::Ready(Ok(round_trip));
        }
        // Read what came (the pong may wait behind messages that fit the inbox).
        driven.drive_connection();
        let outcome = match driven.connection.take_round_trip() {
            Some(round_trip) => Poll::Ready(Ok(round_trip)),
            None => match &driven.ended {
                Some(ending) => Poll::Ready(Err(ending.clone())),
                None if driven.connection.state() == State::Closed
                    || !driven.connection.awaits_pong() =>
                {
                    Poll::Ready(Err(Ending::unclean(1006, WRONG_STATE)))
                }
                None => Poll::Pending,
            },
        };
        driven.settle(&self.core);
        outcome
    }

    /// Starts the closing handshake with `code` and `reason` (unless it started already).
    pub(crate) fn close(&mut self, code: u16, reason: String) -> Poll<Ending> {
        {
            let mut driven = self.driven.borrow_mut();
            if driven.connection.state() == State::Open {
                driven.closing_with = Some((code, reason));
            }
        }
        self.resume_close()
    }

    pub(crate) fn resume_close(&mut self) -> Poll<Ending> {
        let _runtime = self.core.enter();
        let mut driven = self.driven.borrow_mut();
        driven.readiness.lower();
        let ending = match driven.ended.take() {
            Some(ending) => ending,
            None => match driven.poll_close() {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(ending) => ending,
            },
        };
        driven.drop_inbox();
        driven.settle(&self.core);
        Poll::Ready(ending)
    }

    /// Closes in the background: the core finishes the close handshake on its own.
    pub(crate) fn close_in_background(&mut self, code: u16, reason: String) {
        let mut driven = self.driven.borrow_mut();
        if driven.connection.state() == State::Open {
            driven.closing_with = Some((code, reason));
            driven.readiness.wake();
        }
    }

    /// Whether a close started by `close_in_background` has finished (driving it first); a
    /// receive waiting on the same connection still learns how it ended.
    pub(crate) fn close_finished(&mut self) -> bool {
        let _runtime = self.core.enter();
        let mut driven = self.driven.borrow_mut();
        driven.readiness.lower();
        driven.drive_connection();
        driven.settle(&self.core);
        driven.connection.state() == State::Closed
    }

    /// The server's handler for this connection returned: Lua holds no message of it any
    /// more, and messages read ahead are dropped once the connection ends (nobody is left
    /// to receive them; a program that keeps the ws to receive later still can while the
    /// connection is open).
    pub(crate) fn handler_returned(&mut self) {
        let _runtime = self.core.enter();
        let mut driven = self.driven.borrow_mut();
        driven.handler_returned = true;
        driven.count(Part::Taken, 0);
        driven.lua_holds_message = false;
        // Nobody is left to answer what came before a violation.
        driven.finish_failure();
        if driven.ended.is_some() || driven.connection.state() == State::Closed {
            driven.drop_inbox();
        }
        // A peer that hung up while its messages waited is let go now.
        driven.readiness.wake();
    }

    /// The bytes sent on this connection that its socket has not taken yet: a message a
    /// send holds, and what was written but not taken.
    pub(crate) fn buffered(&self) -> usize {
        let driven = self.driven.borrow();
        driven.connection.unwritten() + driven.unsent.as_ref().map_or(0, |message| message.len())
    }

    /// Drops the socket at once (a close whose timeout expired).
    pub(crate) fn abort(&mut self) -> Ending {
        let mut driven = self.driven.borrow_mut();
        driven.connecting = None;
        driven.connection = Connection::default();
        driven.settle(&self.core);
        Ending::unclean(1006, TIMEOUT)
    }

    /// The compression the last connect (or the server's handshake) agreed to.
    pub(crate) fn compression(&self) -> Option<&'static str> {
        self.driven.borrow().connection.compression()
    }

    pub(crate) fn state(&self) -> State {
        let driven = self.driven.borrow();
        if driven.ended.is_some() && !driven.connection.has_deferred_failure() {
            return State::Closed;
        }
        driven.connection.state()
    }
}

impl Drop for CopasConnection {
    fn drop(&mut self) {
        let mut driven = self.driven.borrow_mut();
        if let Some((_, alarm)) = driven.keepalive_alarm.take() {
            self.core.cancel_deadline(alarm);
        }
        if let Some((_, alarm)) = driven.departure_alarm.take() {
            self.core.cancel_deadline(alarm);
        }
        self.core.remove_pump(driven.readiness.id());
    }
}
