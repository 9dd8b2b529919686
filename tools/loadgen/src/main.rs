//! loadgen: drives a WebSocket server for the benchmarks under bench/.
//!
//! `loadgen idle URL N SECONDS`: opens N connections (at most 200 handshakes at a time),
//! prints `open N` once all are open, holds them idle for SECONDS (reading, so that the
//! server's keepalive pings get their pongs), then checks that a sample of them (200, spread
//! evenly) still echoes, one at a time, and prints `echoed K of SAMPLE, mean round trip MS
//! ms, pings P`, P being the pings the server sent meanwhile.
//!
//! `loadgen echo URL COUNT SIZE [binary]`: one connection sends COUNT messages of SIZE bytes
//! (text, or binary), one at a time, each after the previous one's echo; prints messages
//! and megabytes per second and the median and 99th percentile round trip in microseconds.
//!
//! `loadgen tcp-echo HOST:PORT COUNT SIZE`: the same over plain TCP, no WebSocket: lines of
//! SIZE bytes (the last one a newline), for a baseline of what a server's event loop costs
//! when it has no WebSocket work to do.
//!
//! Both echoes pause LOADGEN_GAP_US microseconds before each message when that is set.
//!
//! `loadgen many URL CONNECTIONS COUNT SIZE`: CONNECTIONS connections each echo COUNT text
//! messages of SIZE bytes (at most 65,535) one at a time, all at once; prints the total
//! messages per second and the CPU time the generator used (handshakes included). After the
//! handshake they are raw sockets that write a frame encoded once and read the echo's bytes,
//! so that the generator takes little of the cores it shares with the server it measures.
//!
//! `loadgen fanout TRIGGER_URL ROUNDS SIZE URL:N [URL:N …]`: opens N listening connections to
//! each URL and a trigger connection to TRIGGER_URL; every text message of SIZE bytes sent on
//! the trigger is one broadcast by the server. Listening connections are raw sockets after
//! the handshake that only count bytes (a WebSocket reader per connection would be the
//! bottleneck). First ROUNDS broadcasts one at a time, each once the previous one reached
//! every listener: the median and 99th percentile of the time until the last delivery. Then
//! ROUNDS broadcasts triggered back to back: deliveries per second, and with
//! LOADGEN_SERVER_PIDS (the server's pids) the servers' CPU time per delivery meanwhile.
//! With LOADGEN_DEFLATE set, the listeners offer permessage-deflate without context
//! takeover (so that every broadcast is the same bytes, which one server may compress once
//! for all), the message is a JSON chat message of SIZE bytes instead of one letter
//! repeated, and a broadcast that arrives uncompressed is an error. With LOADGEN_TOPICS=N
//! each listener subscribes to one of N topics (`sub tK`, listener i to topic i mod N) and
//! each message of the trigger is a publish (`pub tK <SIZE bytes>`) to the next topic in
//! turn; with LOADGEN_SLOW=M, M listeners spread over the topics never read (the rates
//! count the others' deliveries). See fanout.rs.
//!
//! `loadgen rooms CONNECTIONS MESSAGES SIZE URL [URL…]`: chat rooms of ten connections
//! spread over the URLs, every message published to its room; see rooms.rs.
//!
//! `loadgen channels REDIS_URL LAYOUT SPREAD TOPICS PUBLISHES [PROCESSES]`: a Redis channel per topic
//! against one channel for all, for a cluster's topic publishes; see channels.rs.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use std::time::Instant;
use tokio::sync::Semaphore;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

mod channels;
mod fanout;
mod rooms;

type Failure = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("idle") => {
            let url = args.get(2).ok_or("URL missing")?;
            let count: usize = args.get(3).ok_or("N missing")?.parse()?;
            let seconds: u64 = args.get(4).ok_or("SECONDS missing")?.parse()?;
            idle(url, count, Duration::from_secs(seconds)).await
        }
        Some("echo") => {
            let url = args.get(2).ok_or("URL missing")?;
            let count: usize = args.get(3).ok_or("COUNT missing")?.parse()?;
            let size: usize = args.get(4).ok_or("SIZE missing")?.parse()?;
            let binary = args.get(5).is_some_and(|kind| kind == "binary");
            echo(url, count, size, binary).await
        }
        Some("tcp-echo") => {
            let address = args.get(2).ok_or("HOST:PORT missing")?;
            let count: usize = args.get(3).ok_or("COUNT missing")?.parse()?;
            let size: usize = args.get(4).ok_or("SIZE missing")?.parse()?;
            tcp_echo(address, count, size).await
        }
        Some("many") => {
            let url = args.get(2).ok_or("URL missing")?;
            let connections: usize = args.get(3).ok_or("CONNECTIONS missing")?.parse()?;
            let count: usize = args.get(4).ok_or("COUNT missing")?.parse()?;
            let size: usize = args.get(5).ok_or("SIZE missing")?.parse()?;
            many(url, connections, count, size).await
        }
        Some("fanout") => {
            let trigger = args.get(2).ok_or("TRIGGER_URL missing")?;
            let rounds: usize = args.get(3).ok_or("ROUNDS missing")?.parse()?;
            let size: usize = args.get(4).ok_or("SIZE missing")?.parse()?;
            let mut targets = Vec::new();
            for target in &args[5..] {
                let (url, count) = target.rsplit_once(':').ok_or("URL:N expected")?;
                targets.push((url.to_string(), count.parse::<usize>()?));
            }
            fanout::fanout(trigger, rounds, size, &targets).await
        }
        Some("rooms") => {
            let connections: usize = args.get(2).ok_or("CONNECTIONS missing")?.parse()?;
            let messages: usize = args.get(3).ok_or("MESSAGES missing")?.parse()?;
            let size: usize = args.get(4).ok_or("SIZE missing")?.parse()?;
            rooms::rooms(connections, messages, size, &args[5..]).await
        }
        Some("channels") => {
            let (url, layout, spread) = (arg(&args, 2)?, arg(&args, 3)?, arg(&args, 4)?);
            let topics: usize = arg(&args, 5)?.parse()?;
            let publishes: usize = arg(&args, 6)?.parse()?;
            let processes: usize = args.get(7).map_or(Ok(2), |n| n.parse())?;
            channels::channels(url, layout, spread, topics, publishes, processes).await
        }
        _ => Err(
            "usage: loadgen idle URL N SECONDS | echo URL COUNT SIZE [binary] | tcp-echo HOST:PORT COUNT SIZE | many URL CONNECTIONS COUNT SIZE | fanout TRIGGER_URL ROUNDS SIZE URL:N… | rooms CONNECTIONS MESSAGES SIZE URL… | channels REDIS_URL LAYOUT SPREAD TOPICS PUBLISHES [PROCESSES]"
                .into(),
        ),
    }
}

/// Argument `index`, or an error naming its place.
fn arg(args: &[String], index: usize) -> Result<&str, Failure> {
    Ok(args.get(index).ok_or(format!("argument {index} missing"))?)
}

pub(crate) type Connection =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The load generator's connection settings for messages of `size` bytes. tungstenite
/// zero-fills its whole read buffer before every read attempt, including the ones that find
/// nothing, so the default 128 KiB buffer made the generator itself the bottleneck with
/// small messages (a memset took over half its CPU at 1,000 connections).
pub(crate) fn config_for(size: usize) -> WebSocketConfig {
    let read_buffer = (size + 14).next_power_of_two().clamp(4096, 128 * 1024);
    WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None)
        .read_buffer_size(read_buffer)
}

/// Opens `count` connections to `url` for messages of `size` bytes, at most 200 handshakes
/// at a time.
async fn open_connections(
    url: &str,
    count: usize,
    size: usize,
) -> Result<Vec<Connection>, Failure> {
    open_offering(url, count, size, None).await
}

/// `open_connections`, each handshake offering the extension `offer` when there is one,
/// which the server must accept.
pub(crate) async fn open_offering(
    url: &str,
    count: usize,
    size: usize,
    offer: Option<&str>,
) -> Result<Vec<Connection>, Failure> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let gate = std::rc::Rc::new(Semaphore::new(200));
    let opening = (0..count).map(|_| {
        let gate = gate.clone();
        async move {
            let _permit = gate.acquire().await?;
            let config = Some(config_for(size));
            let mut request = url.into_client_request()?;
            if let Some(offer) = offer {
                request
                    .headers_mut()
                    .insert("Sec-WebSocket-Extensions", offer.parse()?);
            }
            let (ws, response) =
                tokio_tungstenite::connect_async_with_config(request, config, true).await?;
            let agreed = response.headers().get("Sec-WebSocket-Extensions");
            if offer.is_some() && agreed.is_none() {
                return Err("the server did not agree to the extension offered".into());
            }
            Ok::<_, Failure>(ws)
        }
    });
    futures_util::future::join_all(opening)
        .await
        .into_iter()
        .collect()
}

async fn idle(url: &str, count: usize, hold: Duration) -> Result<(), Failure> {
    let mut open = open_connections(url, count, 64).await?;
    println!("open {}", open.len());
    let pings = hold_answering_pings(&mut open, hold).await;
    // One by one: each echo's round trip shows what a message costs the server while all
    // the other connections are open.
    let stride = (open.len() / 200).max(1);
    let (mut echoed, mut sampled) = (0, 0);
    let started = Instant::now();
    for ws in open.iter_mut().step_by(stride) {
        sampled += 1;
        ws.send(Message::text("still there?")).await?;
        if let Some(Ok(Message::Text(_))) = ws.next().await {
            echoed += 1;
        }
    }
    let mean_ms = started.elapsed().as_secs_f64() * 1e3 / f64::from(sampled.max(1));
    println!("echoed {echoed} of {sampled}, mean round trip {mean_ms:.2} ms, pings {pings}");
    Ok(())
}

/// Reads every connection until `hold` has passed (tungstenite answers pings as it reads);
/// returns how many pings came.
async fn hold_answering_pings<S>(open: &mut [S], hold: Duration) -> usize
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message>
        + Unpin,
{
    let until = tokio::time::Instant::now() + hold;
    let readers = open.iter_mut().map(|ws| async move {
        let mut pings = 0;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, ws.next()).await {
            if matches!(message, Message::Ping(_)) {
                pings += 1;
                // The pong tungstenite queued goes out with a flush.
                let _ = ws.flush().await;
            }
        }
        pings
    });
    futures_util::future::join_all(readers)
        .await
        .into_iter()
        .sum()
}

async fn echo(url: &str, count: usize, size: usize, binary: bool) -> Result<(), Failure> {
    let config = Some(config_for(size));
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, config, true).await?;
    let payload = Bytes::from("x".repeat(size));
    timed_round_trips(count, size, async || {
        let message = if binary {
            Message::Binary(payload.clone())
        } else {
            Message::Text(Utf8Bytes::try_from(payload.clone())?)
        };
        ws.send(message).await?;
        match next_data(&mut ws).await {
            Some(Ok(Message::Text(echoed))) if echoed.len() == size => Ok(()),
            Some(Ok(Message::Binary(echoed))) if echoed.len() == size => Ok(()),
            other => Err(format!("unexpected answer: {other:?}").into()),
        }
    })
    .await?;
    ws.close(None).await?;
    Ok(())
}

/// An echo over plain TCP: lines of `size` bytes, one at a time.
async fn tcp_echo(address: &str, count: usize, size: usize) -> Result<(), Failure> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    if size == 0 {
        return Err("SIZE must be at least 1 (the newline)".into());
    }
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut line = "x".repeat(size - 1);
    line.push('\n');
    let mut echoed = String::with_capacity(size);
    timed_round_trips(count, size, async || {
        writer.write_all(line.as_bytes()).await?;
        echoed.clear();
        reader.read_line(&mut echoed).await?;
        if echoed != line {
            return Err(format!("unexpected answer: {echoed:?}").into());
        }
        Ok(())
    })
    .await
}

/// Runs `round_trip` `count` times, each after the pause of LOADGEN_GAP_US if set, and
/// prints the summary of the round trips (messages of `size` bytes).
async fn timed_round_trips(
    count: usize,
    size: usize,
    mut round_trip: impl AsyncFnMut() -> Result<(), Failure>,
) -> Result<(), Failure> {
    let gap = echo_gap()?;
    let mut round_trips = Vec::with_capacity(count);
    let cpu_started = cpu_ns();
    let started = Instant::now();
    for _ in 0..count {
        if let Some(gap) = gap {
            tokio::time::sleep(gap).await;
        }
        let sent = Instant::now();
        round_trip().await?;
        round_trips.push(sent.elapsed());
    }
    let cpu_used = cpu_ns().zip(cpu_started).map(|(now, then)| now - then);
    print_echo_summary(started, round_trips, size);
    if let Some(cpu_used) = cpu_used {
        // The same figure bench/client.lua prints, over the echoes only (not the start).
        println!(
            "cpu_us_per_message {:.2}",
            cpu_used as f64 / 1e3 / count.max(1) as f64
        );
    }
    Ok(())
}

/// Nanoseconds this thread (the runtime's only one) has run on a CPU, user and kernel.
fn cpu_ns() -> Option<u64> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    schedstat.split_whitespace().next()?.parse().ok()
}

/// Messages and megabytes per second since `started`, and the round trips' median, 99th
/// percentile and longest.
fn print_echo_summary(started: Instant, mut round_trips: Vec<Duration>, size: usize) {
    let count = round_trips.len();
    let elapsed = started.elapsed().as_secs_f64();
    round_trips.sort();
    let percentile = |p: usize| {
        round_trips
            .get((count * p / 100).min(count.saturating_sub(1)))
            .map_or(0, |round_trip| round_trip.as_micros())
    };
    println!(
        "messages/s {:.0} MB/s {:.1} median_us {} p99_us {} max_us {}",
        count as f64 / elapsed,
        // Both directions carry the payload.
        (2 * count * size) as f64 / elapsed / 1e6,
        percentile(50),
        percentile(99),
        round_trips.last().map_or(0, |longest| longest.as_micros())
    );
}

/// LOADGEN_GAP_US: a pause before each echo's message, so that the server is idle when it
/// comes, as it is natively between the round trips of one connection. Under valgrind a
/// server is so slow that without the pause the next message is always there already.
fn echo_gap() -> Result<Option<Duration>, Failure> {
    match std::env::var("LOADGEN_GAP_US") {
        Ok(micros) => Ok(Some(Duration::from_micros(micros.parse()?))),
        Err(_) => Ok(None),
    }
}

/// The next message that is not a ping or pong (tungstenite answers pings itself): servers
/// with keepalive ping the load generator's connections.
async fn next_data(
    ws: &mut Connection,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => return other,
        }
    }
}

async fn many(url: &str, connections: usize, count: usize, size: usize) -> Result<(), Failure> {
    use tokio::io::AsyncWriteExt;
    if size > 65_535 {
        return Err("many sends messages of at most 65,535 bytes".into());
    }
    let mut sockets = Vec::with_capacity(connections);
    for ws in open_connections(url, connections, size).await? {
        match ws.into_inner() {
            tokio_tungstenite::MaybeTlsStream::Plain(tcp) => sockets.push(tcp),
            _ => return Err("many needs a ws:// URL".into()),
        }
    }
    let payload = "x".repeat(size).into_bytes();
    let request = masked_text_frame(&payload);
    let started = Instant::now();
    let echoing = sockets.into_iter().map(|mut tcp| {
        let request = &request;
        let payload = &payload;
        async move {
            let (reader, mut writer) = tcp.split();
            let mut reader = tokio::io::BufReader::new(reader);
            let mut echo = Vec::with_capacity(payload.len());
            for _ in 0..count {
                writer.write_all(request).await?;
                let opcode = next_data_frame(&mut reader, &mut writer, &mut echo).await?;
                if opcode != 0x1 || echo != *payload {
                    return Err::<_, Failure>("the echo is not the text frame sent".into());
                }
            }
            Ok(())
        }
    });
    for result in futures_util::future::join_all(echoing).await {
        result?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let own_cpu = cpu_of(&[std::process::id()])?;
    println!(
        "messages/s {:.0} cpu_s {:.3}",
        (connections * count) as f64 / elapsed,
        own_cpu.as_secs_f64()
    );
    Ok(())
}

/// Reads frames until a data frame comes (its payload into `payload`, its opcode returned),
/// answering pings with pongs on the way: a server with keepalive pings the load
/// generator's connections, and fails those that do not answer.
async fn next_data_frame<R, W>(
    reader: &mut R,
    writer: &mut W,
    payload: &mut Vec<u8>,
) -> Result<u8, Failure>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let mut head = [0u8; 2];
        reader.read_exact(&mut head).await?;
        let length = match head[1] & 0x7f {
            126 => u64::from(reader.read_u16().await?),
            127 => reader.read_u64().await?,
            short => u64::from(short),
        };
        payload.resize(usize::try_from(length)?, 0);
        reader.read_exact(payload).await?;
        match head[0] & 0x0f {
            0x9 => writer.write_all(&masked_frame(0x8A, payload)).await?,
            0xA => {}
            opcode => return Ok(opcode),
        }
    }
}

/// A client's text frame carrying `payload` (at most 65,535 bytes), masked with a fixed key:
/// encoded once and written as it is for every message, so that the load generator's own
/// cost per message is little more than its two system calls.
pub(crate) fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    masked_frame(0x81, payload)
}

/// A masked frame whose first byte is `first` (FIN and opcode) carrying `payload`.
fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![first];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&KEY);
    frame.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, byte)| byte ^ KEY[i % 4]),
    );
    frame
}

/// Sum of the first field (nanoseconds on the CPU) of every thread's schedstat.
pub(crate) fn cpu_of(pids: &[u32]) -> Result<Duration, Failure> {
    let mut total = 0u64;
    for pid in pids {
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
            total += stat
                .split_whitespace()
                .next()
                .unwrap_or("0")
                .parse::<u64>()?;
        }
    }
    Ok(Duration::from_nanos(total))
}
