//! The sync client as Lua holds it (sync/client.rs): `websocket_native.sync_client` and its
//! methods, which answer with lua-websockets' return values. `receive` and the usual `send`
//! are C functions too (raw.rs), kept on the client object as its own methods.
//!
//! The methods and the C functions reach the client through one `RefCell`.

use std::cell::{RefCell, RefMut};
use std::rc::Rc;
use std::task::Poll;

use mlua::{
    AnyUserData, Function, IntoLuaMulti, Lua, MultiValue, UserData, UserDataMethods, Value,
};

use crate::binding::contract::IN_USE;
use crate::binding::core_functions::core_of;
use crate::binding::options::{
    argument_errors_as_values, close_code, close_reason, connect_request, message_to_send,
    ping_payload, ClientOptions, ConnectArguments,
};
use crate::binding::results;
use crate::net::socket_error::TIMEOUT;
use crate::sync::client::SyncClient;

pub(crate) mod raw;

/// The userdata: its methods take the client for their duration.
pub(crate) struct SyncHandle {
    client: Rc<RefCell<SyncClient>>,
}

/// `websocket_native.sync_client(opts)`: the client, or `false, message` for a bad `opts`.
pub(crate) fn new_sync_client(lua: &Lua, opts: Value) -> mlua::Result<MultiValue> {
    let made = ClientOptions::from_lua(opts, "sync").and_then(|options| {
        let client = SyncClient::new(core_of(lua)?, options.timeout, options.settings);
        let handle = SyncHandle {
            client: Rc::new(RefCell::new(client)),
        };
        lua.create_userdata(handle)?.into_lua_multi(lua)
    });
    argument_errors_as_values(lua, made)
}

impl SyncHandle {
    /// The client, unless another call has it (only a bug could make that happen: the Lua
    /// thread is blocked in a call until it returns).
    fn client(&self) -> mlua::Result<RefMut<'_, SyncClient>> {
        self.client
            .try_borrow_mut()
            .map_err(|_| mlua::Error::runtime(IN_USE.to_string_lossy()))
    }

    fn connect(&self, lua: &Lua, arguments: ConnectArguments) -> mlua::Result<MultiValue> {
        let mut client = self.client()?;
        let (state, settings) = (client.state(), client.settings().clone());
        let request = match connect_request(lua, arguments, state, &settings)? {
            Ok(request) => request,
            Err(answer) => return Ok(answer),
        };
        match client.connect(request) {
            Some(outcome) => results::connected(lua, Poll::Ready(outcome)),
            None => (Value::Nil, TIMEOUT).into_lua_multi(lua),
        }
    }

    fn send(&self, lua: &Lua, payload: Value, opcode: Value) -> mlua::Result<MultiValue> {
        let message = message_to_send(payload, opcode)?;
        let outcome = self.client()?.send(message);
        results::sent(lua, Poll::Ready(outcome))
    }

    fn ping(&self, lua: &Lua, payload: Value) -> mlua::Result<MultiValue> {
        let payload = ping_payload(payload)?;
        let outcome = self.client()?.ping(payload);
        results::round_trip(lua, Poll::Ready(outcome))
    }

    fn close(&self, lua: &Lua, code: Value, reason: Value) -> mlua::Result<MultiValue> {
        let code = close_code(code)?;
        let reason = close_reason(reason)?;
        let ending = self.client()?.close(code, &reason);
        results::closed(lua, Poll::Ready(ending))
    }
}

impl UserData for SyncHandle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("connect", |lua, this, arguments: ConnectArguments| {
            argument_errors_as_values(lua, this.connect(lua, arguments))
        });
        methods.add_method("send", |lua, this, (payload, opcode): (Value, Value)| {
            argument_errors_as_values(lua, this.send(lua, payload, opcode))
        });
        methods.add_method("ping", |lua, this, payload: Value| {
            argument_errors_as_values(lua, this.ping(lua, payload))
        });
        methods.add_method("close", |lua, this, (code, reason): (Value, Value)| {
            argument_errors_as_values(lua, this.close(lua, code, reason))
        });
        methods.add_method("state", |_, this, ()| Ok(this.client()?.state().name()));
        methods.add_method("compression", |_, this, ()| {
            Ok(this.client()?.compression())
        });
        // `handle:raw_methods(send_declined)`: C functions for `ws:receive()` and
        // `ws:send(message, opcode)` (see raw.rs); a send they do not serve goes to
        // `send_declined` with the same arguments.
        methods.add_function(
            "raw_methods",
            |lua, (handle, send_declined): (AnyUserData, Function)| {
                let client = Rc::clone(&handle.borrow::<SyncHandle>()?.client);
                raw::methods(lua, client, handle, send_declined)
            },
        );
    }
}
