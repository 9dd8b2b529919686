//! Round trips a program measures with `ping()`: the ping it sent last, and how long its
//! pong took. Pongs to other pings (keepalive's, or an older one of the program's) do not
//! count: the payload tells them apart.

use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::Bytes;

/// How long `ping()` waits for its pong when the connection has no timeout of its own.
pub const DEFAULT_PING_WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct RoundTrip {
    /// The payload of the ping awaited and when it was sent.
    waiting: Option<(Bytes, Instant)>,
    /// The round trip of the last ping awaited, once its pong came.
    measured: Option<Duration>,
    /// Pings sent with a payload of our own, for the next one's.
    sent: u64,
}

impl RoundTrip {
    /// A ping with `payload` (one of our own when None) is about to go: its pong is the one
    /// awaited from now on. Returns the payload to send.
    pub fn start(&mut self, payload: Option<Bytes>) -> Bytes {
        let payload = payload.unwrap_or_else(|| {
            self.sent += 1;
            Bytes::from(format!("round trip {}", self.sent))
        });
        self.waiting = Some((payload.clone(), Instant::now()));
        self.measured = None;
        payload
    }

    /// A pong with `payload` came.
    pub fn pong(&mut self, payload: &[u8]) {
        if let Some((awaited, sent)) = &self.waiting {
            if awaited.as_ref() == payload {
                self.measured = Some(sent.elapsed());
                self.waiting = None;
            }
        }
    }

    /// The round trip measured, once (None until the pong came).
    pub fn take(&mut self) -> Option<Duration> {
        self.measured.take()
    }

    /// Whether a round trip waits to be taken.
    pub fn is_measured(&self) -> bool {
        self.measured.is_some()
    }

    /// Whether a pong is still awaited.
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_awaited_pong_ends_the_round_trip() {
        let mut round_trip = RoundTrip::default();
        let first = round_trip.start(None);
        let second = round_trip.start(None);
        assert_ne!(first, second);
        round_trip.pong(&first);
        assert_eq!(round_trip.take(), None);
        round_trip.pong(b"keepalive");
        assert!(round_trip.is_waiting());
        round_trip.pong(&second);
        assert!(round_trip.take().is_some());
        assert_eq!(round_trip.take(), None);
        let given = round_trip.start(Some(Bytes::from_static(b"mine")));
        assert_eq!(given.as_ref(), b"mine");
    }
}
