//! A copas connection as Lua holds it (copas/connection.rs): `websocket_native.copas_client`
//! and the methods the copas flavours call. `receive` and `send` of the usual kind are C
//! functions too (raw.rs), which fall back to these methods for everything else.

use std::task::Poll;

use mlua::{IntoLuaMulti, Lua, MultiValue, UserData, UserDataMethods, Value};

use crate::binding::contract::IN_USE;
use crate::binding::core_functions::core_of;
use crate::binding::options::{
    argument_errors_as_values, close_code, close_reason, connect_request, message_to_send,
    ping_payload, ClientOptions, ConnectArguments,
};
use crate::binding::request_table::request_table;
use crate::binding::results;
use crate::connection::connect::{Accepted, ConnectError};
use crate::connection::Connection;
use crate::copas::connection::{CopasConnection, InUse};
use crate::net::socket_error::WRONG_STATE;

pub(crate) mod raw;

/// `websocket_native.copas_client(opts)`: a client whose calls never wait, or
/// `false, message` for a bad `opts`.
pub(crate) fn new_client(lua: &Lua, opts: Value) -> mlua::Result<MultiValue> {
    let made = ClientOptions::from_lua(opts, "copas").and_then(|options| {
        let client = CopasConnection::new(core_of(lua)?, Connection::default(), options.settings);
        lua.create_userdata(client)?.into_lua_multi(lua)
    });
    argument_errors_as_values(lua, made)
}

impl From<InUse> for mlua::Error {
    fn from(_: InUse) -> Self {
        mlua::Error::runtime(IN_USE.to_string_lossy())
    }
}

/// A connect's values; `nil, "wrong state"` when no connect was under way.
fn connect_values(
    lua: &Lua,
    outcome: Option<Poll<Result<Accepted, ConnectError>>>,
) -> mlua::Result<MultiValue> {
    match outcome {
        Some(outcome) => results::connected(lua, outcome),
        None => (Value::Nil, WRONG_STATE).into_lua_multi(lua),
    }
}

fn connect(
    lua: &Lua,
    connection: &mut CopasConnection,
    arguments: ConnectArguments,
) -> mlua::Result<MultiValue> {
    let (state, settings) = connection.connect_state();
    match connect_request(lua, arguments, state, &settings)? {
        Ok(request) => connect_values(lua, connection.connect(request)),
        Err(answer) => Ok(answer),
    }
}

fn close(
    lua: &Lua,
    connection: &mut CopasConnection,
    code: Value,
    reason: Value,
) -> mlua::Result<MultiValue> {
    let code = close_code(code)?;
    let reason = close_reason(reason)?;
    results::closed(lua, connection.close(code, reason))
}

impl UserData for CopasConnection {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("connect", |lua, this, arguments: ConnectArguments| {
            argument_errors_as_values(lua, connect(lua, this, arguments))
        });
        methods.add_method_mut("resume_connect", |lua, this, ()| {
            connect_values(lua, this.resume_connect())
        });
        methods.add_method_mut("cancel_connect", |_, this, ()| {
            this.cancel_connect();
            Ok(())
        });
        methods.add_method_mut("receive", |lua, this, step_first: Option<bool>| {
            results::received(lua, this.receive(step_first.unwrap_or(false))?)
        });
        methods.add_method_mut("send", |lua, this, (payload, opcode): (Value, Value)| {
            let sent = message_to_send(payload, opcode)
                .and_then(|message| results::sent(lua, this.send(message)?));
            argument_errors_as_values(lua, sent)
        });
        // `ping([payload])`: sends a ping as `send` does (true, PENDING, or how it failed);
        // `round_trip()` then answers its round trip in seconds, PENDING, or `nil, reason`.
        methods.add_method_mut("ping", |lua, this, payload: Value| {
            let sent =
                ping_payload(payload).and_then(|payload| results::sent(lua, this.ping(payload)?));
            argument_errors_as_values(lua, sent)
        });
        methods.add_method_mut("round_trip", |lua, this, ()| {
            results::round_trip(lua, this.round_trip())
        });
        methods.add_method_mut("resume_send", |lua, this, ()| {
            results::sent(lua, this.resume_send()?)
        });
        methods.add_method_mut("close", |lua, this, (code, reason): (Value, Value)| {
            argument_errors_as_values(lua, close(lua, this, code, reason))
        });
        methods.add_method_mut("resume_close", |lua, this, ()| {
            results::closed(lua, this.resume_close())
        });
        methods.add_method_mut("close_in_background", |_, this, (code, reason)| {
            this.close_in_background(close_code(code)?, close_reason(reason)?);
            Ok(())
        });
        methods.add_method_mut("close_finished", |_, this, ()| Ok(this.close_finished()));
        methods.add_method_mut("abort", |lua, this, ()| {
            results::closed(lua, Poll::Ready(this.abort()))
        });
        methods.add_method("state", |_, this, ()| Ok(this.state().name()));
        // `'deflate'` once a handshake agreed to compress, else nil.
        methods.add_method("compression", |_, this, ()| Ok(this.compression()));
        methods.add_method_mut("handler_returned", |_, this, ()| {
            this.handler_returned();
            Ok(())
        });
        // A server connection's request as a Lua table (a new one each call), else nil.
        methods.add_method("request", |lua, this, ()| {
            this.request()
                .map(|info| request_table(lua, info))
                .transpose()
        });
        methods.add_method("ready", |_, this, ()| Ok(this.is_ready()));
        methods.add_method("buffered", |_, this, ()| Ok(this.buffered()));
        // The id `websocket_native.take_raised` reports this handle by.
        methods.add_method("id", |_, this, ()| Ok(this.id()));
        // The deadline of the wait under way (seconds on `now()`'s clock), replacing any
        // earlier one; nil cancels it.
        methods.add_method_mut("wake_at", |_, this, seconds: Option<f64>| {
            this.wake_at(seconds);
            Ok(())
        });
    }
}
