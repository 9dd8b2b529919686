//! The listening side of the copas server: accepts connections and runs their opening
//! handshakes, and hands Lua one event at a time: a new connection with its protocol, or an
//! error for `on_error`. Like the rest of the copas flavour it never waits: Lua asks for the
//! next event when `ready()` is up.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use mlua::{IntoLuaMulti, Lua, MultiValue, Table, UserData, UserDataMethods, Value};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::MaybeTlsStream;

use crate::batched_read::BatchedRead;
use crate::connection::{Connection, Stream};
use crate::core::{Core, DeadlineId};
use crate::nonblocking::NonBlockingConnection;
use crate::options::{argument_errors_as_values, ServerOptions};
use crate::ready::Readiness;
use crate::socket_error::describe_io;

/// Which subprotocol a connection gets: the first offered one that is configured, else the
/// default handler's (no protocol), else the connection is refused.
pub struct ProtocolChoice {
    pub configured: Vec<String>,
    pub has_default: bool,
}

impl ProtocolChoice {
    /// `Ok(Some(name))`, `Ok(None)` for the default handler, `Err(())` to refuse.
    fn choose(&self, offered: Option<&str>) -> Result<Option<String>, ()> {
        let matched = offered.and_then(|header| {
            header
                .split(',')
                .map(str::trim)
                .find(|name| self.configured.iter().any(|known| known == name))
        });
        match matched {
            Some(name) => Ok(Some(name.to_string())),
            None if self.has_default => Ok(None),
            None => Err(()),
        }
    }
}

enum Event {
    Opened(Box<Stream>, Option<String>),
    Failed(String),
}

pub struct Listener {
    core: Rc<Core>,
    listener: Option<TcpListener>,
    handshakes: FuturesUnordered<LocalBoxFuture<'static, (Event, DeadlineId)>>,
    events: VecDeque<Event>,
    readiness: Readiness,
    choice: Rc<ProtocolChoice>,
    config: WebSocketConfig,
    handshake_timeout: Duration,
}

/// `websocket_native.listen(interface, port, protocols, has_default, config)`: a listener,
/// `nil, reason` when the address cannot be bound, or `false, message` for a bad limit in
/// `config` (the server's config table).
pub fn listen(
    lua: &Lua,
    (interface, port, protocols, has_default, config): (String, u16, Vec<String>, bool, Table),
) -> mlua::Result<MultiValue> {
    let options = match ServerOptions::from_lua(&config) {
        Ok(options) => options,
        Err(err) => return argument_errors_as_values(lua, Err(err)),
    };
    let core = Core::of(lua)?;
    let bound = {
        let _runtime = core.enter();
        bind(&interface, port)
    };
    let listener = match bound {
        Ok(listener) => listener,
        Err(reason) => return (Value::Nil, reason).into_lua_multi(lua),
    };
    core.watch(listener.as_raw_fd())
        .map_err(mlua::Error::external)?;
    let server = Listener {
        readiness: core.readiness(),
        core,
        listener: Some(listener),
        handshakes: FuturesUnordered::new(),
        events: VecDeque::new(),
        choice: Rc::new(ProtocolChoice {
            configured: protocols,
            has_default,
        }),
        config: options.config,
        handshake_timeout: options.handshake_timeout,
    };
    lua.create_userdata(server)?.into_lua_multi(lua)
}

/// How many connections the kernel queues before they are accepted: enough for a burst of
/// clients while the Lua thread is busy (std's default of 128 drops the rest's SYNs).
const ACCEPT_BACKLOG: u32 = 1024;

/// Binds `interface` ('*' for every address, IPv6 and IPv4) on `port`.
fn bind(interface: &str, port: u16) -> Result<TcpListener, String> {
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
        match listen_on(address) {
            Ok(listener) => return Ok(listener),
            Err(err) => last_error = describe_io(&err),
        }
    }
    Err(last_error)
}

fn listen_on(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // The port is free again as soon as the server closes, despite connections in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(ACCEPT_BACKLOG)
}

impl Listener {
    /// The next event, or None when nothing happened yet.
    fn next_event(&mut self) -> Option<Event> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        if !self.readiness.is_raised() {
            return None;
        }
        let core = Rc::clone(&self.core);
        let _runtime = core.enter();
        let readiness = self.readiness.clone();
        let mut cx = readiness.poll_context();
        while let Some(listener) = &self.listener {
            let Poll::Ready(accepted) = listener.poll_accept(&mut cx) else {
                break;
            };
            {
                match accepted {
                    Ok((tcp, _)) => self.start_handshake(tcp),
                    Err(err) => {
                        // Out of descriptors and the like: report it, try again on the next event.
                        let reason = format!("accept failed: {}", describe_io(&err));
                        self.events.push_back(Event::Failed(reason));
                        break;
                    }
                }
            }
        }
        while let Poll::Ready(Some((event, deadline))) = self.handshakes.poll_next_unpin(&mut cx) {
            self.core.cancel_deadline(deadline);
            self.events.push_back(event);
        }
        self.events.pop_front()
    }

    fn start_handshake(&mut self, tcp: TcpStream) {
        let _ = tcp.set_nodelay(true);
        let _ = self.core.watch(tcp.as_raw_fd());
        let deadline = Instant::now() + self.handshake_timeout;
        // The doorbell must ring at the deadline for the timeout to be noticed.
        let deadline_id = self.core.raise_at(deadline, &self.readiness);
        let handshake = handshake(tcp, Rc::clone(&self.choice), self.config);
        let bounded = async move {
            let event = match tokio::time::timeout_at(deadline.into(), handshake).await {
                Ok(event) => event,
                Err(_) => Event::Failed("handshake timed out".to_string()),
            };
            (event, deadline_id)
        };
        self.handshakes.push(bounded.boxed_local());
    }

    fn close(&mut self) {
        self.listener = None;
        // Handshakes under way are dropped; their deadlines then only ring once, for nothing.
        self.handshakes = FuturesUnordered::new();
    }
}

/// The opening handshake of one accepted connection.
// The callback's error type is tungstenite's ErrorResponse, large or not.
#[allow(clippy::result_large_err)]
async fn handshake(tcp: TcpStream, choice: Rc<ProtocolChoice>, config: WebSocketConfig) -> Event {
    // tungstenite drops the socket when the request is not a WebSocket upgrade; a second
    // descriptor of the same socket lets us answer 400 Bad Request first.
    // SAFETY: dup of a descriptor we own; the result is checked and owned at once.
    let spare = unsafe {
        let fd = libc::dup(tcp.as_raw_fd());
        (fd >= 0).then(|| OwnedFd::from_raw_fd(fd))
    };
    let outcome: Rc<RefCell<Result<Option<String>, ()>>> = Rc::new(RefCell::new(Ok(None)));
    let chosen = Rc::clone(&outcome);
    let callback = move |request: &Request, mut response: Response| {
        let offered = request
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|value| value.to_str().ok());
        let choice = choice.choose(offered);
        *chosen.borrow_mut() = choice.clone();
        match choice {
            Ok(Some(name)) => {
                if let Ok(value) = HeaderValue::from_str(&name) {
                    response
                        .headers_mut()
                        .insert("Sec-WebSocket-Protocol", value);
                }
                Ok(response)
            }
            Ok(None) => Ok(response),
            Err(()) => {
                let mut refusal = ErrorResponse::new(Some("no matching protocol".to_string()));
                *refusal.status_mut() = StatusCode::BAD_REQUEST;
                Err(refusal)
            }
        }
    };
    let stream = MaybeTlsStream::Plain(BatchedRead::new(tcp));
    match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await {
        Ok(ws) => {
            let protocol = outcome.borrow().clone().unwrap_or(None);
            Event::Opened(Box::new(ws), protocol)
        }
        Err(Error::Http(_)) if outcome.borrow().is_err() => Event::Failed("bad protocol".into()),
        Err(Error::Protocol(ProtocolError::HandshakeIncomplete)) => {
            Event::Failed("incomplete handshake request: the client closed".into())
        }
        Err(Error::Protocol(problem)) => {
            if let Some(spare) = spare {
                answer_bad_request(&spare);
            }
            Event::Failed(format!("bad handshake request: {problem}"))
        }
        // tungstenite's bound on the request: 64 KiB, 124 headers, 512 reads.
        Err(Error::AttackAttempt) => {
            if let Some(spare) = spare {
                answer_bad_request(&spare);
            }
            Event::Failed("handshake request too large or sent in too many pieces".into())
        }
        Err(Error::Io(err)) => Event::Failed(format!("handshake failed: {}", describe_io(&err))),
        Err(other) => Event::Failed(format!("handshake failed: {other}")),
    }
}

fn answer_bad_request(socket: &OwnedFd) {
    const ANSWER: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    // SAFETY: writes from a static buffer to a descriptor we own; a short or failed write
    // only loses the courtesy answer.
    unsafe { libc::write(socket.as_raw_fd(), ANSWER.as_ptr().cast(), ANSWER.len()) };
}

impl UserData for Listener {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // `'open', connection, protocol` | `'error', message` | nothing.
        methods.add_method_mut("next", |lua, this, ()| match this.next_event() {
            None => ().into_lua_multi(lua),
            Some(Event::Failed(message)) => ("error", message).into_lua_multi(lua),
            Some(Event::Opened(stream, protocol)) => {
                let connection = Connection::open(*stream);
                let config = this.config;
                let handle = NonBlockingConnection::new(Rc::clone(&this.core), connection, config);
                ("open", lua.create_userdata(handle)?, protocol).into_lua_multi(lua)
            }
        });
        methods.add_method("ready", |_, this, ()| {
            Ok(!this.events.is_empty() || this.readiness.is_raised())
        });
        // The id `websocket_native.take_raised` reports this listener by.
        methods.add_method("id", |_, this, ()| Ok(this.readiness.id()));
        methods.add_method_mut("close", |_, this, ()| {
            this.close();
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
        assert_eq!(
            choice.choose(Some("x, chat, echo")),
            Ok(Some("chat".into()))
        );
        assert_eq!(choice.choose(Some("x")), Err(()));
        assert_eq!(choice.choose(None), Err(()));
    }

    proptest::proptest! {
        #[test]
        fn the_choice_is_configured_and_offered_or_the_default(
            configured in proptest::collection::vec("[a-c]{1,2}", 0..4),
            offered in proptest::option::of(".{0,16}"),
            has_default in proptest::bool::ANY,
        ) {
            let choice = ProtocolChoice { configured: configured.clone(), has_default };
            match choice.choose(offered.as_deref()) {
                Ok(Some(name)) => {
                    proptest::prop_assert!(configured.contains(&name));
                    let offered_names: Vec<&str> =
                        offered.as_deref().unwrap_or("").split(',').map(str::trim).collect();
                    proptest::prop_assert!(offered_names.contains(&name.as_str()));
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
        assert_eq!(choice.choose(Some("other")), Ok(None));
        assert_eq!(choice.choose(None), Ok(None));
    }
}
