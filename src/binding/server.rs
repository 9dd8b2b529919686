//! The server as Lua holds it (server/): `websocket_native.listen`, and the methods of the
//! listener and of a pending request.

use mlua::{IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataMethods, Value};

use crate::binding::contract::opcode_of;
use crate::binding::core_functions::core_of;
use crate::binding::options::{
    argument_errors_as_values, bad_argument, expected, message_to_send, ServerOptions,
};
use crate::binding::request_table::request_table;
use crate::net::http_head;
use crate::server::cluster::Group;
use crate::server::listener::ListenError;
use crate::server::{ListenConfig, Listener, PendingRequest, ProtocolChoice, ServerEvent};

/// `websocket_native.listen(interface, port, protocols, has_default, config)`: a listener,
/// `nil, reason` when the address cannot be bound, or `false, message` for a bad value in
/// `config` (the server's config table).
pub(crate) fn listen(
    lua: &Lua,
    (interface, port, protocols, has_default, config): (String, u16, Vec<String>, bool, Table),
) -> mlua::Result<MultiValue> {
    let options = match ServerOptions::from_lua(&config) {
        Ok(options) => options,
        Err(err) => return argument_errors_as_values(lua, Err(err)),
    };
    if let Some(budget) = options.incoming_budget {
        crate::net::memory_budget::set_limit(budget);
    }
    let config = ListenConfig {
        interface,
        port,
        unix: options.unix,
        reuse_port: options.reuse_port,
        choice: ProtocolChoice {
            configured: protocols,
            has_default,
        },
        settings: options.settings,
        tls: options.tls,
        handshake_timeout: options.handshake_timeout,
        cluster: options.cluster,
        origins: options.origins,
    };
    match Listener::open(core_of(lua)?, config) {
        Ok(listener) => lua.create_userdata(listener)?.into_lua_multi(lua),
        Err(ListenError::Unbound(reason)) => (Value::Nil, reason).into_lua_multi(lua),
        Err(ListenError::Cluster(problem)) => {
            let problem = format!("bad argument #1 to 'listen' (cluster: {problem})");
            (false, problem).into_lua_multi(lua)
        }
    }
}

/// `pending:respond(status, [headers], [body])`'s arguments as one HTTP response.
fn response_from_lua(status: Value, headers: Value, body: Value) -> Result<Vec<u8>, String> {
    let status = match status {
        Value::Integer(n) if (100..=599).contains(&n) => n as u16,
        Value::Number(n) if n.fract() == 0.0 && (100.0..=599.0).contains(&n) => n as u16,
        other => {
            return Err(format!(
                "status: a number from 100 to 599 expected, got {other:?}"
            ))
        }
    };
    let mut checked = Vec::new();
    match headers {
        Value::Nil => {}
        Value::Table(table) => {
            for pair in table.pairs::<Value, Value>() {
                let (name, value) = pair.map_err(|err| err.to_string())?;
                let name = lua_text(&name).ok_or("headers: string names expected")?;
                let value = lua_text(&value).ok_or("headers: string or number values expected")?;
                checked.push(http_head::checked_header(&name, &value)?);
            }
        }
        other => {
            return Err(format!(
                "headers: table expected, got {}",
                other.type_name()
            ))
        }
    }
    let body = match body {
        Value::Nil => Vec::new(),
        Value::String(text) => text.as_bytes().to_vec(),
        other => return Err(format!("body: string expected, got {}", other.type_name())),
    };
    Ok(http_head::response(status, &checked, &body))
}

fn lua_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(String::from_utf8_lossy(&text.as_bytes()).into_owned()),
        Value::Integer(n) => Some(n.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl UserData for PendingRequest {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("id", |_, this, ()| Ok(this.id));
        // The request as a Lua table (a new one each call), or nil once answered.
        methods.add_method("request", |lua, this, ()| {
            this.request()
                .map(|info| request_table(lua, &info))
                .transpose()
        });
        methods.add_method("accept", |_, this, ()| Ok(this.accept()));
        // `true`, `false` when answered or timed out already, or `nil, problem` for a bad
        // status, header or body (nothing is sent then).
        methods.add_method(
            "respond",
            |lua, this, (status, headers, body): (Value, Value, Value)| match response_from_lua(
                status, headers, body,
            ) {
                Ok(response) => this.respond(response).into_lua_multi(lua),
                Err(problem) => (Value::Nil, problem).into_lua_multi(lua),
            },
        );
    }
}

/// broadcast's group argument: a protocol name, false (the default handler's), nil (all).
fn group_from_lua(group: Value) -> mlua::Result<Group> {
    match group {
        Value::Nil => Ok(Group::All),
        Value::Boolean(false) => Ok(Group::Default),
        Value::String(name) => Ok(Group::Protocol(name.to_str()?.to_string())),
        other => {
            let problem = expected("protocol name or false", &other);
            Err(bad_argument(3, "broadcast", problem))
        }
    }
}

/// A topic: a non-empty string of at most 1024 bytes.
fn topic_from_lua(topic: Value, function: &str) -> mlua::Result<String> {
    match topic {
        Value::String(name) if !name.as_bytes().is_empty() && name.as_bytes().len() <= 1024 => {
            Ok(String::from_utf8_lossy(&name.as_bytes()).into_owned())
        }
        Value::String(_) => Err(bad_argument(
            1,
            function,
            "topic: 1 to 1024 bytes expected".to_string(),
        )),
        other => Err(bad_argument(
            1,
            function,
            expected("topic (string)", &other),
        )),
    }
}

/// The ids of the members a broadcast found busy: nothing, or a list.
fn busy_values(lua: &Lua, busy: Vec<u64>) -> mlua::Result<MultiValue> {
    match busy.is_empty() {
        true => ().into_lua_multi(lua),
        false => lua.create_sequence_from(busy)?.into_lua_multi(lua),
    }
}

impl UserData for Listener {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `'request', pending` | `'open', connection, protocol, request_id` |
        // `'error', message, [request_id]` | `'ended', connection_id` |
        // `'cluster', message, opcode, group` | nothing.
        methods.add_method_mut("next", |lua, this, ()| match this.next() {
            None => ().into_lua_multi(lua),
            Some(ServerEvent::Ended(id)) => ("ended", id).into_lua_multi(lua),
            Some(ServerEvent::ClusterOutage(message)) => ("error", message).into_lua_multi(lua),
            Some(ServerEvent::ClusterBroadcast(broadcast, busy)) => {
                let opcode = opcode_of(broadcast.is_text);
                let payload = lua.create_string(&broadcast.payload)?;
                let busy = busy_values(lua, busy)?;
                let mut values = ("cluster", payload, opcode).into_lua_multi(lua)?;
                values.extend(busy);
                Ok(values)
            }
            Some(ServerEvent::Failed(message, id)) => ("error", message, id).into_lua_multi(lua),
            Some(ServerEvent::Request(pending)) => ("request", pending).into_lua_multi(lua),
            Some(ServerEvent::Opened(connection, protocol, id)) => {
                ("open", lua.create_userdata(connection)?, protocol, id).into_lua_multi(lua)
            }
        });
        methods.add_method("ready", |_, this, ()| Ok(this.is_ready()));
        // A broadcast: to this process's members of `group` (a protocol name, false for the
        // default handler's group, nil for every group) without waiting, and with a cluster
        // to the other processes too. Returns a list of the ids of members that were busy
        // (Lua sends to them with a send that waits), or `false, message` for a bad
        // argument, which Lua raises.
        methods.add_method(
            "broadcast",
            |lua, this, (message, opcode, group): (Value, Value, Value)| {
                let busy = message_to_send(message, opcode).and_then(|message| {
                    let group = group_from_lua(group)?;
                    busy_values(lua, this.broadcast(group, &message, None))
                });
                argument_errors_as_values(lua, busy)
            },
        );
        // `publish(topic, message, opcode, [except_id])`: to the subscribers of `topic` (but
        // connection `except_id`) in this process and, with a cluster, in the others.
        // Returns the busy members' ids, or `false, message` for a bad argument.
        methods.add_method(
            "publish",
            |lua, this, (topic, message, opcode, except): (Value, Value, Value, Option<u64>)| {
                let busy = topic_from_lua(topic, "publish").and_then(|topic| {
                    let message = message_to_send(message, opcode)?;
                    busy_values(lua, this.broadcast(Group::Topic(topic), &message, except))
                });
                argument_errors_as_values(lua, busy)
            },
        );
        // `subscribe(id, topic)`: true, or false when the connection is gone; `false,
        // message` for a bad topic.
        methods.add_method("subscribe", |lua, this, (id, topic): (u64, Value)| {
            let subscribed = topic_from_lua(topic, "subscribe")
                .and_then(|topic| this.subscribe(id, &topic).into_lua_multi(lua));
            argument_errors_as_values(lua, subscribed)
        });
        methods.add_method("unsubscribe", |lua, this, (id, topic): (u64, Value)| {
            let unsubscribed = topic_from_lua(topic, "unsubscribe").and_then(|topic| {
                this.unsubscribe(id, &topic);
                true.into_lua_multi(lua)
            });
            argument_errors_as_values(lua, unsubscribed)
        });
        // The id `websocket_native.take_raised` reports this listener by.
        methods.add_method("id", |_, this, ()| Ok(this.id()));
        methods.add_method_mut("close", |_, this, ()| {
            this.close();
            Ok(())
        });
        // The deadline of a Lua wait on the listener, as connections have.
        methods.add_method_mut("wake_at", |_, this, seconds: Option<f64>| {
            this.wake_at(seconds);
            Ok(())
        });
    }
}
