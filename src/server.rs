//! The listening side of the copas server: accepts connections, runs their TLS handshakes,
//! reads their requests and upgrades them, and hands Lua one event at a time. Like the rest of
//! the copas flavour it never waits: Lua asks for the next event when `ready()` is up.
//!
//! A connection goes through two stages, so that Lua can look at the request (and yield in
//! `on_request`) before the upgrade:
//! 1. accept, TLS, read the request head: the event `'request', pending`;
//! 2. Lua answers with `pending:accept()` (tungstenite upgrades it: `'open', …`) or
//!    `pending:respond(status, headers, body)` (a plain HTTP response, then the socket closes).
//!
//! `handshake_timeout` bounds both stages together: a request that Lua leaves unanswered is
//! dropped at the deadline.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use mlua::{IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataMethods, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error, Message};

use crate::batched_read::BatchedRead;
use crate::cluster::{Broadcast, Cluster, ClusterEvent, Group};
use crate::connect::Stream;
use crate::connection::Connection;
use crate::core::{Core, DeadlineId, WaitAlarm};
use crate::data_frame::encode_server_frame;
use crate::http_head::{self, HeadError, RequestHead};
use crate::nonblocking::{EndNotice, Member, NonBlockingConnection, Offered};
use crate::options::{
    argument_errors_as_values, bad_argument, expected, message_to_send, ConnectionSettings,
    ServerOptions, BINARY, TEXT,
};
use crate::ready::Readiness;
use crate::request::RequestInfo;
use crate::socket_error::describe_io;
use crate::transport::{Inner, Transport};
use crate::ws_error;

/// Which subprotocol a connection gets: the first offered one that is configured, else the
/// default handler's (no protocol), else the connection is refused.
pub struct ProtocolChoice {
    pub configured: Vec<String>,
    pub has_default: bool,
}

impl ProtocolChoice {
    /// `Ok(Some(name))`, `Ok(None)` for the default handler, `Err(())` to refuse.
    fn choose(&self, offered: &[String]) -> Result<Option<String>, ()> {
        let matched = offered
            .iter()
            .find(|name| self.configured.iter().any(|known| known == *name));
        match matched {
            Some(name) => Ok(Some(name.clone())),
            None if self.has_default => Ok(None),
            None => Err(()),
        }
    }
}

/// A request whose head was read: the stream, every byte read from it, and the head.
struct Arrived {
    inner: Inner,
    bytes: Vec<u8>,
    head: RequestHead,
    info: Rc<RequestInfo>,
}

/// Stage 1's result, until Lua answers it (or the deadline drops it).
type Slot = Rc<RefCell<Option<Arrived>>>;

enum Event {
    Request(PendingRequest),
    Opened(Box<Stream>, Option<String>, u64, Rc<RequestInfo>),
    /// An error for `on_error`, with the request's id when Lua has seen the request.
    Failed(String, Option<u64>),
}

/// A handshake stage's outcome, and the deadline alarm to cancel once the handshake is over.
type StageOutcome = (Option<Event>, Option<DeadlineId>);

/// What the listener and its pending requests and connections share.
struct Shared {
    stages: RefCell<FuturesUnordered<LocalBoxFuture<'static, StageOutcome>>>,
    /// Stages added while `stages` is being polled (a stage may add the next one).
    new_stages: RefCell<Vec<LocalBoxFuture<'static, StageOutcome>>>,
    /// Ids of server connections that ended, for Lua to drop from their groups.
    ended: RefCell<Vec<u64>>,
    /// The broadcast groups: protocol (None: the default handler's) -> connection id ->
    /// member, and each connection's group.
    groups: RefCell<HashMap<Option<String>, HashMap<u64, Member>>>,
    group_of: RefCell<HashMap<u64, Option<String>>>,
    readiness: Readiness,
    next_request_id: Cell<u64>,
    /// Set by server:close(): handshakes still answered by Lua go no further.
    closed: Cell<bool>,
}

impl Shared {
    fn add_stage(&self, stage: LocalBoxFuture<'static, StageOutcome>) {
        if self.closed.get() {
            return;
        }
        self.new_stages.borrow_mut().push(stage);
        // The new stage is polled on the next look.
        self.readiness.raise();
    }
}

impl EndNotice for Shared {
    fn ended(&self, id: u64) {
        if let Some(group) = self.group_of.borrow_mut().remove(&id) {
            if let Some(members) = self.groups.borrow_mut().get_mut(&group) {
                members.remove(&id);
            }
        }
        self.ended.borrow_mut().push(id);
        self.readiness.raise();
    }
}

impl Shared {
    fn join(&self, id: u64, group: Option<String>, member: Member) {
        self.group_of.borrow_mut().insert(id, group.clone());
        self.groups
            .borrow_mut()
            .entry(group)
            .or_default()
            .insert(id, member);
    }

    /// Offers `message` to every member of `group` (every group for `Group::All`); the ids
    /// of the members that were busy, for Lua to send to with a send that waits.
    fn broadcast(&self, core: &Core, group: &Group, message: &Message) -> Vec<u64> {
        // Listed first: a member whose socket fails ends, and leaves its group, meanwhile.
        let members: Vec<(u64, Member)> = {
            let groups = self.groups.borrow();
            let chosen: Vec<&HashMap<u64, Member>> = match group {
                Group::All => groups.values().collect(),
                Group::Default => groups.get(&None).into_iter().collect(),
                Group::Protocol(name) => groups.get(&Some(name.clone())).into_iter().collect(),
            };
            chosen
                .into_iter()
                .flat_map(|members| members.iter().map(|(id, member)| (*id, member.clone())))
                .collect()
        };
        let frame = encode_server_frame(message);
        let mut busy = Vec::new();
        for (id, member) in members {
            if member.offer(core, message, frame.as_deref()) == Offered::Busy {
                busy.push(id);
            }
        }
        busy
    }
}

/// Everything a connection's handshake needs from the server's settings.
struct HandshakeSettings {
    choice: ProtocolChoice,
    settings: ConnectionSettings,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handshake_timeout: Duration,
}

pub struct Listener {
    core: Rc<Core>,
    listener: Option<TcpListener>,
    shared: Rc<Shared>,
    events: VecDeque<Event>,
    handshake: Rc<HandshakeSettings>,
    wait_alarm: WaitAlarm,
    cluster: Option<Cluster>,
}

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
        crate::memory_budget::set_limit(budget);
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

/// How many connections the kernel queues before they are accepted: enough for a burst of
/// clients while the Lua thread is busy (std's default of 128 drops the rest's SYNs).
const ACCEPT_BACKLOG: u32 = 1024;

/// Binds `interface` ('*' for every address, IPv6 and IPv4) on `port`.
/// A listening socket that `core`'s doorbell watches.
fn bind(interface: &str, port: u16, reuse_port: bool, core: &Core) -> Result<TcpListener, String> {
    let addresses: Vec<SocketAddr> = if interface == "*" {
        // [::] takes IPv4 too on Linux; a host without IPv6 falls back to 0.0.0.0.
        vec![
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        ]
    } else {
        crate::resolve::resolve(interface, port)?
    };
    let mut last_error = String::from("no address to listen on");
    for address in addresses {
        match listen_on(address, reuse_port, core) {
            Ok(listener) => return Ok(listener),
            Err(err) => last_error = describe_io(&err),
        }
    }
    Err(last_error)
}

fn listen_on(address: SocketAddr, reuse_port: bool, core: &Core) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // The port is free again as soon as the server closes, despite connections in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(address)?;
    // Before tokio registers it in listen (see Core::watch).
    core.watch(socket.as_raw_fd())?;
    socket.listen(ACCEPT_BACKLOG)
}

impl Listener {
    /// The next event, or None when nothing happened yet.
    fn next_event(&mut self) -> Option<Event> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        if !self.shared.readiness.is_raised() {
            return None;
        }
        let core = Rc::clone(&self.core);
        let _runtime = core.enter();
        let readiness = self.shared.readiness.clone();
        let mut cx = readiness.poll_context();
        while let Some(listener) = &self.listener {
            let Poll::Ready(accepted) = listener.poll_accept(&mut cx) else {
                break;
            };
            match accepted {
                Ok((tcp, peer)) => self.start_handshake(tcp, peer),
                Err(err) => {
                    // Out of descriptors and the like: report it, try again on the next event.
                    let reason = format!("accept failed: {}", describe_io(&err));
                    self.events.push_back(Event::Failed(reason, None));
                    break;
                }
            }
        }
        loop {
            let added: Vec<_> = self.shared.new_stages.borrow_mut().drain(..).collect();
            let mut stages = self.shared.stages.borrow_mut();
            stages.extend(added);
            let next = stages.poll_next_unpin(&mut cx);
            drop(stages);
            let Poll::Ready(Some((event, alarm))) = next else {
                if self.shared.new_stages.borrow().is_empty() {
                    break;
                }
                continue;
            };
            if let Some(alarm) = alarm {
                self.core.cancel_deadline(alarm);
            }
            self.events.extend(event);
        }
        self.events.pop_front()
    }

    fn start_handshake(&mut self, tcp: TcpStream, peer: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let Ok(tcp) = self.core.watch_registered(tcp) else {
            return; // the peer is dropped, as if it had hung up at once
        };
        let deadline = Instant::now() + self.handshake.handshake_timeout;
        // The doorbell must ring at the deadline for the timeout to be noticed.
        let alarm = self.core.raise_at(deadline, &self.shared.readiness);
        let handshake = Rc::clone(&self.handshake);
        let shared = Rc::clone(&self.shared);
        let stage = async move {
            let read = read_request(tcp, handshake.tls.clone(), peer);
            let arrived = match tokio::time::timeout_at(deadline.into(), read).await {
                Ok(Ok(arrived)) => arrived,
                // Browsers open spare connections and close them unused: nothing to report.
                Ok(Err(None)) => return (None, Some(alarm)),
                Ok(Err(Some(message))) => {
                    return (Some(Event::Failed(message, None)), Some(alarm));
                }
                Err(_) => return (Some(timed_out(None)), Some(alarm)),
            };
            let pending = PendingRequest::new(shared, handshake, arrived, deadline, alarm);
            (Some(Event::Request(pending)), None)
        };
        self.shared.add_stage(stage.boxed_local());
    }

    fn close(&mut self) {
        self.listener = None;
        // Ends the Redis thread.
        self.cluster = None;
        // Handshakes under way are dropped; their deadlines then only ring once, for nothing.
        *self.shared.stages.borrow_mut() = FuturesUnordered::new();
        self.shared.new_stages.borrow_mut().clear();
        self.shared.closed.set(true);
    }
}

fn timed_out(id: Option<u64>) -> Event {
    Event::Failed("handshake timed out".to_string(), id)
}

/// Stage 1: the TLS handshake (if any) and the request head. Fails with what to tell
/// `on_error`, or None for a connection closed before it sent a byte.
async fn read_request(
    tcp: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    peer: SocketAddr,
) -> Result<Arrived, Option<String>> {
    let secure = tls.is_some();
    let tcp = BatchedRead::new(tcp);
    let mut inner = match tls {
        Some(acceptor) => match acceptor.accept(tcp).await {
            Ok(tls) => Inner::ServerTls(Box::new(tls)),
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Err(None),
            Err(err) => return Err(Some(ws_error::describe_io_or_tls(&err))),
        },
        None => Inner::Plain(tcp),
    };
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = http_head::end_of_head(&bytes) {
            break end;
        }
        if bytes.len() > http_head::MAX_HEAD {
            answer_bad_request(&mut inner).await;
            return Err(Some("handshake request too large".into()));
        }
        match inner.read(&mut chunk).await {
            Ok(0) if bytes.is_empty() => return Err(None),
            Ok(0) => {
                return Err(Some(
                    "incomplete handshake request: the client closed".into(),
                ));
            }
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(err) => {
                return Err(Some(format!("handshake failed: {}", describe_io(&err))));
            }
        }
    };
    let head = http_head::parse_request(&bytes[..end]).and_then(|head| {
        // A client must wait for the answer before it sends more (RFC 6455 4.1).
        let problem = head
            .body_problem()
            .or((bytes.len() > end).then_some("data after the request head"));
        match problem {
            Some(problem) => Err(HeadError::Malformed(problem.into())),
            None => Ok(head),
        }
    });
    match head {
        Ok(head) => {
            let info = Rc::new(RequestInfo::new(&bytes[..end], peer, secure));
            Ok(Arrived {
                inner,
                bytes,
                head,
                info,
            })
        }
        Err(problem) => {
            answer_bad_request(&mut inner).await;
            Err(Some(match problem {
                HeadError::TooLarge => "handshake request too large".into(),
                HeadError::Malformed(why) => format!("bad handshake request: {why}"),
            }))
        }
    }
}

/// Stage 2 for an upgrade: tungstenite reads the request again (from the bytes kept) and
/// answers 101; the request's protocol is chosen here.
async fn upgrade(arrived: Arrived, handshake: Rc<HandshakeSettings>, id: u64) -> Event {
    let Arrived {
        mut inner,
        bytes,
        head,
        info,
    } = arrived;
    if let Some(problem) = head.upgrade_problem() {
        answer_bad_request(&mut inner).await;
        return Event::Failed(format!("bad handshake request: {problem}"), Some(id));
    }
    let Ok(protocol) = handshake.choice.choose(&head.protocols) else {
        answer_bad_request(&mut inner).await;
        return Event::Failed("bad protocol".into(), Some(id));
    };
    let chosen = protocol.clone();
    // The callback's error type is tungstenite's ErrorResponse, large or not.
    #[allow(clippy::result_large_err)]
    let callback = move |_: &Request, mut response: Response| {
        if let Some(value) = chosen
            .as_deref()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            response
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", value);
        }
        Ok(response)
    };
    let transport = Transport::with_replay(inner, bytes);
    let config: WebSocketConfig = handshake.settings.config;
    match tokio_tungstenite::accept_hdr_async_with_config(transport, callback, Some(config)).await {
        Ok(ws) => Event::Opened(Box::new(ws), protocol, id, info),
        Err(Error::Protocol(ProtocolError::HandshakeIncomplete)) => Event::Failed(
            "incomplete handshake request: the client closed".into(),
            Some(id),
        ),
        Err(Error::Protocol(problem)) => {
            Event::Failed(format!("bad handshake request: {problem}"), Some(id))
        }
        Err(Error::Io(err)) => {
            Event::Failed(format!("handshake failed: {}", describe_io(&err)), Some(id))
        }
        Err(other) => Event::Failed(format!("handshake failed: {other}"), Some(id)),
    }
}

/// Writes `bytes` and ends the connection; a peer that went away only loses the answer.
async fn answer_and_close<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) {
    if stream.write_all(bytes).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

async fn answer_bad_request<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    answer_and_close(stream, &http_head::response(400, &[], b"")).await;
}

/// A request Lua has not answered yet: `pending:accept()` or `pending:respond(…)`.
pub struct PendingRequest {
    id: u64,
    slot: Slot,
    shared: Rc<Shared>,
    handshake: Rc<HandshakeSettings>,
    deadline: Instant,
    alarm: DeadlineId,
    /// Dropped once Lua answered (or forgot the request): the watchdog then stops.
    _answered: tokio::sync::oneshot::Sender<()>,
}

impl PendingRequest {
    /// Holds `arrived` for Lua's answer, and drops it at `deadline` if none came.
    fn new(
        shared: Rc<Shared>,
        handshake: Rc<HandshakeSettings>,
        arrived: Arrived,
        deadline: Instant,
        alarm: DeadlineId,
    ) -> Self {
        let id = shared.next_request_id.get();
        shared.next_request_id.set(id + 1);
        let slot: Slot = Rc::new(RefCell::new(Some(arrived)));
        let watched = Rc::clone(&slot);
        let (answered, answer_seen) = tokio::sync::oneshot::channel();
        let watchdog = async move {
            let expiry = tokio::time::sleep_until(deadline.into());
            let expired = tokio::select! {
                _ = expiry => true,
                _ = answer_seen => false,
            };
            // Taken by Lua's answer: that answer's stage reports the outcome.
            let unanswered = watched.borrow_mut().take().is_some();
            let event = match (unanswered, expired) {
                (false, _) => None,
                (true, true) => Some(timed_out(Some(id))),
                (true, false) => Some(Event::Failed(
                    "request dropped without an answer".into(),
                    Some(id),
                )),
            };
            let alarm = unanswered.then_some(alarm);
            (event, alarm)
        };
        shared.add_stage(watchdog.boxed_local());
        PendingRequest {
            id,
            slot,
            shared,
            handshake,
            deadline,
            alarm,
            _answered: answered,
        }
    }

    /// Takes the request for an answer; None once answered or timed out.
    fn take(&self) -> Option<Arrived> {
        self.slot.borrow_mut().take()
    }

    /// Goes on with the upgrade; false when the request was answered or timed out already.
    fn accept(&self) -> bool {
        let Some(arrived) = self.take() else {
            return false;
        };
        let (handshake, id, deadline) = (Rc::clone(&self.handshake), self.id, self.deadline);
        let alarm = self.alarm;
        let stage = async move {
            let upgrade = upgrade(arrived, handshake, id);
            let event = match tokio::time::timeout_at(deadline.into(), upgrade).await {
                Ok(event) => event,
                Err(_) => timed_out(Some(id)),
            };
            (Some(event), Some(alarm))
        };
        self.shared.add_stage(stage.boxed_local());
        true
    }

    /// Sends `response` (a whole HTTP response) and closes; false when the request was
    /// answered or timed out already.
    fn respond(&self, response: Vec<u8>) -> bool {
        let Some(mut arrived) = self.take() else {
            return false;
        };
        let (deadline, alarm) = (self.deadline, self.alarm);
        let stage = async move {
            let answer = answer_and_close(&mut arrived.inner, &response);
            let _ = tokio::time::timeout_at(deadline.into(), answer).await;
            (None, Some(alarm))
        };
        self.shared.add_stage(stage.boxed_local());
        true
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
            let info = this
                .slot
                .borrow()
                .as_ref()
                .map(|arrived| Rc::clone(&arrived.info));
            info.map(|info| info.to_lua(lua)).transpose()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_offered_configured_protocol_wins() {
        let choice = ProtocolChoice {
            configured: vec!["echo".into(), "chat".into()],
            has_default: false,
        };
        let offered = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            choice.choose(&offered(&["x", "chat", "echo"])),
            Ok(Some("chat".into()))
        );
        assert_eq!(choice.choose(&offered(&["x"])), Err(()));
        assert_eq!(choice.choose(&[]), Err(()));
    }

    proptest::proptest! {
        #[test]
        fn the_choice_is_configured_and_offered_or_the_default(
            configured in proptest::collection::vec("[a-c]{1,2}", 0..4),
            offered in proptest::collection::vec("[a-d]{1,2}", 0..4),
            has_default in proptest::bool::ANY,
        ) {
            let choice = ProtocolChoice { configured: configured.clone(), has_default };
            match choice.choose(&offered) {
                Ok(Some(name)) => {
                    proptest::prop_assert!(configured.contains(&name));
                    proptest::prop_assert!(offered.contains(&name));
                }
                Ok(None) => proptest::prop_assert!(has_default),
                Err(()) => proptest::prop_assert!(!has_default),
            }
        }
    }

    #[test]
    fn the_default_handler_takes_the_rest() {
        let choice = ProtocolChoice {
            configured: vec!["echo".into()],
            has_default: true,
        };
        assert_eq!(choice.choose(&["other".to_string()]), Ok(None));
        assert_eq!(choice.choose(&[]), Ok(None));
    }
}
