//! `loadgen fanout`: listeners that only count bytes, a trigger whose messages the server
//! broadcasts (or, with LOADGEN_TOPICS, publishes to one topic at a time). See main.rs.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use crate::{config_for, cpu_of, masked_text_frame, open_offering, Connection, Failure};

/// The listeners and who hears what.
struct Audience {
    listeners: Vec<TcpStream>,
    /// Topics (1: every listener hears every message).
    topics: usize,
    /// Listeners that never read: listener i is slow when `slow[i]`.
    slow: Vec<bool>,
}

impl Audience {
    /// The listeners of the topic of message `round` that read.
    fn readers_of(&self, round: usize) -> Vec<&TcpStream> {
        let topic = round % self.topics;
        self.listeners
            .iter()
            .enumerate()
            .filter(|(index, _)| index % self.topics == topic && !self.slow[*index])
            .map(|(_, tcp)| tcp)
            .collect()
    }

    /// How many of `rounds` messages listener `index` hears.
    fn heard_by(&self, index: usize, rounds: usize) -> usize {
        let topic = index % self.topics;
        (0..rounds)
            .filter(|round| round % self.topics == topic)
            .count()
    }
}

pub(crate) async fn fanout(
    trigger_url: &str,
    rounds: usize,
    size: usize,
    targets: &[(String, usize)],
) -> Result<(), Failure> {
    let deflate = std::env::var_os("LOADGEN_DEFLATE").is_some();
    let topics: usize = std::env::var("LOADGEN_TOPICS").map_or(Ok(0), |n| n.parse())?;
    let slow_count: usize = std::env::var("LOADGEN_SLOW").map_or(Ok(0), |n| n.parse())?;
    let offer = deflate
        .then_some("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    let mut listeners = Vec::new();
    for (url, count) in targets {
        for ws in open_offering(url, *count, size, offer).await? {
            match ws.into_inner() {
                tokio_tungstenite::MaybeTlsStream::Plain(tcp) => listeners.push(tcp),
                _ => return Err("fanout needs ws:// URLs".into()),
            }
        }
    }
    // Slow listeners spread evenly over the listeners and the topics, never the first (it
    // learns the frame size).
    let mut slow = vec![false; listeners.len()];
    if let Some(step) = listeners.len().checked_div(slow_count) {
        for k in 0..slow_count {
            let index = (1 + k * step.max(1) + k) % listeners.len();
            slow[index.max(1)] = true;
        }
    }
    if topics > 0 {
        for (index, tcp) in listeners.iter().enumerate() {
            let subscribe = format!("sub t{}", index % topics);
            write_all(tcp, &masked_text_frame(subscribe.as_bytes())).await?;
        }
    }
    let audience = Audience {
        listeners,
        topics: topics.max(1),
        slow,
    };
    let (mut trigger, _) =
        tokio_tungstenite::connect_async_with_config(trigger_url, Some(config_for(size)), true)
            .await?;
    // Every server has the connections (and subscriptions) registered after this.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body = if deflate {
        chat_message(size)
    } else {
        "b".repeat(size)
    };
    let message = |round: usize| -> Result<Utf8Bytes, Failure> {
        let text = match topics {
            0 => body.clone(),
            _ => format!("pub t{} {body}", round % topics),
        };
        Ok(Utf8Bytes::try_from(Bytes::from(text))?)
    };
    let started = Instant::now();
    let (frame, mut until_last) =
        one_at_a_time(&mut trigger, &audience, &message, rounds, deflate).await?;
    let servers = ServerCpu::from_env()?;
    let burst_started = Instant::now();
    all_at_once(&mut trigger, &audience, &message, rounds, frame).await?;
    let burst = burst_started.elapsed();
    let deliveries: usize = (0..audience.listeners.len())
        .filter(|index| !audience.slow[*index])
        .map(|index| audience.heard_by(index, rounds))
        .sum();
    let server_cpu = match servers {
        Some(servers) => format!(
            " server_cpu_us_per_delivery {:.2}",
            servers.used()?.as_secs_f64() * 1e6 / deliveries as f64
        ),
        None => String::new(),
    };
    until_last.sort();
    let percentile = |p: usize| until_last[(until_last.len() * p / 100).min(until_last.len() - 1)];
    println!(
        "deliveries/s {:.0} until_last_p50_ms {:.2} until_last_p99_ms {:.2} connections {} rounds {} wall_s {:.2} frame_bytes {frame}{server_cpu}",
        deliveries as f64 / burst.as_secs_f64(),
        percentile(50).as_secs_f64() * 1e3,
        percentile(99).as_secs_f64() * 1e3,
        audience.listeners.len(),
        rounds,
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// `rounds` messages, each sent once the previous one reached every reading listener of
/// its topic: the size of a message's frame (read from the first listener of the first
/// topic, then counted on the others), and how long until the last reader had each.
async fn one_at_a_time(
    trigger: &mut Connection,
    audience: &Audience,
    message: &dyn Fn(usize) -> Result<Utf8Bytes, Failure>,
    rounds: usize,
    compressed: bool,
) -> Result<(usize, Vec<Duration>), Failure> {
    let mut until_last = Vec::with_capacity(rounds);
    let mut frame = None;
    for round in 0..rounds {
        let sent = Instant::now();
        trigger.send(Message::Text(message(round)?)).await?;
        let readers = audience.readers_of(round);
        let (first, others) = readers.split_first().ok_or("a topic without listeners")?;
        let (length, rsv1) = read_frame(first).await?;
        if compressed != rsv1 {
            return Err(format!("a broadcast arrived with RSV1 {rsv1}").into());
        }
        if frame.is_some_and(|known| known != length) {
            return Err("broadcasts of the same message differ in size".into());
        }
        frame = Some(length);
        read_from_each(others.iter().map(|tcp| (*tcp, length))).await?;
        until_last.push(sent.elapsed());
        // The trigger connection gets a broadcast too (it subscribes to no topic).
        if audience.topics == 1 {
            let _ = tokio::time::timeout(Duration::from_millis(200), trigger.next()).await;
        }
    }
    Ok((frame.ok_or("no rounds")?, until_last))
}

/// `rounds` messages triggered back to back, then read until every reading listener has
/// all of its topic's: the server's throughput. Each listener reads whatever has arrived in
/// one call, so the reading side gets cheaper per message the further behind it falls and
/// cannot be the bottleneck for long.
async fn all_at_once(
    trigger: &mut Connection,
    audience: &Audience,
    message: &dyn Fn(usize) -> Result<Utf8Bytes, Failure>,
    rounds: usize,
    frame: usize,
) -> Result<(), Failure> {
    for round in 0..rounds {
        trigger.feed(Message::Text(message(round)?)).await?;
    }
    trigger.flush().await?;
    let expected = audience
        .listeners
        .iter()
        .enumerate()
        .filter(|(index, _)| !audience.slow[*index])
        .map(|(index, tcp)| (tcp, frame * audience.heard_by(index, rounds)));
    read_from_each(expected).await?;
    if audience.topics > 1 {
        return Ok(());
    }
    // Drain the trigger's own copies (it is in the group) for a tidy close.
    for _ in 0..rounds {
        if tokio::time::timeout(Duration::from_millis(200), trigger.next())
            .await
            .is_err()
        {
            break;
        }
    }
    Ok(())
}

/// Writes all of `bytes` to `tcp`.
async fn write_all(tcp: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        tcp.writable().await?;
        match tcp.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Reads one server frame from `tcp`: its length on the wire, and whether RSV1 (compressed)
/// was set.
async fn read_frame(tcp: &TcpStream) -> Result<(usize, bool), Failure> {
    let scratch = RefCell::new(vec![0u8; 64 * 1024]);
    let mut head = [0u8; 10];
    read_exact(tcp, &mut head[..2]).await?;
    let (extra, length) = match head[1] & 0x7f {
        126 => {
            read_exact(tcp, &mut head[2..4]).await?;
            (2, usize::from(u16::from_be_bytes([head[2], head[3]])))
        }
        127 => {
            read_exact(tcp, &mut head[2..10]).await?;
            let mut long = [0u8; 8];
            long.copy_from_slice(&head[2..10]);
            (8, usize::try_from(u64::from_be_bytes(long))?)
        }
        short => (0, usize::from(short)),
    };
    read_bytes(tcp, length, &scratch).await?;
    Ok((2 + extra + length, head[0] & 0x40 != 0))
}

/// Fills `buffer` from `tcp`.
async fn read_exact(tcp: &TcpStream, buffer: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        tcp.readable().await?;
        match tcp.try_read(&mut buffer[filled..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(read) => filled += read,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// A JSON chat message of exactly `size` bytes (at least 64): a user, a room and words of a
/// small vocabulary, as chat traffic looks to a compressor.
fn chat_message(size: usize) -> String {
    const WORDS: [&str; 16] = [
        "hello", "the", "meeting", "is", "at", "noon", "see", "you", "there", "with", "slides",
        "about", "latency", "numbers", "and", "coffee",
    ];
    let mut text = String::new();
    let mut state = 7u32;
    let head = r#"{"user":"alice","room":"lobby","text":""#;
    while head.len() + text.len() + 2 < size {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        text.push_str(WORDS[(state >> 16) as usize % WORDS.len()]);
        text.push(' ');
    }
    let mut message = format!("{head}{text}");
    message.truncate(size.saturating_sub(2).max(head.len()));
    message.push_str(r#""}"#);
    message
}

/// Reads and drops the given number of bytes from each listener, all at once.
async fn read_from_each<'a>(
    expected: impl Iterator<Item = (&'a TcpStream, usize)>,
) -> std::io::Result<()> {
    let scratch = RefCell::new(vec![0u8; 64 * 1024]);
    let readers: Vec<_> = expected
        .map(|(tcp, count)| read_bytes(tcp, count, &scratch))
        .collect();
    for outcome in futures_util::future::join_all(readers).await {
        outcome?;
    }
    Ok(())
}

/// Reads and drops `count` bytes from `tcp`, each read into `scratch` (shared by all
/// listeners: a read never waits while it holds it).
async fn read_bytes(
    tcp: &TcpStream,
    mut count: usize,
    scratch: &RefCell<Vec<u8>>,
) -> std::io::Result<()> {
    while count > 0 {
        tcp.readable().await?;
        let read = {
            let mut buffer = scratch.borrow_mut();
            let wanted = count.min(buffer.len());
            tcp.try_read(&mut buffer[..wanted])
        };
        match read {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(read) => count -= read,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// The CPU time of the server processes named in LOADGEN_SERVER_PIDS (all their threads,
/// user and kernel), so that a benchmark can count only the broadcasts' share.
pub(crate) struct ServerCpu {
    pids: Vec<u32>,
    before: Duration,
}

impl ServerCpu {
    pub(crate) fn from_env() -> Result<Option<Self>, Failure> {
        let Ok(list) = std::env::var("LOADGEN_SERVER_PIDS") else {
            return Ok(None);
        };
        let pids = list
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<u32>, _>>()?;
        let before = cpu_of(&pids)?;
        Ok(Some(ServerCpu { pids, before }))
    }

    pub(crate) fn used(&self) -> Result<Duration, Failure> {
        Ok(cpu_of(&self.pids)?.saturating_sub(self.before))
    }
}
