//! loadgen: drives a WebSocket server for the benchmarks under bench/.
//!
//! `loadgen idle URL N SECONDS`: opens N connections (at most 200 handshakes at a time),
//! prints `open N` once all are open, holds them idle for SECONDS, then checks that each
//! still echoes one message and prints `echoed N`.
//!
//! `loadgen echo URL COUNT SIZE`: one connection sends COUNT text messages of SIZE bytes,
//! one at a time, each after the previous one's echo; prints messages per second and the
//! median and 99th percentile round trip in microseconds.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

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
            echo(url, count, size).await
        }
        _ => Err("usage: loadgen idle URL N SECONDS | loadgen echo URL COUNT SIZE".into()),
    }
}

async fn idle(url: &str, count: usize, hold: Duration) -> Result<(), Failure> {
    let gate = std::rc::Rc::new(Semaphore::new(200));
    let mut opening = Vec::with_capacity(count);
    for _ in 0..count {
        let gate = gate.clone();
        let url = url.to_string();
        opening.push(async move {
            let _permit = gate.acquire().await?;
            let (ws, _) = tokio_tungstenite::connect_async(url).await?;
            Ok::<_, Failure>(ws)
        });
    }
    let mut open = Vec::with_capacity(count);
    for result in futures_util::future::join_all(opening).await {
        open.push(result?);
    }
    println!("open {}", open.len());
    tokio::time::sleep(hold).await;
    let mut echoed = 0;
    for ws in &mut open {
        ws.send(Message::text("still there?")).await?;
        if let Some(Ok(Message::Text(_))) = ws.next().await {
            echoed += 1;
        }
    }
    println!("echoed {echoed}");
    Ok(())
}

async fn echo(url: &str, count: usize, size: usize) -> Result<(), Failure> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let payload = "x".repeat(size);
    let mut round_trips = Vec::with_capacity(count);
    let started = std::time::Instant::now();
    for _ in 0..count {
        let sent = std::time::Instant::now();
        ws.send(Message::text(payload.as_str())).await?;
        match ws.next().await {
            Some(Ok(Message::Text(echoed))) if echoed.len() == size => {}
            other => return Err(format!("unexpected answer: {other:?}").into()),
        }
        round_trips.push(sent.elapsed());
    }
    let elapsed = started.elapsed();
    round_trips.sort();
    let percentile =
        |p: usize| round_trips[(round_trips.len() * p / 100).min(round_trips.len() - 1)];
    println!(
        "messages/s {:.0} median_us {} p99_us {}",
        count as f64 / elapsed.as_secs_f64(),
        percentile(50).as_micros(),
        percentile(99).as_micros()
    );
    ws.close(None).await?;
    Ok(())
}
