//! A connection whose every call returns at once: the copas client and the server's
//! connections. A call that would have to wait answers `PENDING` instead; Lua then waits for
//! `ready()` (copas resumes it when the doorbell rings and the flag is up) and calls the
//! matching `resume_*` method.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use mlua::{IntoLuaMulti, LightUserData, Lua, MultiValue, UserData, UserDataMethods, Value};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::connection::{self, ConnectError, Connection, Ending, Opened, Received, State};
use crate::core::{BackgroundWork, Core, DeadlineId};
use crate::options::{
    argument_errors_as_values, close_code, close_reason, connect_request, message_to_send,
    ClientOptions, ConnectArguments,
};
use crate::ready::Readiness;
use crate::results;

/// The value a call returns first when it would have to wait.
pub fn pending() -> LightUserData {
    static MARKER: u8 = 0;
    LightUserData(&MARKER as *const u8 as *mut std::ffi::c_void)
}

type Connecting = Pin<Box<dyn Future<Output = Result<Opened, ConnectError>>>>;

/// What a call in progress and the core's background closing share.
struct Shared {
    connection: Connection,
    readiness: Readiness,
    connecting: Option<Connecting>,
    unsent: Option<Message>,
    /// The close frame's code and reason, once a close has started.
    closing_with: Option<(u16, String)>,
    /// How the connection ended when that happened in the background, for the next call.
    ended: Option<Ending>,
}

impl Shared {
    fn poll_close(&mut self) -> Poll<Ending> {
        let (code, reason) = self.closing_with.clone().unwrap_or((1000, String::new()));
        let mut cx = self.readiness.poll_context();
        self.connection.poll_close(&mut cx, code, &reason)
    }
}

/// Closing a connection that no Lua call is waiting on (server:close()).
impl BackgroundWork for Shared {
    fn advance(&mut self) -> bool {
        if !self.readiness.is_raised() {
            return false;
        }
        match self.poll_close() {
            Poll::Pending => false,
            Poll::Ready(ending) => {
                self.ended = Some(ending);
                // Whoever waits on this connection learns how it ended.
                self.readiness.raise();
                true
            }
        }
    }
}

pub struct NonBlockingConnection {
    core: Rc<Core>,
    shared: Rc<RefCell<Shared>>,
    config: WebSocketConfig,
    /// The deadline of the wait under way, if it has one.
    deadline: Option<DeadlineId>,
}

/// `websocket_native.copas_client(opts)`: a client whose calls never wait.
pub fn new_client(lua: &Lua, opts: Value) -> mlua::Result<MultiValue> {
    let made = ClientOptions::from_lua(opts, "copas").and_then(|options| {
        let core = Core::of(lua)?;
        let client = NonBlockingConnection::new(core, Connection::default(), options.config);
        lua.create_userdata(client)?.into_lua_multi(lua)
    });
    argument_errors_as_values(lua, made)
}

impl NonBlockingConnection {
    pub fn new(core: Rc<Core>, connection: Connection, config: WebSocketConfig) -> Self {
        let shared = Shared {
            connection,
            readiness: core.readiness(),
            connecting: None,
            unsent: None,
            closing_with: None,
            ended: None,
        };
        NonBlockingConnection {
            core,
            shared: Rc::new(RefCell::new(shared)),
            config,
            deadline: None,
        }
    }

    fn connect(&mut self, lua: &Lua, arguments: ConnectArguments) -> mlua::Result<MultiValue> {
        let state = {
            let shared = self.shared.borrow();
            match shared.connecting {
                Some(_) => State::Open, // a connect in progress counts as not CLOSED
                None => shared.connection.state(),
            }
        };
        let mut request = match connect_request(lua, arguments, state, self.config)? {
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
            shared.connection = Connection::open(opened.stream);
            opened.accepted
        });
        results::connected(lua, outcome)
    }

    /// Gives up a connect in progress (its timeout expired).
    fn cancel_connect(&mut self) {
        self.shared.borrow_mut().connecting = None;
    }

    /// `step_first`: when nothing is there yet, step the core once and look again. Lua asks
    /// for it when this coroutine would watch the doorbell anyway: a busy connection's next
    /// message is usually in the kernel already, and one call then finds it.
    fn receive(&mut self, lua: &Lua, step_first: bool) -> mlua::Result<MultiValue> {
        let outcome = match self.poll_receive() {
            Poll::Pending if step_first => {
                // No borrow of the connection is held here: the step advances background
                // work, which may be this connection's closing.
                self.core.step();
                if self.shared.borrow().readiness.is_raised() {
                    self.poll_receive()
                } else {
                    Poll::Pending
                }
            }
            outcome => outcome,
        };
        match outcome {
            Poll::Pending => pending().into_lua_multi(lua),
            Poll::Ready(outcome) => results::received(lua, outcome),
        }
    }

    fn poll_receive(&mut self) -> Poll<Result<Received, Ending>> {
        let _runtime = self.core.enter();
        let mut guard = self.shared.borrow_mut();
        let shared = &mut *guard;
        if let Some(ending) = shared.ended.take() {
            return Poll::Ready(Err(ending));
        }
        match shared.connection.state() {
            // A close under way (started by server:close()) is what this receive waits for.
            State::Closing => shared.poll_close().map(Err),
            _ => {
                let mut cx = shared.readiness.poll_context();
                shared.connection.poll_receive(&mut cx)
            }
        }
    }

    fn send(&mut self, lua: &Lua, payload: Value, opcode: Value) -> mlua::Result<MultiValue> {
        let message = message_to_send(payload, opcode)?;
        self.shared.borrow_mut().unsent = Some(message);
        self.resume_send(lua)
    }

    fn resume_send(&mut self, lua: &Lua) -> mlua::Result<MultiValue> {
        let _runtime = self.core.enter();
        let mut shared = self.shared.borrow_mut();
        if let Some(ending) = shared.ended.take() {
            return results::sent(lua, Err(ending));
        }
        let Shared {
            connection,
            readiness,
            unsent,
            ..
        } = &mut *shared;
        let mut cx = readiness.poll_context();
        match connection.poll_send(&mut cx, unsent) {
            Poll::Pending => pending().into_lua_multi(lua),
            Poll::Ready(outcome) => results::sent(lua, outcome),
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
        if let Some(ending) = shared.ended.take() {
            return results::closed(lua, ending);
        }
        match shared.poll_close() {
            Poll::Pending => pending().into_lua_multi(lua),
            Poll::Ready(ending) => results::closed(lua, ending),
        }
    }

    /// Closes in the background: the core finishes the close handshake on its own.
    fn close_in_background(&mut self, code: Value, reason: Value) -> mlua::Result<()> {
        let code = close_code(code)?;
        let reason = close_reason(reason)?;
        {
            let mut shared = self.shared.borrow_mut();
            if shared.connection.state() != State::Open {
                return Ok(());
            }
            shared.closing_with = Some((code, reason));
            shared.readiness.raise();
        }
        let work: Rc<RefCell<dyn BackgroundWork>> = self.shared.clone();
        self.core.run_in_background(work);
        Ok(())
    }

    /// Drops the socket at once (a close whose timeout expired).
    fn abort(&mut self) -> Ending {
        let mut shared = self.shared.borrow_mut();
        shared.connecting = None;
        shared.connection = Connection::default();
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

/// Seconds on the core's clock (`websocket_native.now()`), as an Instant.
fn instant_at(core: &Core, seconds: f64) -> Instant {
    let at = core.epoch() + Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX);
    at.max(Instant::now())
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
        methods.add_method_mut("abort", |lua, this, ()| results::closed(lua, this.abort()));
        methods.add_method("state", |_, this, ()| Ok(this.state()));
        methods.add_method("ready", |_, this, ()| {
            Ok(this.shared.borrow().readiness.is_raised())
        });
        // The id `websocket_native.take_raised` reports this handle by.
        methods.add_method("id", |_, this, ()| Ok(this.shared.borrow().readiness.id()));
        // The deadline of the wait under way (seconds on `now()`'s clock), replacing any
        // earlier one; nil cancels it.
        methods.add_method_mut("wake_at", |_, this, seconds: Option<f64>| {
            if let Some(previous) = this.deadline.take() {
                this.core.cancel_deadline(previous);
            }
            if let Some(seconds) = seconds {
                let deadline = instant_at(&this.core, seconds);
                let readiness = this.shared.borrow().readiness.clone();
                this.deadline = Some(this.core.raise_at(deadline, &readiness));
            }
            Ok(())
        });
    }
}
