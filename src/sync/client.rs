//! The sync client: each call blocks the Lua thread in the core's runtime until it is done
//! or its timeout passes. Nothing runs between calls: keepalive pings go out, and pongs are
//! awaited, while a receive waits.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::connection::connect::{Accepted, ConnectError, ConnectRequest};
use crate::connection::round_trip::DEFAULT_PING_WAIT;
use crate::connection::settings::ConnectionSettings;
use crate::connection::{self, Connection, Ending, Received, DEFAULT_CLOSE_WAIT};
use crate::net::socket_error::TIMEOUT;
use crate::net::transport::FrameWrite;
use crate::runtime::call_timer::CallTimer;
use crate::runtime::core::Core;

/// A sync client's connection and what its calls need.
pub(crate) struct SyncClient {
    core: Rc<Core>,
    connection: Connection,
    timeout: Option<Duration>,
    timer: CallTimer,
    settings: ConnectionSettings,
    /// Whether the last receive found its message without waiting: then the next one looks
    /// before blocking too (a stream of messages), otherwise it blocks straight away (a
    /// request and its answer, which takes a round trip).
    last_receive_was_at_hand: bool,
    /// Messages read while a ping waited for its pong, for the next receives.
    held: VecDeque<Received>,
}

impl SyncClient {
    /// A client whose calls wait at most `timeout` (None: as long as they take).
    pub(crate) fn new(
        core: Rc<Core>,
        timeout: Option<Duration>,
        settings: ConnectionSettings,
    ) -> Self {
        SyncClient {
            core,
            connection: Connection::default(),
            timeout,
            timer: CallTimer::default(),
            settings,
            last_receive_was_at_hand: false,
            held: VecDeque::new(),
        }
    }

    /// The connection's state, for the arguments of a connect and `state()`.
    pub(crate) fn state(&self) -> connection::State {
        self.connection.state()
    }

    /// The compression the last connect agreed to.
    pub(crate) fn compression(&self) -> Option<&'static str> {
        self.connection.compression()
    }

    pub(crate) fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// Connects to what `request` names; `None` when the timeout passed first.
    pub(crate) fn connect(
        &mut self,
        request: ConnectRequest,
    ) -> Option<Result<Accepted, ConnectError>> {
        let mut connection = Connection::default();
        let outcome = self.timer.run(
            &self.core,
            self.timeout,
            connection.connect(request, self.settings.keepalive),
            false,
        );
        if matches!(outcome, Some(Ok(_))) {
            self.connection = connection;
        }
        outcome
    }

    pub(crate) fn receive(&mut self) -> Result<Received, Ending> {
        if let Some(message) = self.held.pop_front() {
            return Ok(message);
        }
        let mut receive = pin!(self.connection.receive());
        let mut polls = 0;
        let receiving = poll_fn(|cx| {
            polls += 1;
            receive.as_mut().poll(cx)
        });
        let try_first = self.last_receive_was_at_hand;
        let outcome = self
            .timer
            .run(&self.core, self.timeout, receiving, try_first);
        self.last_receive_was_at_hand = polls == 1;
        // On a timeout the connection stays open: a later receive goes on reading.
        outcome.unwrap_or_else(|| Err(Ending::unclean(1006, TIMEOUT)))
    }

    /// Sends a TEXT (`is_text`) or BINARY message of `payload`: written straight to the
    /// socket when it takes it at once (no copy into a message), else as `send` does.
    pub(crate) fn send_payload(&mut self, payload: &[u8], is_text: bool) -> Result<(), Ending> {
        match self.connection.try_write_data(payload, is_text, true) {
            FrameWrite::Written => Ok(()),
            FrameWrite::Partly | FrameWrite::Held(_) => {
                let flushing = self.connection.flush();
                let outcome = self.timer.run(&self.core, self.timeout, flushing, true);
                outcome.unwrap_or_else(|| Err(Ending::unclean(1006, TIMEOUT)))
            }
            FrameWrite::Refused => self.send(connection::data_message(payload, is_text)?),
        }
    }

    pub(crate) fn send(&mut self, message: Message) -> Result<(), Ending> {
        let sending = self.connection.send(message);
        let outcome = self.timer.run(&self.core, self.timeout, sending, true);
        // What was not written yet stays queued and goes out with the next write.
        outcome.unwrap_or_else(|| Err(Ending::unclean(1006, TIMEOUT)))
    }

    /// Sends a ping and waits for its pong (the timeout, else DEFAULT_PING_WAIT): the round
    /// trip. Messages that come first are kept for the next receives, up to `max_queue`;
    /// past that the pong waits behind them and the ping times out.
    pub(crate) fn ping(&mut self, payload: Option<Bytes>) -> Result<Duration, Ending> {
        let message = self.connection.start_ping(payload);
        self.send(message)?;
        let (connection, held) = (&mut self.connection, &mut self.held);
        let room = self.settings.max_queue;
        let waiting = poll_fn(|cx| loop {
            if let Some(round_trip) = connection.take_round_trip() {
                return Poll::Ready(Ok(round_trip));
            }
            if held.len() >= room {
                return Poll::Pending;
            }
            match connection.poll_receive(cx) {
                Poll::Ready(Ok(message)) => held.push_back(message),
                Poll::Ready(Err(ending)) => return Poll::Ready(Err(ending)),
                Poll::Pending => {
                    return match connection.take_round_trip() {
                        Some(round_trip) => Poll::Ready(Ok(round_trip)),
                        None => Poll::Pending,
                    }
                }
            }
        });
        let limit = Some(self.timeout.unwrap_or(DEFAULT_PING_WAIT));
        self.timer
            .run(&self.core, limit, waiting, true)
            .unwrap_or_else(|| Err(Ending::unclean(1006, TIMEOUT)))
    }

    pub(crate) fn close(&mut self, code: u16, reason: &str) -> Ending {
        let wait = self.timeout.unwrap_or(DEFAULT_CLOSE_WAIT);
        self.core
            .block_on(self.connection.close(code, reason, wait))
    }
}
