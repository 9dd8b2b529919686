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
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::connection::connect::Stream;
use crate::connection::request::RequestInfo;
use crate::connection::settings::ConnectionSettings;
use crate::copas::nonblocking::{EndNotice, Member, Offered};
use crate::net::data_frame::encode_server_frame;
use crate::net::http_head::RequestHead;
use crate::net::socket_error::describe_io;
use crate::net::transport::Inner;
use crate::runtime::core::{Core, DeadlineId, WaitAlarm};
use crate::runtime::ready::Readiness;
use crate::server::cluster::{Cluster, Group};

pub(crate) mod cluster;
mod handshake;
mod lua_api;
use handshake::{answer_and_close, read_request, timed_out, upgrade};
pub use lua_api::listen;

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
        crate::net::resolve::resolve(interface, port)?
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
