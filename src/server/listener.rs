//! A server's listening socket and what it hands Lua, one event at a time: a request to
//! answer, a connection opened, a handshake failed, a connection ended, a cluster's
//! broadcast. Like the rest of the copas flavour it never waits: Lua asks for the next
//! event when `is_ready()` is up.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use super::bind::Bound;
use super::cluster::{Broadcast, Cluster, ClusterEvent, Group};
use super::handshake::{read_request, refuse, timed_out};
use super::origins::Origins;
use super::state::ServerState;
use super::{Event, HandshakeSettings, PendingRequest, ProtocolChoice};
use crate::connection::request::Peer;
use crate::connection::settings::ConnectionSettings;
use crate::connection::Connection;
use crate::copas::connection::CopasConnection;
use crate::copas::driven::EndNotice;
use crate::net::socket::Socket;
use crate::net::socket_error::describe_io;
use crate::runtime::core::{Core, WaitAlarm};

/// How a server listens: the address, the handshake's settings, the cluster.
pub(crate) struct ListenConfig {
    pub(crate) interface: String,
    pub(crate) port: u16,
    /// A unix socket path to listen on instead of `interface` and `port`.
    pub(crate) unix: Option<PathBuf>,
    pub(crate) reuse_port: bool,
    pub(crate) choice: ProtocolChoice,
    pub(crate) settings: ConnectionSettings,
    pub(crate) tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    pub(crate) handshake_timeout: Duration,
    /// The Redis URL and the channel.
    pub(crate) cluster: Option<(String, String)>,
    pub(crate) origins: Option<Origins>,
}

/// Why a server could not listen.
pub(crate) enum ListenError {
    /// The address cannot be bound.
    Unbound(String),
    /// The cluster's settings are wrong.
    Cluster(String),
}

/// What happened since Lua last asked.
pub(crate) enum ServerEvent {
    /// A request to answer.
    Request(PendingRequest),
    /// A connection upgraded, with its protocol (None: the default handler's) and the id
    /// of its request.
    Opened(CopasConnection, Option<String>, u64),
    /// An error for `on_error`, with the request's id when Lua has seen the request.
    Failed(String, Option<u64>),
    /// The id of a connection that ended.
    Ended(u64),
    /// Another process's broadcast, delivered to this process's members already, with the
    /// ids of the members that were busy (Lua sends it to them).
    ClusterBroadcast(Broadcast, Vec<u64>),
    /// The cluster lost its Redis connection, or found it again.
    ClusterOutage(String),
}

pub(crate) struct Listener {
    core: Rc<Core>,
    listener: Option<Bound>,
    shared: Rc<ServerState>,
    events: VecDeque<Event>,
    handshake: Rc<HandshakeSettings>,
    wait_alarm: WaitAlarm,
    cluster: Option<Cluster>,
}

impl Listener {
    /// Listens as `config` says.
    pub(crate) fn open(core: Rc<Core>, config: ListenConfig) -> Result<Listener, ListenError> {
        let bound = {
            let _runtime = core.enter();
            match &config.unix {
                Some(path) => Bound::unix(path, &core),
                None => Bound::tcp(&config.interface, config.port, config.reuse_port, &core),
            }
        };
        let listener = bound.map_err(ListenError::Unbound)?;
        let readiness = core.readiness();
        let cluster = match &config.cluster {
            Some((url, channel)) => Some(
                Cluster::start(url, channel, readiness.clone(), core.remote_ringer())
                    .map_err(ListenError::Cluster)?,
            ),
            None => None,
        };
        Ok(Listener {
            cluster,
            shared: Rc::new(ServerState {
                stages: Default::default(),
                new_stages: Default::default(),
                ended: Default::default(),
                groups: Default::default(),
                group_of: Default::default(),
                topics: Default::default(),
                topics_of: Default::default(),
                emptied_topics: Default::default(),
                readiness,
                next_request_id: std::cell::Cell::new(1),
                closed: Default::default(),
            }),
            core,
            listener: Some(listener),
            events: VecDeque::new(),
            wait_alarm: WaitAlarm::default(),
            handshake: Rc::new(HandshakeSettings {
                choice: config.choice,
                settings: config.settings,
                tls: config.tls.map(tokio_rustls::TlsAcceptor::from),
                handshake_timeout: config.handshake_timeout,
                origins: config.origins,
            }),
        })
    }

    /// The next event, or None when nothing happened yet. A connection that opened is
    /// served from now on and joins its protocol's broadcast group.
    pub(crate) fn next(&mut self) -> Option<ServerEvent> {
        // Topics whose last subscriber ended: the other processes' publishes to them need
        // not come here any more.
        let emptied = std::mem::take(&mut *self.shared.emptied_topics.borrow_mut());
        if let Some(cluster) = &self.cluster {
            for topic in &emptied {
                cluster.unsubscribe(topic);
            }
        }
        if let Some(id) = self.shared.ended.borrow_mut().pop() {
            return Some(ServerEvent::Ended(id));
        }
        // Other processes' broadcasts go out here; Lua hears of one only when some member
        // was busy (it sends to those).
        while let Some(event) = self.cluster.as_ref().and_then(Cluster::next_event) {
            match event {
                ClusterEvent::Outage(message) => return Some(ServerEvent::ClusterOutage(message)),
                ClusterEvent::Broadcast(broadcast) => {
                    let busy = self.deliver(&broadcast);
                    if !busy.is_empty() {
                        return Some(ServerEvent::ClusterBroadcast(broadcast, busy));
                    }
                }
            }
        }
        Some(match self.next_event()? {
            Event::Failed(message, id) => ServerEvent::Failed(message, id),
            Event::Request(pending) => ServerEvent::Request(pending),
            Event::Opened(stream, protocol, id, info) => {
                let settings = self.handshake.settings.clone();
                let connection = {
                    let _runtime = self.core.enter();
                    Connection::open(*stream, Role::Server, settings.keepalive)
                };
                let notice: Rc<dyn EndNotice> = self.shared.clone();
                let handle = CopasConnection::new(Rc::clone(&self.core), connection, settings)
                    .serve(notice, info);
                self.shared
                    .join(handle.id(), protocol.clone(), handle.member());
                ServerEvent::Opened(handle, protocol, id)
            }
        })
    }

    /// Whether `next` has something: Lua's wait on the listener may end.
    pub(crate) fn is_ready(&self) -> bool {
        !self.events.is_empty()
            || self.shared.readiness.is_raised()
            || !self.shared.ended.borrow().is_empty()
            || self.cluster.as_ref().is_some_and(Cluster::has_events)
    }

    /// The id the core reports the listener by.
    pub(crate) fn id(&self) -> u64 {
        self.shared.readiness.id()
    }

    /// The deadline of a Lua wait on the listener, as connections have.
    pub(crate) fn wake_at(&mut self, seconds: Option<f64>) {
        self.wait_alarm
            .set(&self.core, seconds, &self.shared.readiness);
    }

    /// Sends `message` to this process's members of `group` (but `except`) without
    /// waiting and, with a cluster, to the other processes. Returns the ids of the members
    /// that were busy (Lua sends to them with a send that waits, or queues).
    pub(crate) fn broadcast(
        &self,
        group: Group,
        message: &Message,
        except: Option<u64>,
    ) -> Vec<u64> {
        if let Some(cluster) = &self.cluster {
            let published = match message {
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
        let _runtime = self.core.enter();
        self.shared.broadcast(&self.core, &group, message, except)
    }

    /// Another process's broadcast, to this process's members only.
    fn deliver(&self, broadcast: &Broadcast) -> Vec<u64> {
        let message = if broadcast.is_text {
            match Utf8Bytes::try_from(Bytes::copy_from_slice(&broadcast.payload)) {
                Ok(text) => Message::Text(text),
                // The cluster checked it already.
                Err(_) => return Vec::new(),
            }
        } else {
            Message::Binary(Bytes::copy_from_slice(&broadcast.payload))
        };
        let _runtime = self.core.enter();
        self.shared
            .broadcast(&self.core, &broadcast.group, &message, None)
    }

    /// Subscribes connection `id` to `topic` (with a cluster, this process then hears the
    /// other processes' publishes to it); false when the connection is gone.
    pub(crate) fn subscribe(&self, id: u64, topic: &str) -> bool {
        match self.shared.subscribe(id, topic) {
            None => false,
            Some(first) => {
                if let (true, Some(cluster)) = (first, &self.cluster) {
                    cluster.subscribe(topic);
                }
                true
            }
        }
    }

    /// Unsubscribes connection `id` from `topic`.
    pub(crate) fn unsubscribe(&self, id: u64, topic: &str) {
        if let (true, Some(cluster)) = (self.shared.unsubscribe(id, topic), &self.cluster) {
            cluster.unsubscribe(topic);
        }
    }

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
                Ok((socket, peer)) => self.start_handshake(socket, peer),
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

    fn start_handshake(&mut self, socket: Socket, peer: Peer) {
        let Ok(socket) = self.core.watch_registered(socket) else {
            return; // the peer is dropped, as if it had hung up at once
        };
        let deadline = Instant::now() + self.handshake.handshake_timeout;
        // The doorbell must ring at the deadline for the timeout to be noticed.
        let alarm = self.core.raise_at(deadline, &self.shared.readiness);
        let handshake = Rc::clone(&self.handshake);
        let shared = Rc::clone(&self.shared);
        let stage = async move {
            let read = read_request(socket, handshake.tls.clone(), peer);
            let arrived = match tokio::time::timeout_at(deadline.into(), read).await {
                Ok(Ok(arrived)) => arrived,
                // Browsers open spare connections and close them unused: nothing to report.
                Ok(Err(None)) => return (None, Some(alarm)),
                Ok(Err(Some(message))) => {
                    return (Some(Event::Failed(message, None)), Some(alarm));
                }
                Err(_) => return (Some(timed_out(None)), Some(alarm)),
            };
            let admitted = match &handshake.origins {
                Some(origins) => origins.admit(arrived.head.header("origin")),
                None => Ok(()),
            };
            if let Err(problem) = admitted {
                let refusal = refuse(arrived, 403);
                let _ = tokio::time::timeout_at(deadline.into(), refusal).await;
                return (Some(Event::Failed(problem, None)), Some(alarm));
            }
            let pending = PendingRequest::new(shared, handshake, arrived, deadline, alarm);
            (Some(Event::Request(pending)), None)
        };
        self.shared.add_stage(stage.boxed_local());
    }

    pub(crate) fn close(&mut self) {
        self.listener = None;
        // Ends the Redis thread.
        self.cluster = None;
        // Handshakes under way are dropped; their deadlines then only ring once, for nothing.
        *self.shared.stages.borrow_mut() = FuturesUnordered::new();
        self.shared.new_stages.borrow_mut().clear();
        self.shared.closed.set(true);
    }
}
