//! `loadgen channels REDIS_URL LAYOUT SPREAD TOPICS PUBLISHES [PROCESSES]`: the two ways a cluster can
//! carry topic publishes over Redis, compared where they differ. LAYOUT `per-topic`: one
//! channel per topic, which a process subscribes to while it has a subscriber of that
//! topic (what the server does); `one`: every publish on one channel with its topic inside,
//! which every process hears and drops what it has no subscriber for. The processes (2 unless
//! told) are played by threads, each with a Redis connection of its own as a server's cluster
//! thread has (the same redis crate, one SUBSCRIBE per topic as topics get subscribers);
//! SPREAD `one`: each topic has subscribers in one process (topic k in process k mod
//! PROCESSES), `all`: in every process. The publisher pipelines PUBLISH commands to the topics in turn, as the
//! cluster thread does.
//!
//! Prints the time to subscribe, publishes per second until both processes had all of
//! theirs, the CPU time per publish of redis-server (LOADGEN_REDIS_PID) and of the
//! processes' Redis threads together, and the messages each process received.

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::{cpu_of, Failure};

const CHANNEL: &str = "bench-channels";
const PIPELINE: usize = 512;
const BODY: &str = "a chat message of sixty-four bytes, as the fan-out benchmark sends";

/// What one process's Redis thread found.
struct Heard {
    subscribe: Duration,
    cpu: Duration,
    received: usize,
}

pub(crate) async fn channels(
    url: &str,
    layout: &str,
    spread: &str,
    topics: usize,
    publishes: usize,
    processes: usize,
) -> Result<(), Failure> {
    let per_topic = match layout {
        "per-topic" => true,
        "one" => false,
        _ => return Err("LAYOUT is per-topic or one".into()),
    };
    let everywhere = match spread {
        "all" => true,
        "one" => false,
        _ => return Err("SPREAD is one or all".into()),
    };
    let redis_pid: Vec<u32> = match std::env::var("LOADGEN_REDIS_PID") {
        Ok(pid) => vec![pid.parse()?],
        Err(_) => Vec::new(),
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut threads = Vec::new();
    for process in 0..processes {
        let local: HashSet<String> = (0..topics)
            .filter(|topic| everywhere || topic % processes == process)
            .map(|topic| format!("t{topic}"))
            .collect();
        let expected = (0..publishes)
            .filter(|round| local.contains(&format!("t{}", round % topics)))
            .count();
        let (url, ready) = (url.to_string(), ready_tx.clone());
        threads.push(std::thread::spawn(move || {
            hear(&url, per_topic, local, expected, ready).map_err(|err| err.to_string())
        }));
    }
    for _ in 0..processes {
        ready_rx.recv()?;
    }
    let client = redis::Client::open(url)?;
    let mut publisher = client.get_multiplexed_async_connection().await?;
    let redis_before = cpu_of(&redis_pid)?;
    let started = Instant::now();
    for first in (0..publishes).step_by(PIPELINE) {
        let mut pipeline = redis::pipe();
        for round in first..(first + PIPELINE).min(publishes) {
            let topic = format!("t{}", round % topics);
            let channel = match per_topic {
                true => format!("{CHANNEL}:topic:{topic}"),
                false => CHANNEL.to_string(),
            };
            pipeline
                .cmd("PUBLISH")
                .arg(channel)
                .arg(format!("{topic}\n{BODY}"))
                .ignore();
        }
        pipeline.query_async::<()>(&mut publisher).await?;
    }
    let mut heard = Vec::new();
    for thread in threads {
        heard.push(thread.join().map_err(|_| "a process thread panicked")??);
    }
    let wall = started.elapsed();
    let redis_cpu = cpu_of(&redis_pid)?.saturating_sub(redis_before);
    let per_publish = |cpu: Duration| cpu.as_secs_f64() * 1e6 / publishes as f64;
    let processes_cpu: Duration = heard.iter().map(|heard| heard.cpu).sum();
    let subscribe = heard
        .iter()
        .map(|heard| heard.subscribe)
        .max()
        .unwrap_or_default();
    let received: Vec<String> = heard.iter().map(|h| h.received.to_string()).collect();
    println!(
        "layout {layout} spread {spread} processes {processes} topics {topics} subscribe_s {:.3} publishes/s {:.0} redis_cpu_us_per_publish {:.2} processes_cpu_us_per_publish {:.2} received {}",
        subscribe.as_secs_f64(),
        publishes as f64 / wall.as_secs_f64(),
        per_publish(redis_cpu),
        per_publish(processes_cpu),
        received.join("/"),
    );
    Ok(())
}

/// One process's Redis thread: subscribes to what it should hear, tells `ready`, then
/// receives until `expected` messages for its local topics came, dropping the others.
fn hear(
    url: &str,
    per_topic: bool,
    local: HashSet<String>,
    expected: usize,
    ready: mpsc::Sender<()>,
) -> Result<Heard, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = redis::Client::open(url)?;
        let mut subscriber = client.get_async_pubsub().await?;
        let started = Instant::now();
        if per_topic {
            for topic in &local {
                subscriber
                    .subscribe(format!("{CHANNEL}:topic:{topic}"))
                    .await?;
            }
        } else {
            subscriber.subscribe(CHANNEL).await?;
        }
        let subscribe = started.elapsed();
        ready.send(())?;
        let mut messages = subscriber.on_message();
        let cpu_before = thread_cpu()?;
        let (mut received, mut delivered) = (0, 0);
        while delivered < expected {
            let message = messages.next().await.ok_or("the subscription ended")?;
            received += 1;
            let payload = message.get_payload_bytes();
            let topic = payload
                .split(|byte| *byte == b'\n')
                .next()
                .unwrap_or_default();
            if std::str::from_utf8(topic).is_ok_and(|topic| local.contains(topic)) {
                delivered += 1;
            }
        }
        Ok(Heard {
            subscribe,
            cpu: thread_cpu()?.saturating_sub(cpu_before),
            received,
        })
    })
}

/// The CPU time this thread has used (the scheduler's count, in nanoseconds).
fn thread_cpu() -> Result<Duration, Failure> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let nanos = stat.split_whitespace().next().unwrap_or("0").parse()?;
    Ok(Duration::from_nanos(nanos))
}
