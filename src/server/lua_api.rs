//! The server as Lua sees it: `websocket_native.listen`, and the methods of the listener
//! and of a pending request (the parent module does the accepting and the handshakes).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use futures_util::stream::FuturesUnordered;
use mlua::{IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataMethods, Value};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

use super::Event;
use super::{bind, HandshakeSettings, Listener, PendingRequest, ProtocolChoice, Shared};
use crate::binding::options::{
    argument_errors_as_values, bad_argument, expected, message_to_send, ServerOptions, BINARY, TEXT,
};
use crate::binding::request_table::request_table;
use crate::connection::Connection;
use crate::copas::nonblocking::{EndNotice, NonBlockingConnection};
use crate::net::http_head;
use crate::runtime::core::{Core, WaitAlarm};
use crate::server::cluster::{Broadcast, Cluster, ClusterEvent, Group};

/// `websocket_native.listen(interface, port, protocols, has_default, config)`: a listener,
/// `nil, reason` when the address cannot be bound, or `false, message` for a bad value in
/// `config` (the server's config table).
pub fn listen(
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
    let core = Core::of(lua)?;
    let bound = {
        let _runtime = core.enter();
        bind(&interface, port, options.reuse_port, &core)
    };
    let listener = match bound {
        Ok(listener) => listener,
        Err(reason) => return (Value::Nil, reason).into_lua_multi(lua),
    };
    let readiness = core.readiness();
    let cluster = match &options.cluster {
        Some((url, channel)) => {
            match Cluster::start(url, channel, readiness.clone(), core.remote_ringer()) {
                Ok(cluster) => Some(cluster),
                Err(problem) => {
                    let problem = format!("bad argument #1 to 'listen' (cluster: {problem})");
                    return (false, problem).into_lua_multi(lua);
                }
            }
        }
        None => None,
    };
    let server = Listener {
        cluster,
        shared: Rc::new(Shared {
            stages: RefCell::new(FuturesUnordered::new()),
            new_stages: RefCell::new(Vec::new()),
            ended: RefCell::new(Vec::new()),
            groups: RefCell::new(HashMap::new()),
            group_of: RefCell::new(HashMap::new()),
            readiness,
            next_request_id: Cell::new(1),
            closed: Cell::new(false),
        }),
        core,
        listener: Some(listener),
        events: VecDeque::new(),
        wait_alarm: WaitAlarm::default(),
        handshake: Rc::new(HandshakeSettings {
            choice: ProtocolChoice {
                configured: protocols,
                has_default,
            },
            settings: options.settings,
            tls: options.tls.map(tokio_rustls::TlsAcceptor::from),
            handshake_timeout: options.handshake_timeout,
        }),
    };
    lua.create_userdata(server)?.into_lua_multi(lua)
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
            let info = this
                .slot
                .borrow()
                .as_ref()
                .map(|arrived| Rc::clone(&arrived.info));
            info.map(|info| request_table(lua, &info)).transpose()
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

/// Sends a broadcast to this process's members without waiting and, with a cluster, to the
/// other processes. Returns the ids of the members that were busy.
fn broadcast(
    listener: &Listener,
    message: Value,
    opcode: Value,
    group: Value,
) -> mlua::Result<Vec<u64>> {
    let message = message_to_send(message, opcode)?;
    let group = group_from_lua(group)?;
    if let Some(cluster) = &listener.cluster {
        let published = match &message {
            Message::Text(text) => Some((true, text.as_bytes().to_vec())),
            Message::Binary(bytes) => Some((false, bytes.to_vec())),
            _ => None,
        };
        if let Some((is_text, payload)) = published {
            cluster.publish(&Broadcast {
                group: group.clone(),
                is_text,
                payload,
            });
        }
    }
    let _runtime = listener.core.enter();
    Ok(listener.shared.broadcast(&listener.core, &group, &message))
}

impl UserData for Listener {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `'request', pending` | `'open', connection, protocol, request_id` |
        // `'error', message, [request_id]` | `'ended', connection_id` | nothing.
        methods.add_method_mut("next", |lua, this, ()| {
            let ended = this.shared.ended.borrow_mut().pop();
            if let Some(id) = ended {
                return ("ended", id).into_lua_multi(lua);
            }
            match this.cluster.as_ref().and_then(Cluster::next_event) {
                Some(ClusterEvent::Outage(message)) => {
                    return ("error", message).into_lua_multi(lua);
                }
                Some(ClusterEvent::Broadcast(broadcast)) => {
                    let group = match broadcast.group {
                        Group::All => Value::Nil,
                        Group::Default => Value::Boolean(false),
                        Group::Protocol(name) => Value::String(lua.create_string(name)?),
                    };
                    let opcode = if broadcast.is_text { TEXT } else { BINARY };
                    let payload = lua.create_string(&broadcast.payload)?;
                    return ("cluster", payload, opcode, group).into_lua_multi(lua);
                }
                None => {}
            }
            match this.next_event() {
                None => ().into_lua_multi(lua),
                Some(Event::Failed(message, id)) => ("error", message, id).into_lua_multi(lua),
                Some(Event::Request(pending)) => ("request", pending).into_lua_multi(lua),
                Some(Event::Opened(stream, protocol, id, info)) => {
                    let settings = this.handshake.settings.clone();
                    let connection = {
                        let _runtime = this.core.enter();
                        Connection::open(*stream, Role::Server, settings.keepalive)
                    };
                    let notice: Rc<dyn EndNotice> = this.shared.clone();
                    let handle =
                        NonBlockingConnection::new(Rc::clone(&this.core), connection, settings)
                            .serve(notice, info);
                    this.shared
                        .join(handle.id(), protocol.clone(), handle.member());
                    ("open", lua.create_userdata(handle)?, protocol, id).into_lua_multi(lua)
                }
            }
        });
        methods.add_method("ready", |_, this, ()| {
            Ok(!this.events.is_empty()
                || this.shared.readiness.is_raised()
                || !this.shared.ended.borrow().is_empty()
                || this.cluster.as_ref().is_some_and(Cluster::has_events))
        });
        // A broadcast: to this process's members of `group` (a protocol name, false for the
        // default handler's group, nil for every group) without waiting, and with a cluster
        // to the other processes too. Returns a list of the ids of members that were busy
        // (Lua sends to them with a send that waits), or `false, message` for a bad
        // argument, which Lua raises.
        methods.add_method(
            "broadcast",
            |lua, this, (message, opcode, group): (Value, Value, Value)| {
                let busy = broadcast(this, message, opcode, group).and_then(|busy| {
                    match busy.is_empty() {
                        true => ().into_lua_multi(lua),
                        false => lua.create_sequence_from(busy)?.into_lua_multi(lua),
                    }
                });
                argument_errors_as_values(lua, busy)
            },
        );
        // Another process's broadcast, to this process's members only.
        methods.add_method(
            "deliver",
            |lua, this, (message, opcode, group): (Value, Value, Value)| {
                let message = message_to_send(message, opcode)?;
                let group = group_from_lua(group)?;
                let _runtime = this.core.enter();
                let busy = this.shared.broadcast(&this.core, &group, &message);
                match busy.is_empty() {
                    true => ().into_lua_multi(lua),
                    false => lua.create_sequence_from(busy)?.into_lua_multi(lua),
                }
            },
        );
        // The id `websocket_native.take_raised` reports this listener by.
        methods.add_method("id", |_, this, ()| Ok(this.shared.readiness.id()));
        methods.add_method_mut("close", |_, this, ()| {
            this.close();
            Ok(())
        });
        // The deadline of a Lua wait on the listener, as connections have.
        methods.add_method_mut("wake_at", |_, this, seconds: Option<f64>| {
            this.wait_alarm
                .set(&this.core, seconds, &this.shared.readiness);
            Ok(())
        });
    }
}
