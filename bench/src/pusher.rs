//! BIGO pushers (docs/protocol.md 1.2, 1.4), as the generator runs them: one thread with a
//! single-threaded runtime holding every pusher connection, apart from the clients so that
//! a busy client side cannot delay the push schedule.
//!
//! Each pusher logs in, then writes signed `dataReception` frames on a schedule: open loop
//! (rate P shared by the pushers, due pushes sent every millisecond whether or not acks came
//! back, as production does) or closed loop (a window of outstanding pushes, the next sent as
//! each ack arrives: W4). A reader task matches acks to pushes by `seqid` for ack latency.
//!
//! The items are padded chat of a chosen size, or (`--realistic`, W6) the mix that `danmu-broker
//! simulate` pushes, made by its own generator (`danmu_simulator::Generator`) and wrapped in
//! this generator's pushes (numbered seqids, the run's rooms).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::protocol::bigo_client::{self, Answer};
use danmu_simulator::{AnchorBatch, Generator, PushData};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio::time::{sleep, timeout, Instant};

use crate::control::{now_ms, now_us, Control};
use crate::stats::PushStats;
use crate::ws::{self, FrameReader, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

pub struct PushConfig {
    /// The nodes; pusher `id` connects to `host_ports[id % len]`.
    pub host_ports: Vec<String>,
    pub bigo_path: String,
    pub account: String,
    pub password: String,
    pub platform_abbr: String,
    pub pushers: usize,
    pub rooms: Vec<String>,
    pub items_per_push: usize,
    /// Closed loop: outstanding pushes per pusher. Open loop: the most outstanding before a
    /// due push is skipped.
    pub window: usize,
    pub closed_loop: bool,
    /// Padding of each item's `content`.
    pub content: String,
    /// Items from `simulate`'s generator instead (`content` unused): 1 to `items_per_push`
    /// of them a push.
    pub realistic: bool,
}

/// Runs every pusher to completion (blocking) on its own runtime.
pub fn run_pushers(cfg: Arc<PushConfig>, ctl: Arc<Control>, stats: Arc<Mutex<Vec<PushStats>>>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("danmu-bench: pusher runtime: {e}");
            ctl.pushers_failed.fetch_add(cfg.pushers, Relaxed);
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut tasks = Vec::new();
        for id in 0..cfg.pushers {
            let (cfg, ctl, stats) = (cfg.clone(), ctl.clone(), stats.clone());
            tasks.push(tokio::task::spawn_local(async move {
                if let Err(e) = run_pusher(id, &cfg, &ctl, stats).await {
                    eprintln!("danmu-bench: pusher {id}: {e}");
                    ctl.pushers_failed.fetch_add(1, Relaxed);
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// What the reader needs to know about a push in flight (indexed by the pusher's push number).
#[derive(Clone, Copy, Default)]
struct InFlight {
    sent_us: i64,
    room: u32,
    /// Danmu items the push carried.
    items: u32,
    /// The step whose measurement window the push was sent in, if any.
    step: Option<u32>,
}

const RING: usize = 1 << 16;

struct Shared {
    inflight: RefCell<Vec<InFlight>>,
    sent: Cell<u64>,
    answered: Cell<u64>,
    acked_wakeup: Notify,
    failed: Cell<bool>,
    /// Pings seen by the reader, answered by the writer (which owns the socket's write half).
    pongs: RefCell<Vec<Vec<u8>>>,
}

fn err(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::other(msg.into())
}

async fn run_pusher(
    id: usize,
    cfg: &PushConfig,
    ctl: &Control,
    stats: Arc<Mutex<Vec<PushStats>>>,
) -> std::io::Result<()> {
    let LoggedIn { mut rd, mut wr, mut reader, mut mask, access_token } = log_in(id, cfg).await?;
    let mut out = Vec::with_capacity(64 * 1024);
    ctl.pushers_ready.fetch_add(1, Relaxed);

    let shared = Rc::new(Shared {
        inflight: RefCell::new(vec![InFlight::default(); RING]),
        sent: Cell::new(0),
        answered: Cell::new(0),
        acked_wakeup: Notify::new(),
        failed: Cell::new(false),
        pongs: RefCell::new(Vec::new()),
    });
    let reader_handle = {
        let shared = shared.clone();
        let stats = stats.clone();
        let ack = AckContext { pushers: cfg.pushers as u64, id: id as u64 };
        tokio::task::spawn_local(async move {
            if let Err(e) = read_acks(&mut rd, &mut reader, &shared, &stats, ack).await {
                eprintln!("danmu-bench: pusher {id}: ack reader: {e}");
            }
            shared.failed.set(true);
            shared.acked_wakeup.notify_one();
        })
    };
    let result = write_pushes(id, cfg, ctl, &stats, &shared, &mut wr, &mut mask, &access_token).await;
    reader_handle.abort();
    out.clear();
    ws::encode_frame(&mut out, OP_CLOSE, &1000u16.to_be_bytes(), &mut mask);
    let _ = timeout(Duration::from_secs(1), wr.write_all(&out)).await;
    result
}

/// A pusher connection once `platformLogin` was accepted.
pub(crate) struct LoggedIn {
    pub rd: OwnedReadHalf,
    pub wr: OwnedWriteHalf,
    pub reader: FrameReader,
    pub mask: u32,
    pub access_token: String,
}

/// Connects pusher `id` to its node and logs in (section 1.2).
pub(crate) async fn log_in(id: usize, cfg: &PushConfig) -> std::io::Result<LoggedIn> {
    let (stream, rest) = ws::connect(&cfg.host_ports[id % cfg.host_ports.len()], &cfg.bigo_path).await?;
    let (mut rd, mut wr) = stream.into_split();
    let mut reader = FrameReader::new(rest);
    let mut mask = 0x9e37_79b9u32 ^ id as u32;
    let mut out = Vec::with_capacity(64 * 1024);

    // platformLogin (section 1.2).
    let login = bigo_client::login_request(&cfg.account, &cfg.password, &cfg.platform_abbr, now_ms());
    ws::encode_frame(&mut out, OP_TEXT, login.as_bytes(), &mut mask);
    wr.write_all(&out).await?;
    out.clear();
    let access_token = timeout(Duration::from_secs(10), async {
        loop {
            let mut token = None;
            let mut answered = false;
            reader.drain(|op, p| {
                if op == OP_TEXT {
                    answered = true;
                    let answer = std::str::from_utf8(p).ok().and_then(|t| bigo_client::parse_answer(t).ok());
                    token = match answer {
                        Some(Answer::Login(login)) => login.accepted_token().map(str::to_string),
                        _ => None,
                    };
                    if token.is_none() {
                        eprintln!("danmu-bench: pusher {id}: login refused: {}", String::from_utf8_lossy(p));
                    }
                    return false;
                }
                true
            })?;
            if let Some(token) = token {
                return Ok(token);
            }
            if answered {
                return Err(err("login refused (check --account/--password/--platform-abbr)"));
            }
            if reader.fill(&mut rd).await? == 0 {
                return Err(err("closed during login"));
            }
        }
    })
    .await
    .map_err(|_| err("login timed out"))??;
    Ok(LoggedIn { rd, wr, reader, mask, access_token })
}

#[derive(Clone, Copy)]
struct AckContext {
    pushers: u64,
    id: u64,
}

/// Reads `dataReceptionResp` frames and accounts each against its push.
async fn read_acks(
    rd: &mut OwnedReadHalf,
    reader: &mut FrameReader,
    shared: &Shared,
    stats: &Mutex<Vec<PushStats>>,
    ack: AckContext,
) -> std::io::Result<()> {
    loop {
        if reader.fill(rd).await? == 0 {
            return Err(err("broker closed the BIGO connection"));
        }
        let now = now_us();
        let mut guard = stats.lock().map_err(|_| err("stats poisoned"))?;
        let inflight = shared.inflight.borrow();
        let mut closed = false;
        reader.drain(|op, p| {
            match op {
                OP_TEXT => {
                    let Some((seqid, rescode)) = data_answer(p) else {
                        return true;
                    };
                    // seqid = n * pushers + id, n this pusher's push number.
                    let n = seqid.saturating_sub(ack.id) / ack.pushers;
                    let f = inflight[(n as usize) % RING];
                    shared.answered.set(shared.answered.get() + 1);
                    if let Some(step) = f.step {
                        let st = &mut guard[step as usize];
                        if rescode == 200 {
                            st.acked += 1;
                            st.items_acked_per_room[f.room as usize] += u64::from(f.items);
                            st.ack_us.record((now - f.sent_us).max(0) as u64);
                        } else {
                            st.refused += 1;
                        }
                    }
                }
                OP_PING => shared.pongs.borrow_mut().push(p.to_vec()),
                OP_CLOSE => {
                    closed = true;
                    return false;
                }
                _ => {}
            }
            true
        })?;
        drop(inflight);
        drop(guard);
        shared.acked_wakeup.notify_one();
        if closed {
            return Err(err("broker sent close on the BIGO connection"));
        }
    }
}

/// `seqid` (this generator's are numbers) and `rescode` of a `dataReceptionResp`. Full JSON
/// parsing through the shared client module costs ~0.4 us per ack (a byte scan ~0.07 us):
/// under 2 % of a core at W4's ~40,000 acks/s.
pub(crate) fn data_answer(payload: &[u8]) -> Option<(u64, i64)> {
    match bigo_client::parse_answer(std::str::from_utf8(payload).ok()?) {
        Ok(Answer::Data(answer)) => Some((answer.seqid.parse().ok()?, answer.rescode)),
        _ => None,
    }
}

/// Writes pushes on the schedule until the run is done.
#[allow(clippy::too_many_arguments)]
async fn write_pushes(
    id: usize,
    cfg: &PushConfig,
    ctl: &Control,
    stats: &Mutex<Vec<PushStats>>,
    shared: &Shared,
    wr: &mut OwnedWriteHalf,
    mask: &mut u32,
    access_token: &str,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(256 * 1024);
    let mut n: u64 = 0;
    let mut epoch = u64::MAX;
    let mut phase_start = Instant::now();
    let mut phase_sent: u64 = 0;
    let pushers = cfg.pushers as u64;
    let tick = Duration::from_millis(1);
    let mut mix = if cfg.realistic { Some(realistic_mix(cfg, id)?) } else { None };
    while !ctl.done.load(Relaxed) {
        if shared.failed.get() {
            return Err(err("ack reader stopped"));
        }
        let e = ctl.epoch.load(Relaxed);
        if e != epoch {
            epoch = e;
            phase_start = Instant::now();
            phase_sent = 0;
        }
        let rate = ctl.rate.load(Relaxed);
        let pushing = ctl.pushing.load(Relaxed);
        for pong in shared.pongs.borrow_mut().drain(..) {
            ws::encode_frame(&mut out, OP_PONG, &pong, mask);
        }
        if !pushing {
            flush(wr, &mut out).await?;
            sleep(tick).await;
            continue;
        }
        let outstanding = |s: &Shared| s.sent.get() - s.answered.get();
        if cfg.closed_loop {
            while outstanding(shared) < cfg.window as u64 {
                push_one(id, cfg, ctl, stats, shared, &mut out, mask, access_token, &mut n, mix.as_mut());
            }
            flush(wr, &mut out).await?;
            // Woken by the reader on each batch of acks; the timeout re-checks the control flags.
            let _ = timeout(Duration::from_millis(50), shared.acked_wakeup.notified()).await;
            continue;
        }
        // Open loop: this pusher's share of `rate`, due since the phase began.
        let share = rate as f64 / pushers as f64;
        let due = (phase_start.elapsed().as_secs_f64() * share) as u64;
        while phase_sent < due {
            phase_sent += 1;
            if outstanding(shared) >= cfg.window as u64 {
                if let Some(step) = ctl.step_of(now_ms()) {
                    if let Ok(mut st) = stats.lock() {
                        st[step].skipped += 1;
                    }
                }
                continue;
            }
            push_one(id, cfg, ctl, stats, shared, &mut out, mask, access_token, &mut n, mix.as_mut());
        }
        flush(wr, &mut out).await?;
        sleep(tick).await;
    }
    flush(wr, &mut out).await
}

async fn flush(wr: &mut OwnedWriteHalf, out: &mut Vec<u8>) -> std::io::Result<()> {
    if !out.is_empty() {
        wr.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// Appends one signed `dataReception` to `out` and records it as in flight.
#[allow(clippy::too_many_arguments)]
fn push_one(
    id: usize,
    cfg: &PushConfig,
    ctl: &Control,
    stats: &Mutex<Vec<PushStats>>,
    shared: &Shared,
    out: &mut Vec<u8>,
    mask: &mut u32,
    access_token: &str,
    n: &mut u64,
    mix: Option<&mut Generator>,
) {
    let pushers = cfg.pushers as u64;
    let seqid = *n * pushers + id as u64;
    // Round-robin over the rooms across all pushers.
    let room = (seqid % cfg.rooms.len() as u64) as usize;
    let now = now_ms();
    let (data, items) = match mix {
        Some(mix) => realistic_push_data(mix, cfg, seqid, room, now),
        None => (push_data(cfg, seqid, room, now), cfg.items_per_push),
    };
    let frame = bigo_client::data_reception_request(&data, access_token, &cfg.platform_abbr, 0, now);
    ws::encode_frame(out, OP_TEXT, frame.as_bytes(), mask);
    let step = ctl.step_of(now);
    shared.inflight.borrow_mut()[(*n as usize) % RING] =
        InFlight { sent_us: now_us(), room: room as u32, items: items as u32, step: step.map(|s| s as u32) };
    if let Some(step) = step {
        if let Ok(mut st) = stats.lock() {
            st[step].sent += 1;
        }
    }
    shared.sent.set(shared.sent.get() + 1);
    *n += 1;
}

/// The `data` text of one push: `items_per_push` msg items for `room`, `ts` = now.
fn push_data(cfg: &PushConfig, seqid: u64, room: usize, now: i64) -> String {
    let mut items = String::with_capacity(cfg.items_per_push * (cfg.content.len() + 160));
    for k in 0..cfg.items_per_push {
        push_item(&mut items, seqid * cfg.items_per_push as u64 + k as u64, now, &cfg.content);
    }
    data_text(seqid, &cfg.rooms[room], now, &items)
}

/// A generator of `simulate`'s mix for pusher `id`, with `simulate`'s own defaults (viewers,
/// language) but for the items per push (1 to `items_per_push`) and the rate, set high so
/// that every item is made at the moment of its push (latency is timed from an item's `ts`).
fn realistic_mix(cfg: &PushConfig, id: usize) -> std::io::Result<Generator> {
    #[derive(clap::Parser)]
    struct Simulate {
        #[command(flatten)]
        opts: danmu_simulator::Options,
    }
    let items = cfg.items_per_push.to_string();
    let args = ["simulate", "--game-sess", &cfg.rooms[0], "--items", &items, "--rate", "1000"];
    let simulate = <Simulate as clap::Parser>::try_parse_from(args).map_err(|e| err(e.to_string()))?;
    Ok(Generator::new(&simulate.opts, now_ms() as u64 ^ ((id as u64) << 48)))
}

/// The `data` text of one push of the generator's items to `room`, and how many items it holds.
fn realistic_push_data(mix: &mut Generator, cfg: &PushConfig, seqid: u64, room: usize, now: i64) -> (String, usize) {
    let (items, _) = mix.items(now);
    let count = items.len();
    let seqid = seqid.to_string();
    let data = PushData {
        seqid: &seqid,
        timestamp: now,
        game_id: "10000",
        game_sess: &cfg.rooms[room],
        status: 2,
        danmu_data: vec![AnchorBatch { openid: "anchor-1", datas: items }],
    };
    (data.to_text(), count)
}

/// Appends one `msg` item (comma-separated after the first) to `items`.
pub(crate) fn push_item(items: &mut String, data_seq: u64, now: i64, content: &str) {
    use std::fmt::Write as _;
    if !items.is_empty() {
        items.push(',');
    }
    let _ = write!(
        items,
        r#"{{"type":"msg","user":"bench-viewer","nick_name":"Viewer","user_img":"{IMG}","ts":"{now}","data_seq":"{data_seq}","content":"{content}"}}"#
    );
}

/// The `data` text of one push of `items` (from [`push_item`]) to `game_sess`.
pub(crate) fn data_text(seqid: u64, game_sess: &str, now: i64, items: &str) -> String {
    format!(
        r#"{{"seqid":"{seqid}","timestamp":{now},"game_id":"10000","game_sess":"{game_sess}","status":2,"danmu_data":[{{"openid":"anchor-1","datas":[{items}]}}]}}"#
    )
}

pub const IMG: &str = "http://img.example/v.png";

/// Content length that makes a delivered `send_topic_msg` event about `event_bytes` long.
pub fn content_for(event_bytes: usize, channel_name: &str) -> String {
    let sample = format!(
        r#"{{"action":"send_topic_msg","user_id":"bench-viewer","nickname":"Viewer","sex":0,"avatar_url":"{IMG}","avatar_small_url":"{IMG}","content":"","channel_name":"{channel_name}","seq":100000,"ts":1700000000000}}"#
    );
    "x".repeat(event_bytes.saturating_sub(sample.len()).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One pusher over rooms `r0` and `r1`, three items a push.
    fn two_rooms(content: &str, realistic: bool) -> PushConfig {
        PushConfig {
            host_ports: vec![String::new()],
            bigo_path: String::new(),
            account: String::new(),
            password: String::new(),
            platform_abbr: String::new(),
            pushers: 1,
            rooms: vec!["r0".into(), "r1".into()],
            items_per_push: 3,
            window: 1,
            closed_loop: false,
            content: content.into(),
            realistic,
        }
    }

    #[test]
    fn content_pads_the_event_to_the_asked_size() {
        let content = content_for(250, "bench-1-0");
        let event = format!(
            r#"{{"action":"send_topic_msg","user_id":"bench-viewer","nickname":"Viewer","sex":0,"avatar_url":"{IMG}","avatar_small_url":"{IMG}","content":"{content}","channel_name":"bench-1-0","seq":100000,"ts":1700000000000}}"#
        );
        assert_eq!(event.len(), 250);
    }

    #[test]
    fn push_data_is_json_with_unique_data_seqs() {
        let cfg = two_rooms("xx", false);
        let v: serde_json::Value = serde_json::from_str(&push_data(&cfg, 7, 1, 5)).unwrap();
        assert_eq!(v["game_sess"], "r1");
        let seqs: Vec<&str> =
            v["danmu_data"][0]["datas"].as_array().unwrap().iter().map(|i| i["data_seq"].as_str().unwrap()).collect();
        assert_eq!(seqs, vec!["21", "22", "23"]);
    }

    #[test]
    fn a_realistic_push_carries_the_simulators_items_under_our_seqid_and_room() {
        let cfg = two_rooms("", true);
        let mut mix = realistic_mix(&cfg, 0).unwrap();
        let mut types = std::collections::HashSet::new();
        for seqid in 0..200 {
            let (data, items) = realistic_push_data(&mut mix, &cfg, seqid, 1, 5);
            let v: serde_json::Value = serde_json::from_str(&data).unwrap();
            assert_eq!((v["seqid"].as_str(), v["game_sess"].as_str()), (Some(seqid.to_string().as_str()), Some("r1")));
            let datas = v["danmu_data"][0]["datas"].as_array().unwrap();
            assert!((1..=3).contains(&items) && datas.len() == items);
            types.extend(datas.iter().map(|i| i["type"].as_str().unwrap().to_string()));
            assert!(datas.iter().all(|i| i["ts"] == "5"), "made at the push's moment");
        }
        assert_eq!(types.len(), 3, "msg, heart and gift: {types:?}");
    }
}
