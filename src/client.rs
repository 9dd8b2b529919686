//! The sync client as Lua userdata: each method blocks the Lua thread in the core's runtime
//! and answers with lua-websockets' return values. Nothing runs between calls: keepalive
//! pings go out, and pongs are awaited, while a receive waits.

use std::rc::Rc;
use std::time::Duration;

use mlua::{IntoLuaMulti, Lua, MultiValue, UserData, UserDataMethods, Value};

use crate::call_timer::CallTimer;
use crate::connection::{ConnectRequest, Connection, Ending, DEFAULT_CLOSE_WAIT};
use crate::core::Core;
use crate::options::{
    argument_errors_as_values, close_code, close_reason, connect_request, message_to_send,
    ClientOptions, ConnectArguments, ConnectionSettings,
};
use crate::results;
use crate::socket_error::TIMEOUT;

pub struct SyncClient {
    core: Rc<Core>,
    connection: Connection,
    timeout: Option<Duration>,
    timer: CallTimer,
    settings: ConnectionSettings,
}

/// `websocket_native.sync_client(opts)`: the client, or `false, message` for a bad `opts`.
pub fn new_sync_client(lua: &Lua, opts: Value) -> mlua::Result<MultiValue> {
    let made = ClientOptions::from_lua(opts, "sync").and_then(|options| {
        let client = SyncClient {
            core: Core::of(lua)?,
            connection: Connection::default(),
            timeout: options.timeout,
            timer: CallTimer::default(),
            settings: options.settings,
        };
        lua.create_userdata(client)?.into_lua_multi(lua)
    });
    argument_errors_as_values(lua, made)
}

impl SyncClient {
    fn connect(&mut self, lua: &Lua, arguments: ConnectArguments) -> mlua::Result<MultiValue> {
        let request: ConnectRequest =
            match connect_request(lua, arguments, self.connection.state(), &self.settings)? {
                Ok(request) => request,
                Err(answer) => return Ok(answer),
            };
        let mut connection = Connection::default();
        let outcome = self.timer.run(
            &self.core,
            self.timeout,
            connection.connect(request, self.settings.keepalive),
        );
        if matches!(outcome, Some(Ok(_))) {
            self.connection = connection;
        }
        match outcome {
            Some(outcome) => results::connected(lua, outcome),
            None => (Value::Nil, TIMEOUT).into_lua_multi(lua),
        }
    }

    fn receive(&mut self, lua: &Lua) -> mlua::Result<MultiValue> {
        let outcome = self
            .timer
            .run(&self.core, self.timeout, self.connection.receive());
        // On a timeout the connection stays open: a later receive goes on reading.
        let outcome = outcome.unwrap_or_else(|| Err(Ending::unclean(1006, TIMEOUT)));
        results::received(lua, outcome)
    }

    fn send(&mut self, lua: &Lua, payload: Value, opcode: Value) -> mlua::Result<MultiValue> {
        let message = message_to_send(payload, opcode)?;
        let outcome = self
            .timer
            .run(&self.core, self.timeout, self.connection.send(message));
        // What was not written yet stays queued and goes out with the next write.
        let outcome = outcome.unwrap_or_else(|| Err(Ending::unclean(1006, TIMEOUT)));
        results::sent(lua, outcome)
    }

    fn close(&mut self, lua: &Lua, code: Value, reason: Value) -> mlua::Result<MultiValue> {
        let code = close_code(code)?;
        let reason = close_reason(reason)?;
        let wait = self.timeout.unwrap_or(DEFAULT_CLOSE_WAIT);
        let ending = self
            .core
            .block_on(self.connection.close(code, &reason, wait));
        results::closed(lua, ending)
    }
}

impl UserData for SyncClient {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("connect", |lua, this, arguments: ConnectArguments| {
            argument_errors_as_values(lua, this.connect(lua, arguments))
        });
        methods.add_method_mut("receive", |lua, this, ()| this.receive(lua));
        methods.add_method_mut("send", |lua, this, (payload, opcode): (Value, Value)| {
            argument_errors_as_values(lua, this.send(lua, payload, opcode))
        });
        methods.add_method_mut("close", |lua, this, (code, reason): (Value, Value)| {
            argument_errors_as_values(lua, this.close(lua, code, reason))
        });
        methods.add_method("state", |_, this, ()| Ok(this.connection.state().name()));
    }
}
