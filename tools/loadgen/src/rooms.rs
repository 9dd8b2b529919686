//! `loadgen rooms CONNECTIONS MESSAGES SIZE URL [URL…]`: chat rooms of ten connections,
//! spread over the URLs (connection k goes to URL k mod N, and its room is k / 10, so a
//! room's members sit in every process). Each connection subscribes to its room (`sub
//! rROOM`), then sends MESSAGES publishes to it (`wpub rROOM BODY`, BODY of SIZE bytes
//! starting with the sender and a sequence number) that the server hands to every other
//! member. Every connection counts what it gets: a message it saw already or out of its
//! sender's order counts as duplicated, one that never came as lost (after ten quiet
//! seconds). Prints `deliveries/s N lost N duplicated N connections N wall_s N`, and with
//! LOADGEN_SERVER_PIDS the servers' CPU per delivery.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::fanout::ServerCpu;
use crate::{masked_text_frame, open_offering, Failure};

const ROOM: usize = 10;
/// How long a connection waits without a message before it counts the rest as lost (a
/// server under a CPU quota stalls for a while when it runs out of it).
const QUIET: Duration = Duration::from_secs(10);

/// What one connection received.
#[derive(Default)]
struct Tally {
    received: usize,
    duplicated: usize,
}

pub(crate) async fn rooms(
    connections: usize,
    messages: usize,
    size: usize,
    urls: &[String],
) -> Result<(), Failure> {
    if urls.is_empty() || size < 24 {
        return Err("rooms needs a URL and SIZE of at least 24".into());
    }
    let mut sockets: Vec<Option<TcpStream>> = (0..connections).map(|_| None).collect();
    for (which, url) in urls.iter().enumerate() {
        let mine: Vec<usize> = (which..connections).step_by(urls.len()).collect();
        let opened = open_offering(url, mine.len(), size, None).await?;
        for (index, ws) in mine.into_iter().zip(opened) {
            match ws.into_inner() {
                tokio_tungstenite::MaybeTlsStream::Plain(tcp) => sockets[index] = Some(tcp),
                _ => return Err("rooms needs ws:// URLs".into()),
            }
        }
    }
    let mut sockets: Vec<TcpStream> = sockets.into_iter().flatten().collect();
    for (index, tcp) in sockets.iter_mut().enumerate() {
        let subscribe = format!("sub r{}", index / ROOM);
        tcp.write_all(&masked_text_frame(subscribe.as_bytes()))
            .await?;
    }
    // The servers (and Redis, for a cluster) have every subscription after this.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let expected: Vec<usize> = (0..connections)
        .map(|index| {
            let room = index / ROOM;
            let members = connections.min((room + 1) * ROOM) - room * ROOM;
            (members - 1) * messages
        })
        .collect();
    let servers = ServerCpu::from_env()?;
    let started = Instant::now();
    let talking = sockets.into_iter().enumerate().map(|(index, tcp)| {
        let expected = expected[index];
        async move { talk(tcp, index, messages, size, expected).await }
    });
    let tallies = futures_util::future::join_all(talking).await;
    let mut delivered = 0;
    let mut duplicated = 0;
    let mut lost = 0;
    let mut last_delivery = Duration::ZERO;
    for (tally, expected) in tallies.into_iter().zip(&expected) {
        let (tally, finished) = tally?;
        delivered += tally.received.min(*expected);
        duplicated += tally.duplicated;
        lost += expected.saturating_sub(tally.received);
        last_delivery = last_delivery.max(finished);
    }
    let server_cpu = match servers {
        Some(servers) => format!(
            " server_cpu_us_per_delivery {:.2}",
            servers.used()?.as_secs_f64() * 1e6 / delivered.max(1) as f64
        ),
        None => String::new(),
    };
    println!(
        "deliveries/s {:.0} lost {lost} duplicated {duplicated} connections {connections} wall_s {:.2}{server_cpu}",
        delivered as f64 / last_delivery.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// Sends this connection's publishes, then reads until it has `expected` messages or a
/// second passes without one; returns its tally and when its last message came.
async fn talk(
    tcp: TcpStream,
    index: usize,
    messages: usize,
    size: usize,
    expected: usize,
) -> Result<(Tally, Duration), Failure> {
    let started = Instant::now();
    let (mut reader, mut writer) = tcp.into_split();
    let room = index / ROOM;
    let mut frames = Vec::new();
    for sequence in 0..messages {
        let mut body = format!("{index:010} {sequence:010} ");
        body.extend(std::iter::repeat_n('x', size.saturating_sub(body.len())));
        frames.extend(masked_text_frame(format!("wpub r{room} {body}").as_bytes()));
    }
    let sending = async move { writer.write_all(&frames).await.map(|()| writer) };
    let receiving = async {
        let mut tally = Tally::default();
        let mut last_seen: HashMap<usize, usize> = HashMap::new();
        let mut buffer = Vec::with_capacity(64 * 1024);
        let mut finished = started.elapsed();
        while tally.received < expected {
            let mut chunk = [0u8; 16 * 1024];
            let read = match tokio::time::timeout(QUIET, reader.read(&mut chunk)).await {
                Ok(read) => read?,
                Err(_) => break,
            };
            if read == 0 {
                break;
            }
            buffer.extend_from_slice(&chunk[..read]);
            let taken = count_frames(&buffer, &mut tally, &mut last_seen);
            buffer.drain(..taken);
            finished = started.elapsed();
        }
        Ok::<_, Failure>((tally, finished))
    };
    let (sent, received) = tokio::join!(sending, receiving);
    let _writer = sent?;
    received
}

/// Counts the whole frames at the start of `bytes` into `tally`; returns the bytes they
/// took.
fn count_frames(bytes: &[u8], tally: &mut Tally, last_seen: &mut HashMap<usize, usize>) -> usize {
    let mut at = 0;
    loop {
        let Some(&second) = bytes.get(at + 1) else {
            return at;
        };
        let (header, length) = match second & 0x7f {
            126 => match bytes.get(at + 2..at + 4) {
                Some(extended) => (
                    4,
                    usize::from(u16::from_be_bytes([extended[0], extended[1]])),
                ),
                None => return at,
            },
            127 => return at,
            short => (2, usize::from(short)),
        };
        let Some(payload) = bytes.get(at + header..at + header + length) else {
            return at;
        };
        at += header + length;
        let mut fields = payload.split(|byte| *byte == b' ');
        let parse = |field: Option<&[u8]>| {
            field
                .and_then(|field| std::str::from_utf8(field).ok())
                .and_then(|text| text.parse::<usize>().ok())
        };
        let (Some(sender), Some(sequence)) = (parse(fields.next()), parse(fields.next())) else {
            continue;
        };
        tally.received += 1;
        match last_seen.insert(sender, sequence) {
            Some(before) if before >= sequence => tally.duplicated += 1,
            _ => {}
        }
    }
}
