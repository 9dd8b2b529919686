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

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use crate::connection::connect::Stream;
use crate::connection::request::RequestInfo;
use crate::connection::settings::ConnectionSettings;
use crate::net::http_head::RequestHead;
use crate::net::transport::Inner;
use crate::runtime::core::DeadlineId;

mod bind;
pub(crate) mod cluster;
mod handshake;
pub(crate) mod listener;
pub(crate) mod origins;
pub(crate) mod pending_request;
mod state;

pub(crate) use listener::{ListenConfig, Listener, ServerEvent};
pub(crate) use pending_request::PendingRequest;

/// Which subprotocol a connection gets: the first offered one that is configured, else the
/// default handler's (no protocol), else the connection is refused.
pub(crate) struct ProtocolChoice {
    pub(crate) configured: Vec<String>,
    pub(crate) has_default: bool,
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
pub(super) struct Arrived {
    pub(super) inner: Inner,
    pub(super) bytes: Vec<u8>,
    pub(super) head: RequestHead,
    pub(super) info: Rc<RequestInfo>,
}

/// Stage 1's result, until Lua answers it (or the deadline drops it).
pub(super) type Slot = Rc<RefCell<Option<Arrived>>>;

pub(super) enum Event {
    Request(PendingRequest),
    Opened(Box<Stream>, Option<String>, u64, Rc<RequestInfo>),
    /// An error for `on_error`, with the request's id when Lua has seen the request.
    Failed(String, Option<u64>),
}

/// A handshake stage's outcome, and the deadline alarm to cancel once the handshake is over.
pub(super) type StageOutcome = (Option<Event>, Option<DeadlineId>);

/// Everything a connection's handshake needs from the server's settings.
pub(super) struct HandshakeSettings {
    pub(super) choice: ProtocolChoice,
    pub(super) settings: ConnectionSettings,
    pub(super) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(super) handshake_timeout: Duration,
    /// The origins admitted, when the server checks them.
    pub(super) origins: Option<origins::Origins>,
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
