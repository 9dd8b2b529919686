//! Keepalive: a ping every `interval`, and the connection failed when its pong has not come
//! within `timeout`. A peer that vanished (NAT, a proxy, a pulled cable) sends nothing, not
//! even a reset, and only this notices it; the pings also keep proxies that cut idle
//! connections (nginx after 60 s) from cutting this one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeepaliveSettings {
    pub interval: Duration,
    pub timeout: Duration,
}

/// What the connection must do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    SendPing,
    /// The pong did not come in time.
    Fail,
}

pub struct Keepalive {
    settings: KeepaliveSettings,
    timer: Pin<Box<Sleep>>,
    /// When the unanswered ping went out.
    ping_sent_at: Option<Instant>,
}

impl Keepalive {
    /// Must be called inside the runtime (the timer belongs to it).
    pub fn new(settings: KeepaliveSettings) -> Self {
        Keepalive {
            settings,
            timer: Box::pin(tokio::time::sleep(settings.interval)),
            ping_sent_at: None,
        }
    }

    /// When the timer fires next.
    pub fn deadline(&self) -> Instant {
        self.timer.deadline()
    }

    /// Ready with what is due once the timer fired; the timer is then set for what follows.
    pub fn poll_due(&mut self, cx: &mut Context<'_>) -> Poll<Due> {
        if self.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if self.ping_sent_at.is_some() {
            return Poll::Ready(Due::Fail);
        }
        let now = Instant::now();
        self.ping_sent_at = Some(now);
        self.timer.as_mut().reset(now + self.settings.timeout);
        Poll::Ready(Due::SendPing)
    }

    /// A pong came: the next ping goes out an interval after the last one.
    pub fn pong_received(&mut self) {
        if let Some(sent_at) = self.ping_sent_at.take() {
            self.timer.as_mut().reset(sent_at + self.settings.interval);
        }
    }

    /// Starts over: no ping awaited, the next one an interval from now.
    pub fn restart(&mut self) {
        self.ping_sent_at = None;
        self.timer
            .as_mut()
            .reset(Instant::now() + self.settings.interval);
    }

    /// Whether a pong is awaited.
    #[cfg(test)]
    pub fn awaiting_pong(&self) -> bool {
        self.ping_sent_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    #[test]
    fn a_ping_then_a_failure_without_pong() {
        runtime().block_on(async {
            let settings = KeepaliveSettings {
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
            };
            let mut keepalive = Keepalive::new(settings);
            let mut cx = Context::from_waker(Waker::noop());
            assert_eq!(keepalive.poll_due(&mut cx), Poll::Pending);
            tokio::time::advance(Duration::from_secs(2)).await;
            assert_eq!(keepalive.poll_due(&mut cx), Poll::Ready(Due::SendPing));
            assert!(keepalive.awaiting_pong());
            tokio::time::advance(Duration::from_millis(500)).await;
            assert_eq!(keepalive.poll_due(&mut cx), Poll::Pending);
            tokio::time::advance(Duration::from_millis(600)).await;
            assert_eq!(keepalive.poll_due(&mut cx), Poll::Ready(Due::Fail));
        });
    }

    #[test]
    fn a_pong_sets_the_next_ping_an_interval_after_the_last() {
        runtime().block_on(async {
            let settings = KeepaliveSettings {
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(2),
            };
            let mut keepalive = Keepalive::new(settings);
            let mut cx = Context::from_waker(Waker::noop());
            tokio::time::advance(Duration::from_secs(2)).await;
            assert_eq!(keepalive.poll_due(&mut cx), Poll::Ready(Due::SendPing));
            let ping_at = Instant::now();
            tokio::time::advance(Duration::from_millis(300)).await;
            keepalive.pong_received();
            assert!(!keepalive.awaiting_pong());
            assert_eq!(keepalive.deadline(), ping_at + Duration::from_secs(2));
            tokio::time::advance(Duration::from_millis(1800)).await;
            assert_eq!(keepalive.poll_due(&mut cx), Poll::Ready(Due::SendPing));
        });
    }
}
