//! W7's members (`burst.rs`): readers, which read everything and check each item of the
//! burst, and members that read nothing once they have entered. A shard is one thread with a
//! single-threaded runtime, as in `client.rs`; what they saw is shared with the orchestrator
//! through [`Shared`].

use actors::protocol::client::ClientRequest;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout, Instant};

use crate::client::{join, signed_frame, ClientSpec, Phase, SeqCheck, ShardConfig};
use crate::control::now_us;
use crate::scan;
use crate::ws::{self, FrameReader, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

/// What a shard's members do.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// Read everything and check the burst's `items` items.
    Reader { items: u64 },
    /// Read nothing once entered (connected with this `SO_RCVBUF`), until told to report.
    Stalled { recv_buffer: u32 },
}

/// What one reader saw.
#[derive(Debug, Clone, Default)]
pub struct ReaderTally {
    pub items: u64,
    /// Bytes of the burst's events (their JSON).
    pub bytes: u64,
    /// Items whose number was not the one after the previous item's.
    pub misordered: u64,
    pub lost: i64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub cut: bool,
}

impl ReaderTally {
    /// Every item, once, in the order pushed, and no room event missing.
    pub fn complete(&self, items: u64) -> bool {
        self.items == items
            && !self.cut
            && (self.misordered, self.duplicated, self.out_of_order) == (0, 0, 0)
            && self.lost == 0
    }
}

/// Counters of the run's members, read by the orchestrator.
#[derive(Default)]
pub struct Shared {
    pub readers_joined: AtomicUsize,
    pub stalled_joined: AtomicUsize,
    pub failed: AtomicUsize,
    /// Readers that got as many items as the burst has.
    pub readers_done: AtomicUsize,
    pub readers_cut: AtomicUsize,
    /// Unix µs of the last reader's last item.
    pub last_item_us: AtomicI64,
    /// Each reader's tally, once told to report.
    pub readers: Mutex<Vec<ReaderTally>>,
    /// Members that read nothing, on reading again: a 1013 close frame found, the stream's end
    /// (or another close, or a reset) found, or neither within a few seconds.
    pub saw_1013: AtomicU64,
    pub saw_end: AtomicU64,
    pub still_open: AtomicU64,
}

impl Shared {
    /// Members that reported (readers their tally, the others what they found on reading).
    pub fn reported(&self) -> usize {
        let readers = self.readers.lock().map_or(0, |r| r.len());
        let stalled = self.saw_1013.load(Relaxed) + self.saw_end.load(Relaxed) + self.still_open.load(Relaxed);
        readers + stalled as usize
    }
}

/// Starts a shard of members on a thread of its own, connecting at `cfg.connect_rate`.
pub fn spawn_shard(
    name: String,
    cfg: Arc<ShardConfig>,
    specs: Vec<ClientSpec>,
    role: Role,
    shared: Arc<Shared>,
    stop: watch::Receiver<Phase>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let run = move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            shared.failed.fetch_add(specs.len(), Relaxed);
            return;
        };
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            let start = Instant::now();
            let gap = Duration::from_secs_f64(1.0 / cfg.connect_rate.max(1) as f64);
            let errors = std::rc::Rc::new(std::cell::Cell::new(0u32));
            let mut tasks = Vec::new();
            for (i, spec) in specs.into_iter().enumerate() {
                sleep_until(start + gap * i as u32).await;
                let (cfg, shared, stop, errors) = (cfg.clone(), shared.clone(), stop.clone(), errors.clone());
                tasks.push(tokio::task::spawn_local(async move {
                    let outcome = match role {
                        Role::Reader { items } => reader(&cfg, &spec, items, &shared, stop).await,
                        Role::Stalled { recv_buffer } => stalled(&cfg, &spec, recv_buffer, &shared, stop).await,
                    };
                    if let Err(e) = outcome {
                        if errors.get() < 3 {
                            errors.set(errors.get() + 1);
                            eprintln!("danmu-bench: client {}: {e}", spec.user_id);
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        });
    };
    std::thread::Builder::new().name(name).spawn(run).map_err(|e| e.to_string())
}

type Joined = (TcpStream, FrameReader, String, u64);

async fn enter(
    cfg: &ShardConfig,
    spec: &ClientSpec,
    recv_buffer: Option<u32>,
    shared: &Shared,
) -> std::io::Result<Joined> {
    match timeout(Duration::from_secs(60), join(cfg, spec, recv_buffer)).await {
        Ok(Ok(joined)) => Ok(joined),
        Ok(Err(e)) => {
            shared.failed.fetch_add(1, Relaxed);
            Err(e)
        }
        Err(_) => {
            shared.failed.fetch_add(1, Relaxed);
            Err(std::io::Error::other("join timed out"))
        }
    }
}

/// A reader: every event checked by `seq`, every item of the burst by its number.
async fn reader(
    cfg: &ShardConfig,
    spec: &ClientSpec,
    items: u64,
    shared: &Shared,
    mut stop: watch::Receiver<Phase>,
) -> std::io::Result<()> {
    let (mut stream, mut reader, online_token, own_seq) = enter(cfg, spec, None, shared).await?;
    shared.readers_joined.fetch_add(1, Relaxed);
    let mut seq = SeqCheck::after_join(own_seq);
    let mut t = ReaderTally::default();
    let mut next_item = 0u64;
    let scanner = scan::EventScanner::default();
    let (mut out, mut mask) = (Vec::new(), spec.index as u32);
    let mut next_ping = Instant::now() + cfg.ping_every * (spec.index as u32 % 100) / 100;
    loop {
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow_and_update() != Phase::Running {
                    break;
                }
            }
            n = reader.fill(&mut stream) => {
                if !matches!(n, Ok(n) if n > 0) {
                    t.cut = true;
                    break;
                }
                let mut closed = false;
                let drained = reader.drain(|op, payload| {
                    match op {
                        OP_TEXT => scanner.for_each(payload, |e| {
                            if let Some(s) = e.seq {
                                seq.count(s, &mut t.lost, &mut t.duplicated, &mut t.out_of_order);
                            }
                            if e.action != b"send_topic_msg" {
                                return;
                            }
                            t.items += 1;
                            t.bytes += e.raw.len() as u64;
                            match scan::first_number(e.raw, b"\"content\":").map(|n| n as u64) {
                                Some(n) if n == next_item => next_item += 1,
                                n => {
                                    t.misordered += 1;
                                    next_item = n.map_or(next_item, |n| n + 1);
                                }
                            }
                            if t.items == items {
                                shared.readers_done.fetch_add(1, Relaxed);
                                shared.last_item_us.fetch_max(now_us(), Relaxed);
                            }
                        }),
                        OP_PING => ws::encode_frame(&mut out, OP_PONG, payload, &mut mask),
                        OP_CLOSE => {
                            closed = true;
                            return false;
                        }
                        _ => {}
                    }
                    true
                });
                if closed || drained.is_err() {
                    t.cut = true;
                    break;
                }
            }
            _ = sleep_until(next_ping) => {
                let ping = signed_frame(&ClientRequest::Ping, &online_token, &spec.sid);
                ws::encode_frame(&mut out, OP_TEXT, ping.as_bytes(), &mut mask);
                next_ping = Instant::now() + cfg.ping_every;
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                t.cut = true;
                break;
            }
            out.clear();
        }
    }
    if t.cut {
        shared.readers_cut.fetch_add(1, Relaxed);
    }
    let cut = t.cut;
    if let Ok(mut all) = shared.readers.lock() {
        all.push(t);
    }
    if !cut {
        // Stay until told to stop: leaving is itself a room event the others would count.
        while !matches!(*stop.borrow_and_update(), Phase::Stop) {
            if stop.changed().await.is_err() {
                break;
            }
        }
        out.clear();
        ws::encode_frame(&mut out, OP_CLOSE, &1000u16.to_be_bytes(), &mut mask);
        let _ = timeout(Duration::from_secs(1), stream.write_all(&out)).await;
    }
    Ok(())
}

/// A member that reads nothing once entered, and pings so that only the slow-consumer rule can
/// close it; told to report, it reads again to see how its connection ended.
async fn stalled(
    cfg: &ShardConfig,
    spec: &ClientSpec,
    recv_buffer: u32,
    shared: &Shared,
    mut stop: watch::Receiver<Phase>,
) -> std::io::Result<()> {
    let (mut stream, mut reader, online_token, _) = enter(cfg, spec, Some(recv_buffer), shared).await?;
    shared.stalled_joined.fetch_add(1, Relaxed);
    let (mut out, mut mask) = (Vec::new(), spec.index as u32);
    let mut next_ping = Instant::now() + cfg.ping_every * (spec.index as u32 % 100) / 100;
    loop {
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow_and_update() != Phase::Running {
                    break;
                }
            }
            _ = sleep_until(next_ping) => {
                out.clear();
                let ping = signed_frame(&ClientRequest::Ping, &online_token, &spec.sid);
                ws::encode_frame(&mut out, OP_TEXT, ping.as_bytes(), &mut mask);
                // Once the broker has closed it, writing fails: that is expected.
                let _ = timeout(Duration::from_secs(1), stream.write_all(&out)).await;
                next_ping = Instant::now() + cfg.ping_every;
            }
        }
    }
    let found = match timeout(Duration::from_secs(20), read_to_close(&mut stream, &mut reader)).await {
        Ok(Some(1013)) => &shared.saw_1013,
        Ok(_) => &shared.saw_end,
        Err(_) => &shared.still_open,
    };
    found.fetch_add(1, Relaxed);
    Ok(())
}

/// Reads until a close frame (its code), the stream's end or an error (`None`); pending while
/// neither comes (the caller's timeout) or bytes still arrive within 3 s of each other.
async fn read_to_close(stream: &mut TcpStream, reader: &mut FrameReader) -> Option<u16> {
    loop {
        let mut code = None;
        let drained = reader.drain(|op, p| {
            if op == OP_CLOSE {
                code = Some(p.get(..2).map_or(1005, |c| u16::from_be_bytes([c[0], c[1]])));
                return false;
            }
            true
        });
        if code.is_some() || drained.is_err() {
            return code;
        }
        match timeout(Duration::from_secs(3), reader.fill(stream)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return None,
            Err(_) => std::future::pending::<()>().await,
        }
    }
}
