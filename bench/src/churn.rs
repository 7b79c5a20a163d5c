//! W5's churn (issue 13): short-lived app clients that connect, join, chat and leave at a
//! steady rate while the run's long-lived members and pushers go on, a tenth of them cutting
//! their connection and coming back with `last_seq` and `epoch` (docs/protocol.md 2.3, 2.6).
//!
//! What it shows: that connections coming and going leave nothing behind in the broker (its
//! RSS after the first minute against the end, `lib.rs`), and that the members who stayed lose
//! nothing while it happens (their `seq` checks, as in every workload). Each churner is a task
//! on one single-threaded runtime; counters are atomics read by the orchestrator.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use actors::protocol::client::{AckDetail, ClientRequest};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use crate::client::{answer, greeting, signed_frame, upgrade_target};
use crate::scan;
use crate::ws::{self, FrameReader, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

pub struct ChurnConfig {
    pub host_port: String,
    pub client_path: String,
    pub jwt_secret: String,
    pub run_id: String,
    /// The rooms the long-lived members are in; churners join them too.
    pub rooms: Vec<String>,
    /// New churners per second.
    pub rate: u64,
    /// How long a churner stays in its room, reading.
    pub stay: Duration,
    /// One churner in this many reconnects with `last_seq` before leaving.
    pub reconnect_every: u64,
}

#[derive(Default)]
pub struct ChurnCounters {
    pub started: AtomicU64,
    pub joined: AtomicU64,
    pub chatted: AtomicU64,
    pub left: AtomicU64,
    pub reconnected: AtomicU64,
    /// Reconnects whose ack said `recovered: true`.
    pub recovered: AtomicU64,
    pub failed: AtomicU64,
}

impl ChurnCounters {
    pub fn summary(&self) -> String {
        format!(
            "churn: {} started, {} joined, {} chatted, {} left, {} reconnected with last_seq ({} recovered: true), {} failed",
            self.started.load(Relaxed),
            self.joined.load(Relaxed),
            self.chatted.load(Relaxed),
            self.left.load(Relaxed),
            self.reconnected.load(Relaxed),
            self.recovered.load(Relaxed),
            self.failed.load(Relaxed)
        )
    }
}

/// Runs churners from now for `duration` (blocking; its own thread and runtime), then waits
/// for the last ones to leave.
pub fn run(cfg: Arc<ChurnConfig>, counters: Arc<ChurnCounters>, duration: Duration) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        eprintln!("danmu-bench: churn runtime could not start");
        return;
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let start = Instant::now();
        let gap = Duration::from_secs_f64(1.0 / cfg.rate.max(1) as f64);
        let errors = std::rc::Rc::new(std::cell::Cell::new(0u32));
        let mut n: u64 = 0;
        let mut tasks = Vec::new();
        while start.elapsed() < duration {
            sleep_until(start + gap * n as u32).await;
            let (cfg, counters, errors) = (cfg.clone(), counters.clone(), errors.clone());
            counters.started.fetch_add(1, Relaxed);
            tasks.push(tokio::task::spawn_local(async move {
                let outcome = timeout(Duration::from_secs(30), churner(&cfg, n, &counters)).await;
                let failure = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some("timed out".into()),
                };
                if let Some(e) = failure {
                    counters.failed.fetch_add(1, Relaxed);
                    if errors.get() < 3 {
                        errors.set(errors.get() + 1);
                        eprintln!("danmu-bench: churner {n}: {e}");
                    }
                }
            }));
            n += 1;
            tasks.retain(|t| !t.is_finished());
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

fn err(msg: &str) -> std::io::Error {
    std::io::Error::other(msg.to_string())
}

struct Conn {
    stream: TcpStream,
    reader: FrameReader,
    online_token: String,
    mask: u32,
}

impl Conn {
    async fn open(cfg: &ChurnConfig, user_id: &str, sid: &str) -> std::io::Result<Self> {
        let target = upgrade_target(&cfg.client_path, &cfg.jwt_secret, user_id, sid, false);
        let (mut stream, rest) = ws::connect(&cfg.host_port, &target).await?;
        let mut reader = FrameReader::new(rest);
        let online_token = greeting(&mut stream, &mut reader).await?;
        Ok(Self { stream, reader, online_token, mask: 0x2545_f491 })
    }

    async fn send(&mut self, request: &ClientRequest, sid: &str) -> std::io::Result<()> {
        let frame = signed_frame(request, &self.online_token, sid);
        let mut out = Vec::new();
        ws::encode_frame(&mut out, OP_TEXT, frame.as_bytes(), &mut self.mask);
        self.stream.write_all(&out).await
    }

    /// Sends `request` and reads until its `ack` (a refusal is an error); answers the ack's
    /// detail. Tracks the highest `seq` seen in `last_seq`.
    async fn request(&mut self, request: ClientRequest, sid: &str, last_seq: &mut u64) -> std::io::Result<AckDetail> {
        self.send(&request, sid).await?;
        let scanner = scan::EventScanner::default();
        answer(&mut self.stream, &mut self.reader, request.action(), |p| {
            scanner.for_each(p, |e| *last_seq = e.seq.unwrap_or(0).max(*last_seq))
        })
        .await
    }

    /// Reads (answering pings) for `dur`, tracking the highest `seq`.
    async fn stay(&mut self, dur: Duration, last_seq: &mut u64) -> std::io::Result<()> {
        let until = Instant::now() + dur;
        let scanner = scan::EventScanner::default();
        loop {
            let mut out = Vec::new();
            let mut closed = false;
            let mask = &mut self.mask;
            self.reader.drain(|op, p| {
                match op {
                    OP_TEXT => scanner.for_each(p, |e| *last_seq = e.seq.unwrap_or(0).max(*last_seq)),
                    OP_PING => ws::encode_frame(&mut out, OP_PONG, p, mask),
                    OP_CLOSE => closed = true,
                    _ => {}
                }
                !closed
            })?;
            if closed {
                return Err(err("broker closed the connection"));
            }
            if !out.is_empty() {
                self.stream.write_all(&out).await?;
            }
            match timeout(until.saturating_duration_since(Instant::now()), self.reader.fill(&mut self.stream)).await {
                Err(_) => return Ok(()),
                Ok(Ok(0)) => return Err(err("broker closed the connection")),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    async fn close(mut self) {
        let mut out = Vec::new();
        ws::encode_frame(&mut out, OP_CLOSE, &1000u16.to_be_bytes(), &mut self.mask);
        let _ = self.stream.write_all(&out).await;
        let _ = self.stream.shutdown().await;
    }
}

/// One churner: connect, join, chat, stay, (maybe cut and recover), leave.
async fn churner(cfg: &ChurnConfig, n: u64, counters: &ChurnCounters) -> std::io::Result<()> {
    let user_id = format!("churn-{}-{n}", cfg.run_id);
    let sid = "c1";
    let channel = &cfg.rooms[(n as usize) % cfg.rooms.len().max(1)];
    let mut conn = Conn::open(cfg, &user_id, sid).await?;
    let mut last_seq = 0;
    let enter = ClientRequest::EnterRoom { channel_name: channel.clone(), last_seq: None, epoch: None };
    let ack = conn.request(enter, sid, &mut last_seq).await?;
    let epoch = ack.epoch;
    last_seq = last_seq.max(ack.last_seq.unwrap_or(0));
    counters.joined.fetch_add(1, Relaxed);
    let say = ClientRequest::SendTopicMsg { channel_name: channel.clone(), content: format!("churn {n}") };
    conn.request(say, sid, &mut last_seq).await?;
    counters.chatted.fetch_add(1, Relaxed);
    conn.stay(cfg.stay, &mut last_seq).await?;
    if cfg.reconnect_every > 0 && n.is_multiple_of(cfg.reconnect_every) {
        // Cut without a close handshake, as a phone losing its network does, and come back.
        drop(conn);
        sleep(Duration::from_millis(200)).await;
        conn = Conn::open(cfg, &user_id, sid).await?;
        let seq = i64::try_from(last_seq).unwrap_or(i64::MAX);
        let back = ClientRequest::EnterRoom { channel_name: channel.clone(), last_seq: Some(seq), epoch };
        let ack = conn.request(back, sid, &mut last_seq).await?;
        counters.reconnected.fetch_add(1, Relaxed);
        if ack.recovered == Some(true) {
            counters.recovered.fetch_add(1, Relaxed);
        }
        conn.stay(cfg.stay / 2, &mut last_seq).await?;
    }
    let exit = ClientRequest::ExitRoom { user_id, channel_name: channel.clone() };
    conn.request(exit, sid, &mut last_seq).await?;
    counters.left.fetch_add(1, Relaxed);
    conn.close().await;
    Ok(())
}
