//! What Lua holds of a connection whose calls never wait: the userdata of the copas client
//! and of the server's connections, its methods, and the values they answer (see the
//! parent module for the state they act on).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::Poll;

use mlua::{IntoLuaMulti, LightUserData, Lua, MultiValue, UserData, UserDataMethods, Value};
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{receive_on, send_on, with_shared, EndNotice, Member, Shared};
use crate::binding::options::{
    argument_errors_as_values, close_code, close_reason, connect_request, message_to_send,
    ClientOptions, ConnectArguments,
};
use crate::binding::request_table::request_table;
use crate::binding::results;
use crate::connection::connect;
use crate::connection::request::RequestInfo;
use crate::connection::settings::ConnectionSettings;
use crate::connection::{Connection, Ending, State};
use crate::net::memory_budget::Part;
use crate::runtime::core::{Core, Pump, WaitAlarm};

/// The value a call returns first when it would have to wait.
pub fn pending() -> LightUserData {
    static MARKER: u8 = 0;
    LightUserData(&MARKER as *const u8 as *mut std::ffi::c_void)
}

/// The error of a call on a connection that another call holds (a bug).
fn connection_in_use() -> mlua::Error {
    mlua::Error::runtime("websocket: the connection is in use by another call")
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
        self.shared.borrow_mut().connecting = Some(Box::pin(connect::open(request)));
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
        Ending::unclean(1006, crate::net::socket_error::TIMEOUT)
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
                .map(|info| request_table(lua, info))
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
