//! App clients (docs/protocol.md 2.2-2.4), as the generator runs them: a shard is one thread with a
//! single-threaded tokio runtime holding many client tasks. Each task connects with a JWT,
//! reads `connected`, sends a signed `enter_room_report`, and then reads room events until
//! told to stop, checking every `seq` and timing every danmu event from its `ts`.
//!
//! The protocol is `actors::protocol::app_client`'s (the query, signed frames, reading the
//! greeting and acks), shared with `danmu-broker listen` and the tests, and the token is the
//! broker's own `danmu_broker::auth`; this file and `churn.rs` add the transport and the
//! counting. Cheap on purpose where it is paid per event: no JSON parsing of room events (see
//! `scan`), no allocation per frame (see `ws`), and the shard's counters are locked once per
//! socket read, not once per event.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::protocol::app_client::{BrokerFrame, CommonParams, Signer};
use actors::protocol::client::{AckDetail, ClientRequest};
use danmu_broker::auth;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use crate::control::{now_ms, now_us, Control};
use crate::scan;
use crate::stats::ClientStats;
use crate::ws::{self, FrameReader, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

/// Where the run is, as the clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Record the last seq seen (the tail check), keep the connection.
    Report,
    /// Close.
    Stop,
}

/// One client to run.
pub struct ClientSpec {
    pub index: usize,
    pub user_id: String,
    pub sid: String,
    pub room: usize,
    pub channel_name: String,
}

/// What one shard reports: per-step counters, and each client's last `seq` at the end.
#[derive(Default)]
pub struct ShardStats {
    pub steps: Vec<ClientStats>,
    /// (room, last seq seen) of every client still connected at the end.
    pub last_seqs: Vec<(usize, u64)>,
}

pub struct ShardConfig {
    /// The nodes; client `index` of room `index % rooms` connects to
    /// `host_ports[(index / rooms) % len]`, so that every room has members on every node.
    pub host_ports: Vec<String>,
    pub rooms: usize,
    pub client_path: String,
    pub jwt_secret: String,
    pub batch: bool,
    /// Offer permessage-deflate (docs/protocol.md 2.8), and inflate what comes compressed.
    pub deflate: bool,
    /// 1 in this many clients (index 0, N, 2N...) inflates, scans and checks every event; the
    /// others read their bytes and drop them (see `Options::check_every`).
    pub check_every: usize,
    pub connect_rate: u64,
    pub ping_every: Duration,
}

/// Runs one shard to completion (blocking); `stop` turning true ends it.
pub fn run_shard(
    cfg: Arc<ShardConfig>,
    clients: Vec<ClientSpec>,
    ctl: Arc<Control>,
    stats: Arc<Mutex<ShardStats>>,
    stop: watch::Receiver<Phase>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("danmu-bench: client runtime: {e}");
            ctl.failed.fetch_add(clients.len(), std::sync::atomic::Ordering::Relaxed);
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let start = Instant::now();
        let gap = Duration::from_secs_f64(1.0 / cfg.connect_rate.max(1) as f64);
        let mut tasks = Vec::with_capacity(clients.len());
        let errors = std::rc::Rc::new(std::cell::Cell::new(0u32));
        for (i, spec) in clients.into_iter().enumerate() {
            // Paced connect phase: the broker should not see a SYN flood.
            sleep_until(start + gap * i as u32).await;
            if *stop.borrow() != Phase::Running {
                break;
            }
            let (cfg, ctl, stats, stop, errors) =
                (cfg.clone(), ctl.clone(), stats.clone(), stop.clone(), errors.clone());
            tasks.push(tokio::task::spawn_local(async move {
                let outcome = run_client(&cfg, &spec, &ctl, &stats, stop).await;
                if let Err(e) = outcome {
                    // The first few errors of a shard say what is wrong; thousands would not.
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
}

/// The path and query of the upgrade (docs/protocol.md 2.2) for `user_id` on device `sid`, with a
/// token for a day signed with `secret`.
pub(crate) fn upgrade_target(client_path: &str, secret: &str, user_id: &str, sid: &str, batch: bool) -> String {
    let token = auth::issue(secret, &auth::claims_for(user_id, Some(user_id.to_string()), 86_400));
    let params = CommonParams { user_id, sid, timestamp: now_ms(), token: &token };
    format!("{client_path}?{}", params.upgrade_query(batch))
}

/// `request` as a signed text frame (docs/protocol.md 2.3) of the connection `online_token`, `sid`.
pub(crate) fn signed_frame(request: &ClientRequest, online_token: &str, sid: &str) -> String {
    Signer { online_token, sid }.request(request, now_ms())
}

/// Reads frames until `connected`; answers its `online_token`.
pub(crate) async fn greeting(stream: &mut TcpStream, reader: &mut FrameReader) -> std::io::Result<String> {
    next_text(stream, reader, |p| match BrokerFrame::parse(p) {
        Ok(BrokerFrame::Connected { online_token, .. }) => Some(online_token),
        _ => None,
    })
    .await
}

/// Reads frames until the `ack` or `error` answering `action`; `other` sees every other text
/// frame (room events before the answer). A refusal is an error.
pub(crate) async fn answer(
    stream: &mut TcpStream,
    reader: &mut FrameReader,
    action: &str,
    mut other: impl FnMut(&[u8]),
) -> std::io::Result<AckDetail> {
    let answer = next_text(stream, reader, |p| {
        let answer = BrokerFrame::parse(p).ok().and_then(|frame| frame.answer_to(action));
        if answer.is_none() {
            other(p);
        }
        answer
    })
    .await?;
    answer.map_err(|(code, reason)| err(format!("{action} refused with {code}: {reason}")))
}

/// Per-connection `seq` bookkeeping: every event with a `seq` must be the previous + 1, except
/// the member's own `enter_room` (not sent to it).
pub(crate) struct SeqCheck {
    last: u64,
    own: u64,
    /// Seqs skipped over (bounded), so that a late one counts as out of order, not duplicate.
    missing: Vec<u64>,
}

const MISSING_CAP: usize = 4096;

impl SeqCheck {
    /// Checks the events after a join whose own `enter_room` had `own_seq`.
    pub(crate) fn after_join(own_seq: u64) -> Self {
        Self { last: own_seq, own: own_seq, missing: Vec::new() }
    }

    pub(crate) fn observe(&mut self, seq: u64, st: &mut ClientStats) {
        self.count(seq, &mut st.lost, &mut st.duplicated, &mut st.out_of_order);
    }

    /// [`SeqCheck::observe`] into bare counters.
    pub(crate) fn count(&mut self, seq: u64, lost: &mut i64, duplicated: &mut u64, out_of_order: &mut u64) {
        if seq > self.last {
            for gap in self.last + 1..seq {
                if gap == self.own {
                    continue;
                }
                *lost += 1;
                if self.missing.len() < MISSING_CAP {
                    self.missing.push(gap);
                }
            }
            self.last = seq;
        } else if let Some(at) = self.missing.iter().position(|&m| m == seq) {
            self.missing.swap_remove(at);
            *lost -= 1;
            *out_of_order += 1;
        } else {
            *duplicated += 1;
        }
    }
}

type Io = std::io::Result<()>;

fn err(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::other(msg.into())
}

async fn run_client(
    cfg: &ShardConfig,
    spec: &ClientSpec,
    ctl: &Control,
    stats: &Mutex<ShardStats>,
    mut stop: watch::Receiver<Phase>,
) -> Io {
    use std::sync::atomic::Ordering::Relaxed;
    let joined = timeout(Duration::from_secs(60), join(cfg, spec, None)).await;
    let (mut stream, mut reader, online_token, own_seq) = match joined {
        Ok(Ok(j)) => j,
        Ok(Err(e)) => {
            ctl.failed.fetch_add(1, Relaxed);
            return Err(e);
        }
        Err(_) => {
            ctl.failed.fetch_add(1, Relaxed);
            return Err(err("join timed out"));
        }
    };
    ctl.joined.fetch_add(1, Relaxed);
    ctl.joined_per_room[spec.room].fetch_add(1, Relaxed);
    let checking = spec.index.is_multiple_of(cfg.check_every.max(1));
    if checking {
        ctl.checking_per_room[spec.room].fetch_add(1, Relaxed);
    } else {
        reader.skip_compressed();
    }
    let mut seq = SeqCheck::after_join(own_seq);
    let mut mask = spec.index as u32;
    let mut out = Vec::new();
    // Spread the clients' pings over the interval.
    let spread = cfg.ping_every.as_millis() as u64 * (spec.index as u64 % 100) / 100;
    let mut next_ping = Instant::now() + Duration::from_millis(spread.max(1));
    let closed = std::cell::Cell::new(false);
    let mut reported = false;
    let scanner = scan::EventScanner::default();
    loop {
        tokio::select! {
            biased;
            changed = stop.changed() => {
                let phase = if changed.is_ok() { *stop.borrow_and_update() } else { Phase::Stop };
                if !reported && phase != Phase::Running {
                    // Before anyone leaves: a leave is itself a room event with a seq.
                    reported = true;
                    if let (true, Ok(mut st)) = (checking, stats.lock()) {
                        st.last_seqs.push((spec.room, seq.last));
                    }
                }
                if phase == Phase::Stop {
                    break;
                }
            }
            n = reader.fill(&mut stream) => {
                let n = n?;
                if n == 0 {
                    let step = ctl.current_step();
                    if let Ok(mut st) = stats.lock() { st.steps[step].disconnected += 1; }
                    return Err(err("broker closed the connection"));
                }
                let now = now_us();
                let mut guard = stats.lock().map_err(|_| err("stats poisoned"))?;
                let steps = &mut guard.steps;
                let cur = ctl.current_step();
                // What the wire carried while the step was measured, by when it was read.
                let measuring = ctl.step_of(now / 1000).filter(|_| checking);
                if let Some(step) = measuring {
                    steps[step].wire_bytes += n as u64;
                }
                reader.drain(|op, payload| {
                    match op {
                        OP_TEXT => {
                            steps[cur].frames += 1;
                            if !checking {
                                return true;
                            }
                            scanner.for_each(payload, |e| {
                                if let Some(s) = e.seq {
                                    seq.observe(s, &mut steps[cur]);
                                }
                                if !scan::is_danmu(e.action) {
                                    return;
                                }
                                if let Some(step) = measuring {
                                    steps[step].wire_events += 1;
                                }
                                if let Some(step) = e.ts.and_then(|ts| ctl.step_of(ts)) {
                                    let st = &mut steps[step];
                                    st.delivered += 1;
                                    let ts_us = e.ts.unwrap_or(0) * 1000;
                                    st.latency_us.record((now - ts_us).max(0) as u64);
                                }
                            });
                        }
                        OP_PING => ws::encode_frame(&mut out, OP_PONG, payload, &mut mask),
                        OP_CLOSE => {
                            steps[cur].disconnected += 1;
                            closed.set(true);
                            return false;
                        }
                        _ => {}
                    }
                    true
                })?;
                if let Some(step) = measuring {
                    steps[step].inflate_ns += reader.take_inflate_time().as_nanos() as u64;
                }
                drop(guard);
                if closed.get() {
                    return Err(err("broker sent close"));
                }
            }
            _ = sleep_until(next_ping) => {
                let ping = signed_frame(&ClientRequest::Ping, &online_token, &spec.sid);
                ws::encode_frame(&mut out, OP_TEXT, ping.as_bytes(), &mut mask);
                next_ping = Instant::now() + cfg.ping_every;
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
    }
    out.clear();
    ws::encode_frame(&mut out, OP_CLOSE, &1000u16.to_be_bytes(), &mut mask);
    let _ = timeout(Duration::from_secs(1), stream.write_all(&out)).await;
    Ok(())
}

/// Connects (with `recv_buffer` as the socket's `SO_RCVBUF`, when given), reads `connected`,
/// joins the room; answers the stream, the reader (which may already hold events), the
/// `online_token` and the member's own `enter_room` seq.
pub(crate) async fn join(
    cfg: &ShardConfig,
    spec: &ClientSpec,
    recv_buffer: Option<u32>,
) -> std::io::Result<(TcpStream, FrameReader, String, u64)> {
    let target = upgrade_target(&cfg.client_path, &cfg.jwt_secret, &spec.user_id, &spec.sid, cfg.batch);
    let mut attempt = 0;
    let (mut stream, mut reader) = loop {
        let node = (spec.index / cfg.rooms.max(1)) % cfg.host_ports.len();
        match ws::connect_with(&cfg.host_ports[node], &target, recv_buffer, cfg.deflate).await {
            Ok(ok) => break ok,
            // A full accept queue refuses now and then while thousands connect: retry a little.
            Err(e) if attempt < 5 && e.kind() != std::io::ErrorKind::Other => {
                attempt += 1;
                sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let online_token = greeting(&mut stream, &mut reader).await?;
    let enter = ClientRequest::EnterRoom { channel_name: spec.channel_name.clone(), last_seq: None, epoch: None };
    let enter = signed_frame(&enter, &online_token, &spec.sid);
    let mut out = Vec::new();
    let mut mask = spec.index as u32 ^ 0x5bd1_e995;
    ws::encode_frame(&mut out, OP_TEXT, enter.as_bytes(), &mut mask);
    stream.write_all(&out).await?;
    let ack = answer(&mut stream, &mut reader, "enter_room_report", |_| {}).await?;
    Ok((stream, reader, online_token, ack.last_seq.unwrap_or(0)))
}

/// Reads frames until `pick` answers something for a text frame: the greeting, or the answer
/// to a request (`pick` sees the room events before it; they are not counted as deliveries).
pub(crate) async fn next_text<T>(
    stream: &mut TcpStream,
    reader: &mut FrameReader,
    mut pick: impl FnMut(&[u8]) -> Option<T>,
) -> std::io::Result<T> {
    loop {
        let mut found = None;
        let mut closed = false;
        reader.drain(|op, p| {
            if op == OP_CLOSE {
                closed = true;
                return false;
            }
            if op == OP_TEXT {
                found = pick(p);
            }
            found.is_none()
        })?;
        if let Some(v) = found {
            return Ok(v);
        }
        if closed {
            return Err(err("closed before joining"));
        }
        if reader.fill(stream).await? == 0 {
            return Err(err("closed before joining"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_check_tells_gaps_duplicates_and_late_events_apart() {
        let mut st = ClientStats::default();
        let mut s = SeqCheck { last: 5, own: 5, missing: Vec::new() };
        for seq in [6, 7, 9, 9, 8, 11] {
            s.observe(seq, &mut st);
        }
        assert_eq!((st.lost, st.duplicated, st.out_of_order), (1, 1, 1));
    }

    #[test]
    fn the_members_own_enter_room_is_not_a_gap() {
        let mut st = ClientStats::default();
        let mut s = SeqCheck { last: 3, own: 4, missing: Vec::new() };
        s.observe(5, &mut st);
        assert_eq!(st.lost, 0);
    }
}
