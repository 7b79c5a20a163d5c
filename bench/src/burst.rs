//! W7 (issue 19): one burst into a room half of whose members read nothing.
//!
//! What it shows: whether the broker holds a burst once per room or once per member. The
//! members join one room, the readers first, then `stalled` members that stop reading once they
//! have entered: they connect with a small `SO_RCVBUF`, so that the broker's writes to them
//! stall at once, and go on sending `ping`s, so that only the slow-consumer rule can close them
//! (docs/protocol.md 2.3). One pusher then writes `items` danmu of about `event_bytes` each,
//! `items_per_push` a push, every push at once. Measured:
//! - the broker's RSS (`/proc`): before the burst; its peak during it, from VmHWM (reset just
//!   before the burst through `/proc/<pid>/clear_refs`) and from VmRSS sampled every 5 ms;
//!   after it (every reader done, every member that read nothing gone). The growth is reported
//!   per member that read nothing and as a multiple of the burst (the bytes of its events, as a
//!   reader got them);
//! - that every reader got every item once and in the order pushed (`seq`, and the item's
//!   number at the start of its content);
//! - the members closed as too slow (the broker's `danmu_slow_clients_disconnected_total`,
//!   scraped from `/metrics` every 100 ms, and when it reached its final value), when the
//!   broker's client connections came down to the readers, and what each member that read
//!   nothing finds on reading again at the end (a 1013 close frame, or the stream's end).
//!
//! The clients themselves are in [`crate::burst_clients`].

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::timeout;

use crate::burst_clients::{spawn_shard, Role, Shared};
use crate::client::{ClientSpec, Phase, ShardConfig};
use crate::control::{now_ms, now_us};
use crate::options::{Options, Plan};
use crate::pusher::{self, PushConfig};
use crate::ws::{self, OP_TEXT};
use crate::{procfs, say};

/// The result of a burst run: one table row and one JSON line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BurstReport {
    pub label: String,
    pub nodes: usize,
    pub readers: usize,
    pub stalled: usize,
    pub items: usize,
    pub items_per_push: usize,
    pub pushes: usize,
    pub acked: u64,
    pub refused: u64,
    /// From the first push written to the last answer.
    pub ack_all_ms: f64,
    /// The burst as the readers got it: the bytes of its events (JSON), or `items` x
    /// `event_bytes` when no reader got them all (`burst_bytes_measured` false).
    pub burst_bytes: u64,
    pub burst_bytes_measured: bool,
    pub rss_before_kb: u64,
    pub rss_peak_kb: u64,
    /// "VmHWM" when it could be reset before the burst (and is the larger), else "sampled".
    pub rss_peak_from: String,
    pub rss_after_kb: u64,
    /// Peak minus before.
    pub rss_growth_kb: u64,
    pub rss_growth_x_burst: f64,
    pub rss_growth_per_stalled_kb: f64,
    /// The machine's TCP socket buffers (kernel memory, broker and generator alike) before the
    /// burst and at their peak, sampled with the RSS.
    pub tcp_mem_before_kb: u64,
    pub tcp_mem_peak_kb: u64,
    /// Readers that got every item once and in the order pushed.
    pub readers_complete: usize,
    /// Readers the broker closed.
    pub readers_cut: usize,
    pub reader_items_min: u64,
    pub lost: i64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Items whose number was not the one after the previous item's.
    pub misordered: u64,
    /// From the first push to the last reader's last item.
    pub last_item_ms: f64,
    /// The broker's slow-consumer closes during the run (readers included).
    pub slow_closed: u64,
    /// From the first push to the first of those closes, and to when their count reached its
    /// final value.
    pub slow_first_ms: f64,
    pub slow_closed_ms: f64,
    /// From the first push to when that count first reached the number of members that read
    /// nothing (readers cut by then included: the broker's log says who went why); 0 = never.
    pub stalled_closed_ms: f64,
    /// Slow-consumer closes counted within the reorder window, the write timeout and 1.5 s of
    /// the first push (the room holds danmu for the window, the broker checks every 500 ms,
    /// and the sockets take a moment to fill).
    pub slow_in_time: u64,
    /// From the first push to when the broker's client connections came down to the readers
    /// still connected (every member that read nothing gone); 0 when never seen.
    pub stalled_gone_ms: f64,
    /// What the members that read nothing found on reading again at the end.
    pub stalled_saw_1013: u64,
    pub stalled_saw_end: u64,
    pub stalled_open: u64,
    pub write_timeout_ms: u64,
    pub broker_cpu_s: f64,
    pub load_avg_1m: f64,
    /// Every reader complete, and every member that read nothing closed as too slow (as many
    /// closes as such members). When is in the times above: the broker closes a member
    /// `client.write_timeout_ms` after *its* socket stopped taking bytes, which on a busy
    /// broker is later than the first push.
    pub ok: bool,
}

impl BurstReport {
    pub const HEADER: &'static str = "label      readers stalled items burstMB ack_ms  last_ms  complete cut  lost dup ooo misord slow  in_time first_ms slow_ms stal_ms gone_ms saw1013 RSS0_MB peakMB afterMB growMB xBurst KB/stalled tcpMB  load  ok";

    pub fn row(&self) -> String {
        let mb = |kb: u64| kb as f64 / 1024.0;
        format!(
            "{:<10} {:<7} {:<7} {:<5} {:<7.2} {:<7.0} {:<8.0} {:<8} {:<4} {:<4} {:<3} {:<3} {:<6} {:<5} {:<7} {:<8.0} {:<7.0} {:<7.0} {:<7.0} {:<7} {:<7.1} {:<6.1} {:<7.1} {:<6.1} {:<6.2} {:<10.1} {:<6.0} {:<5.2} {}",
            self.label,
            self.readers,
            self.stalled,
            self.items,
            self.burst_bytes as f64 / 1e6,
            self.ack_all_ms,
            self.last_item_ms,
            self.readers_complete,
            self.readers_cut,
            self.lost,
            self.duplicated,
            self.out_of_order,
            self.misordered,
            self.slow_closed,
            self.slow_in_time,
            self.slow_first_ms,
            self.slow_closed_ms,
            self.stalled_closed_ms,
            self.stalled_gone_ms,
            self.stalled_saw_1013,
            mb(self.rss_before_kb),
            mb(self.rss_peak_kb),
            mb(self.rss_after_kb),
            mb(self.rss_growth_kb),
            self.rss_growth_x_burst,
            self.rss_growth_per_stalled_kb,
            mb(self.tcp_mem_peak_kb.saturating_sub(self.tcp_mem_before_kb)),
            self.load_avg_1m,
            if self.ok { "yes" } else { "NO" },
        )
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Runs a burst plan (blocking): connects, pushes the burst, measures, reports.
pub fn run(opts: &Options, plan: &Plan, brokers: Option<&[u32]>) -> Result<BurstReport, String> {
    let b = plan.burst.clone().ok_or("not a burst plan")?;
    let readers = plan.clients - b.stalled;
    let run_id = format!("{:x}", now_ms() % 0xff_ffff);
    let channel = format!("bench-{run_id}-0");
    let shared = Arc::new(Shared::default());
    let (stop_tx, stop_rx) = watch::channel(Phase::Running);
    let threads = opts.client_threads.max(1);
    let cfg = Arc::new(ShardConfig {
        host_ports: plan.host_ports.clone(),
        rooms: 1,
        client_path: opts.client_path.clone(),
        jwt_secret: opts.jwt_secret.clone(),
        batch: plan.batch,
        deflate: opts.deflate,
        // Every reader counts its items (burst_clients.rs does not sample).
        check_every: 1,
        connect_rate: (opts.connect_rate / threads as u64).max(1),
        ping_every: Duration::from_secs(opts.ping_every_s.max(1)),
    });
    let spec = |i: usize| ClientSpec {
        index: i,
        user_id: format!("bench-{run_id}-u{i}"),
        sid: format!("s{i}"),
        room: 0,
        channel_name: channel.clone(),
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(opts.connect_timeout_s);
    let joined = |s: &Shared| s.readers_joined.load(Relaxed) + s.stalled_joined.load(Relaxed) + s.failed.load(Relaxed);
    // The readers first, then the members that will read nothing (so that these do not also
    // hold the readers' enter_room events), on a thread of their own.
    let mut handles = Vec::new();
    let role = Role::Reader { items: b.items as u64 };
    for t in 0..threads.min(readers.max(1)) {
        let specs = (0..readers).filter(|i| i % threads == t).map(spec).collect();
        handles.push(spawn_shard(format!("readers-{t}"), cfg.clone(), specs, role, shared.clone(), stop_rx.clone())?);
    }
    wait_for(deadline, || joined(&shared) >= readers);
    let specs = (readers..plan.clients).map(spec).collect();
    let role = Role::Stalled { recv_buffer: b.stalled_recv_buffer };
    let stalled_cfg = Arc::new(ShardConfig { connect_rate: opts.connect_rate.max(1), ..clone_cfg(&cfg) });
    handles.push(spawn_shard("stalled".into(), stalled_cfg, specs, role, shared.clone(), stop_rx.clone())?);
    wait_for(deadline, || joined(&shared) >= plan.clients);
    let (readers_joined, stalled_joined) = (shared.readers_joined.load(Relaxed), shared.stalled_joined.load(Relaxed));
    say(
        opts,
        format!(
            "{readers_joined} readers and {stalled_joined} members that read nothing joined {channel} in {:.1}s ({} failed)",
            started.elapsed().as_secs_f64(),
            shared.failed.load(Relaxed)
        ),
    );
    if readers_joined + stalled_joined == 0 {
        let _ = stop_tx.send(Phase::Stop);
        return Err("no client could join; is the broker running, and --jwt-secret right?".into());
    }

    // The pusher, logged in before the baseline.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let push_cfg = PushConfig {
        host_ports: plan.host_ports.clone(),
        bigo_path: opts.bigo_path.clone(),
        account: opts.account.clone(),
        password: opts.password.clone(),
        platform_abbr: opts.platform_abbr.clone(),
        pushers: 1,
        rooms: vec![channel.clone()],
        items_per_push: plan.items_per_push,
        window: 0,
        closed_loop: true,
        content: String::new(),
        realistic: false,
    };
    let mut push = rt.block_on(pusher::log_in(0, &push_cfg)).map_err(|e| format!("pusher: {e}"))?;
    std::thread::sleep(Duration::from_millis(1000));

    let pids = brokers.unwrap_or_default().to_vec();
    let rss = |pids: &[u32]| procfs::rss_kb_of(pids).unwrap_or((0, 0));
    let (rss_before, _) = rss(&pids);
    let hwm_reset =
        !pids.is_empty() && pids.iter().all(|p| std::fs::write(format!("/proc/{p}/clear_refs"), "5").is_ok());
    let cpu0 = procfs::cpu_seconds_of(&pids);
    let slow0 = scrape_all(&plan.host_ports).map_or(0.0, |m| m.slow);
    let tcp_mem_before = procfs::tcp_mem_kb().unwrap_or(0);
    let sampler = Sampler::start(pids.clone(), plan.host_ports.clone(), shared.clone(), readers_joined, slow0);

    // The burst: every push written at once.
    let content = |n: usize| format!("{n:06}{}", filler(plan.event_bytes, &channel));
    let pushes = b.items.div_ceil(plan.items_per_push);
    let now = now_ms();
    let mut out = Vec::with_capacity(b.items * (plan.event_bytes + 300));
    for p in 0..pushes {
        let mut items = String::new();
        for n in p * plan.items_per_push..((p + 1) * plan.items_per_push).min(b.items) {
            pusher::push_item(&mut items, n as u64, now, &content(n));
        }
        let data = pusher::data_text(p as u64, &channel, now, &items);
        let frame = actors::protocol::bigo_client::data_reception_request(
            &data,
            &push.access_token,
            &opts.platform_abbr,
            0,
            now,
        );
        ws::encode_frame(&mut out, OP_TEXT, frame.as_bytes(), &mut push.mask);
    }
    say(
        opts,
        format!("pushing {} items ({:.1} MB of pushes) in {pushes} pushes at once", b.items, out.len() as f64 / 1e6),
    );
    let t0 = now_us();
    let (acked, refused) = rt.block_on(async {
        push.wr.write_all(&out).await.map_err(|e| format!("pusher: {e}"))?;
        let (mut acked, mut refused) = (0u64, 0u64);
        let answers = async {
            while acked + refused < pushes as u64 {
                if push.reader.fill(&mut push.rd).await? == 0 {
                    break;
                }
                push.reader.drain(|_, p| {
                    match pusher::data_answer(p) {
                        Some((_, 200)) => acked += 1,
                        Some(_) => refused += 1,
                        None => {}
                    }
                    true
                })?;
            }
            std::io::Result::Ok(())
        };
        let _ = timeout(Duration::from_secs(30), answers).await;
        Ok::<_, String>((acked, refused))
    })?;
    let ack_all_ms = (now_us() - t0) as f64 / 1000.0;
    say(opts, format!("{acked} pushes acknowledged, {refused} refused, in {ack_all_ms:.0} ms"));

    // Until every reader is done (or cut) and every member that read nothing is gone.
    let wait = Duration::from_millis((3 * b.write_timeout_ms).max(20_000) + 10_000);
    let readers_settled = || shared.readers_done.load(Relaxed) + shared.readers_cut.load(Relaxed) >= readers_joined;
    let stalled_gone = || sampler.gone_us.load(Relaxed) > 0;
    wait_for(Instant::now() + wait, || readers_settled() && (stalled_gone() || pids.is_empty()));
    std::thread::sleep(Duration::from_millis(1000));
    let (rss_after, hwm) = rss(&pids);
    let cpu1 = procfs::cpu_seconds_of(&pids);
    let load = procfs::load_avg_1m();
    let seen = sampler.stop();

    // The members read again; then everyone leaves.
    let _ = stop_tx.send(Phase::Report);
    wait_for(Instant::now() + Duration::from_secs(40), || shared.reported() >= readers_joined + stalled_joined);
    let _ = stop_tx.send(Phase::Stop);
    for h in handles {
        let _ = h.join();
    }
    let mut close = Vec::new();
    ws::encode_frame(&mut close, crate::ws::OP_CLOSE, &1000u16.to_be_bytes(), &mut push.mask);
    let _ = rt.block_on(async { timeout(Duration::from_secs(1), push.wr.write_all(&close)).await });

    let tallies = shared.readers.lock().map(|r| r.clone()).unwrap_or_default();
    let complete: Vec<_> = tallies.iter().filter(|t| t.complete(b.items as u64)).collect();
    let measured = !complete.is_empty();
    let burst_bytes = if measured {
        complete.iter().map(|t| t.bytes).sum::<u64>() / complete.len() as u64
    } else {
        (b.items * plan.event_bytes) as u64
    };
    let (peak, peak_from) = if hwm_reset && hwm >= seen.peak_kb { (hwm, "VmHWM") } else { (seen.peak_kb, "sampled") };
    let growth = peak.saturating_sub(rss_before);
    let since = |us: i64| if us > 0 { (us - t0).max(0) as f64 / 1000.0 } else { 0.0 };
    let closed = |t: &(i64, f64)| (t.1 - slow0).max(0.0) as u64;
    let stalled_closed_us = seen.slow_timeline.iter().find(|t| closed(t) >= stalled_joined as u64).map_or(0, |t| t.0);
    let in_time = t0 + (opts.reorder_window_ms + b.write_timeout_ms + 1500) as i64 * 1000;
    let slow_in_time = seen.slow_timeline.iter().take_while(|t| t.0 <= in_time).last().map_or(0, closed);
    let mut r = BurstReport {
        label: plan.label.clone(),
        nodes: plan.host_ports.len(),
        readers: readers_joined,
        stalled: stalled_joined,
        items: b.items,
        items_per_push: plan.items_per_push,
        pushes,
        acked,
        refused,
        ack_all_ms,
        burst_bytes,
        burst_bytes_measured: measured,
        rss_before_kb: rss_before,
        rss_peak_kb: peak,
        rss_peak_from: peak_from.into(),
        rss_after_kb: rss_after,
        rss_growth_kb: growth,
        rss_growth_x_burst: round2(growth as f64 * 1024.0 / burst_bytes.max(1) as f64),
        rss_growth_per_stalled_kb: round2(growth as f64 / stalled_joined.max(1) as f64),
        tcp_mem_before_kb: tcp_mem_before,
        tcp_mem_peak_kb: seen.tcp_mem_peak_kb,
        readers_complete: complete.len(),
        readers_cut: shared.readers_cut.load(Relaxed),
        reader_items_min: tallies.iter().map(|t| t.items).min().unwrap_or(0),
        lost: tallies.iter().map(|t| t.lost).sum(),
        duplicated: tallies.iter().map(|t| t.duplicated).sum(),
        out_of_order: tallies.iter().map(|t| t.out_of_order).sum(),
        misordered: tallies.iter().map(|t| t.misordered).sum(),
        last_item_ms: since(shared.last_item_us.load(Relaxed)),
        slow_closed: (seen.slow - slow0).max(0.0) as u64,
        slow_first_ms: since(seen.slow_timeline.first().map_or(0, |&(t, _)| t)),
        slow_closed_ms: since(seen.slow_timeline.last().map_or(0, |&(t, _)| t)),
        stalled_closed_ms: since(stalled_closed_us),
        slow_in_time,
        stalled_gone_ms: since(seen.gone_us),
        stalled_saw_1013: shared.saw_1013.load(Relaxed),
        stalled_saw_end: shared.saw_end.load(Relaxed),
        stalled_open: shared.still_open.load(Relaxed),
        write_timeout_ms: b.write_timeout_ms,
        broker_cpu_s: cpu0.zip(cpu1).map_or(0.0, |(a, b)| round2(b - a)),
        load_avg_1m: load,
        ok: false,
    };
    r.ok = r.readers > 0 && r.readers_complete == r.readers && r.slow_closed >= r.stalled as u64;
    Ok(r)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn clone_cfg(c: &ShardConfig) -> ShardConfig {
    ShardConfig {
        host_ports: c.host_ports.clone(),
        rooms: c.rooms,
        client_path: c.client_path.clone(),
        jwt_secret: c.jwt_secret.clone(),
        batch: c.batch,
        deflate: c.deflate,
        check_every: c.check_every,
        connect_rate: c.connect_rate,
        ping_every: c.ping_every,
    }
}

/// Content after the item's 6-digit number that makes its event about `event_bytes` long:
/// CJK text (3 bytes a character in UTF-8, as most danmu are), as the burst test of
/// `tests/room_protocol.rs` pushes.
fn filler(event_bytes: usize, channel: &str) -> String {
    let bytes = pusher::content_for(event_bytes, channel).len().saturating_sub(6);
    "礼".repeat(bytes / 3)
}

fn wait_for(deadline: Instant, mut done: impl FnMut() -> bool) {
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Samples the brokers' RSS every 5 ms and scrapes their `/metrics` every 100 ms, on a thread.
struct Sampler {
    running: Arc<AtomicBool>,
    /// Unix µs when the broker's client connections first came down to the readers still
    /// connected; 0 = not yet.
    gone_us: Arc<AtomicI64>,
    handle: std::thread::JoinHandle<Seen>,
}

#[derive(Default)]
struct Seen {
    peak_kb: u64,
    tcp_mem_peak_kb: u64,
    slow: f64,
    /// When the slow-consumer count changed, and to what.
    slow_timeline: Vec<(i64, f64)>,
    gone_us: i64,
}

impl Sampler {
    fn start(pids: Vec<u32>, nodes: Vec<String>, shared: Arc<Shared>, readers: usize, slow0: f64) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let gone_us = Arc::new(AtomicI64::new(0));
        let (run, gone) = (running.clone(), gone_us.clone());
        let handle = std::thread::spawn(move || {
            let mut seen = Seen { slow: slow0, ..Seen::default() };
            let mut next_scrape = Instant::now();
            while run.load(Relaxed) {
                if let Some((rss, _)) = procfs::rss_kb_of(&pids) {
                    seen.peak_kb = seen.peak_kb.max(rss);
                }
                seen.tcp_mem_peak_kb = seen.tcp_mem_peak_kb.max(procfs::tcp_mem_kb().unwrap_or(0));
                if Instant::now() >= next_scrape {
                    next_scrape = Instant::now() + Duration::from_millis(100);
                    if let Some(m) = scrape_all(&nodes) {
                        if m.slow != seen.slow {
                            seen.slow = m.slow;
                            seen.slow_timeline.push((now_us(), m.slow));
                        }
                        let left = readers.saturating_sub(shared.readers_cut.load(Relaxed));
                        if m.clients <= left as f64 && gone.load(Relaxed) == 0 {
                            gone.store(now_us(), Relaxed);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        });
        Self { running, gone_us, handle }
    }

    fn stop(self) -> Seen {
        self.running.store(false, Relaxed);
        let mut seen = self.handle.join().unwrap_or_default();
        seen.gone_us = self.gone_us.load(Relaxed);
        seen
    }
}

/// What this workload reads from a broker's `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Metrics {
    slow: f64,
    clients: f64,
}

/// The metrics of every node, summed; `None` if one did not answer.
fn scrape_all(nodes: &[String]) -> Option<Metrics> {
    nodes.iter().map(|n| scrape(n)).try_fold(Metrics { slow: 0.0, clients: 0.0 }, |acc, m| {
        m.map(|m| Metrics { slow: acc.slow + m.slow, clients: acc.clients + m.clients })
    })
}

fn scrape(host_port: &str) -> Option<Metrics> {
    use std::net::ToSocketAddrs;
    let addr = host_port.to_socket_addrs().ok()?.next()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    parse_metrics(&text)
}

fn parse_metrics(text: &str) -> Option<Metrics> {
    let value =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok());
    Some(Metrics {
        slow: value("danmu_slow_clients_disconnected_total")?,
        clients: value("danmu_connections{kind=\"client\"}")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_it_needs_are_read_from_the_text_format() {
        let text = "HTTP/1.1 200 OK\r\n\r\n# HELP danmu_connections Open WebSocket connections\n\
                    danmu_connections{kind=\"bigo\"} 1\ndanmu_connections{kind=\"client\"} 1000\n\
                    danmu_slow_clients_disconnected_total 999\n# EOF\n";
        assert_eq!(parse_metrics(text), Some(Metrics { slow: 999.0, clients: 1000.0 }));
        assert_eq!(parse_metrics("danmu_connections{kind=\"client\"} 3\n"), None);
    }

    #[test]
    fn the_filler_makes_events_of_about_the_asked_size() {
        let content = format!("{:06}{}", 42, filler(1100, "bench-1-0"));
        let short = pusher::content_for(1100, "bench-1-0").len();
        assert!(content.len() <= short && content.len() + 3 > short, "{} vs {short}", content.len());
        assert_eq!(crate::scan::parse_int(content.as_bytes()), Some(42));
    }
}
