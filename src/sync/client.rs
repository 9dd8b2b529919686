//! The sync client as Lua userdata: each method blocks the Lua thread in the core's runtime
//! and answers with lua-websockets' return values. Nothing runs between calls: keepalive
//! pings go out, and pongs are awaited, while a receive waits.
//!
//! The calls themselves (`SyncCalls`) are plain Rust; the userdata's methods and the C
//! functions of client_fast.rs (`receive`, and the usual `send`) both reach them through
//! one `RefCell`.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use mlua::{
    AnyUserData, Function, IntoLuaMulti, Lua, MultiValue, UserData, UserDataMethods, Value,
};
use tokio_tungstenite::tungstenite::Message;

use crate::binding::options::{
    argument_errors_as_values, close_code, close_reason, connect_request, message_to_send,
    ClientOptions, ConnectArguments,
};
use crate::binding::results;
use crate::connection::connect::{Accepted, ConnectError, ConnectRequest};
use crate::connection::settings::ConnectionSettings;
use crate::connection::{self, Connection, Ending, Received, DEFAULT_CLOSE_WAIT};
use crate::net::socket_error::TIMEOUT;
use crate::net::transport::FrameWrite;
use crate::runtime::call_timer::CallTimer;
use crate::runtime::core::Core;
use crate::sync::client_fast;

/// A sync client's connection and what its calls need.
pub struct SyncCalls {
    core: Rc<Core>,
    connection: Connection,
    timeout: Option<Duration>,
    timer: CallTimer,
    settings: ConnectionSettings,
    /// Whether the last receive found its message without waiting: then the next one looks
    /// before blocking too (a stream of messages), otherwise it blocks straight away (a
    /// request and its answer, which takes a round trip).
    last_receive_was_at_hand: bool,
}

impl SyncCalls {
    /// Connects to what `request` names; `None` when the timeout passed first.
    fn connect(&mut self, request: ConnectRequest) -> Option<Result<Accepted, ConnectError>> {
        let mut connection = Connection::default();
        let outcome = self.timer.run(
            &self.core,
            self.timeout,
            connection.connect(request, self.settings.keepalive),
            false,
        );
        if matches!(outcome, Some(Ok(_))) {
            self.connection = connection;
        }
        outcome
    }

    pub fn receive(&mut self) -> Result<Received, Ending> {
        let mut receive = pin!(self.connection.receive());
        let mut polls = 0;
        let receiving = poll_fn(|cx| {
            polls += 1;
            receive.as_mut().poll(cx)
        });
        let try_first = self.last_receive_was_at_hand;
        let outcome = self
            .timer
            .run(&self.core, self.timeout, receiving, try_first);
        self.last_receive_was_at_hand = polls == 1;
        // On a timeout the connection stays open: a later receive goes on reading.
        outcome.unwrap_or_else(|| Err(Ending::unclean(1006, TIMEOUT)))
    }

    /// Sends a TEXT (`is_text`) or BINARY message of `payload`: written straight to the
    /// socket when it takes it at once (no copy into a message), else as `send` does.
    pub fn send_payload(&mut self, payload: &[u8], is_text: bool) -> Result<(), Ending> {
        match self.connection.try_write_data(payload, is_text, true) {
            FrameWrite::Written => Ok(()),
            FrameWrite::Partly => {
                let flushing = self.connection.flush();
                let outcome = self.timer.run(&self.core, self.timeout, flushing, true);
                outcome.unwrap_or_else(|| Err(Ending::unclean(1006, TIMEOUT)))
            }
            FrameWrite::Refused => self.send(connection::data_message(payload, is_text)?),
        }
    }

    pub fn send(&mut self, message: Message) -> Result<(), Ending> {
        let sending = self.connection.send(message);
        let outcome = self.timer.run(&self.core, self.timeout, sending, true);
        // What was not written yet stays queued and goes out with the next write.
        outcome.unwrap_or_else(|| Err(Ending::unclean(1006, TIMEOUT)))
    }

    fn close(&mut self, code: u16, reason: &str) -> Ending {
        let wait = self.timeout.unwrap_or(DEFAULT_CLOSE_WAIT);
        self.core
            .block_on(self.connection.close(code, reason, wait))
    }
}

/// The userdata: its methods take the calls for their duration.
pub struct SyncClient {
    calls: Rc<RefCell<SyncCalls>>,
}

/// `websocket_native.sync_client(opts)`: the client, or `false, message` for a bad `opts`.
pub fn new_sync_client(lua: &Lua, opts: Value) -> mlua::Result<MultiValue> {
    let made = ClientOptions::from_lua(opts, "sync").and_then(|options| {
        let calls = SyncCalls {
            core: Core::of(lua)?,
            connection: Connection::default(),
            timeout: options.timeout,
            timer: CallTimer::default(),
            settings: options.settings,
            last_receive_was_at_hand: false,
        };
        let client = SyncClient {
            calls: Rc::new(RefCell::new(calls)),
        };
        lua.create_userdata(client)?.into_lua_multi(lua)
    });
    argument_errors_as_values(lua, made)
}

impl SyncClient {
    /// The calls, unless another call has them (only a bug could make that happen: the
    /// Lua thread is blocked in a call until it returns).
    fn calls(&self) -> mlua::Result<std::cell::RefMut<'_, SyncCalls>> {
        self.calls
            .try_borrow_mut()
            .map_err(|_| mlua::Error::runtime("the client is in use by another call"))
    }

    fn connect(&self, lua: &Lua, arguments: ConnectArguments) -> mlua::Result<MultiValue> {
        let mut calls = self.calls()?;
        let state = calls.connection.state();
        let request = match connect_request(lua, arguments, state, &calls.settings)? {
            Ok(request) => request,
            Err(answer) => return Ok(answer),
        };
        match calls.connect(request) {
            Some(outcome) => results::connected(lua, outcome),
            None => (Value::Nil, TIMEOUT).into_lua_multi(lua),
        }
    }

    fn send(&self, lua: &Lua, payload: Value, opcode: Value) -> mlua::Result<MultiValue> {
        let message = message_to_send(payload, opcode)?;
        let outcome = self.calls()?.send(message);
        results::sent(lua, outcome)
    }

    fn close(&self, lua: &Lua, code: Value, reason: Value) -> mlua::Result<MultiValue> {
        let code = close_code(code)?;
        let reason = close_reason(reason)?;
        let ending = self.calls()?.close(code, &reason);
        results::closed(lua, ending)
    }
}

impl UserData for SyncClient {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("connect", |lua, this, arguments: ConnectArguments| {
            argument_errors_as_values(lua, this.connect(lua, arguments))
        });
        methods.add_method("send", |lua, this, (payload, opcode): (Value, Value)| {
            argument_errors_as_values(lua, this.send(lua, payload, opcode))
        });
        methods.add_method("close", |lua, this, (code, reason): (Value, Value)| {
            argument_errors_as_values(lua, this.close(lua, code, reason))
        });
        methods.add_method("state", |_, this, ()| {
            Ok(this.calls()?.connection.state().name())
        });
        // `handle:fast_methods(send_declined)`: C functions for `ws:receive()` and
        // `ws:send(message, opcode)` (see client_fast.rs); a send they do not serve goes to
        // `send_declined` with the same arguments.
        methods.add_function(
            "fast_methods",
            |lua, (handle, send_declined): (AnyUserData, Function)| {
                let calls = Rc::clone(&handle.borrow::<SyncClient>()?.calls);
                client_fast::methods(lua, calls, handle, send_declined)
            },
        );
    }
}
