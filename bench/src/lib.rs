//! danmu-bench: a load generator that drives a running danmu-broker exactly as production
//! does (BIGO pushers with login and signed `dataReception`; app clients with a JWT, signed
//! `enter_room_report`, optional `batch=1`) and measures at the clients (issue 7).
//!
//! Module map:
//! - [`options`]: the command line and the W1-W9 presets.
//! - [`churn`]: W5's short-lived clients (connect, join, chat, leave, some recover).
//! - [`burst`], [`burst_clients`]: W7, one burst into a room half of whose members read
//!   nothing; the broker's RSS before, at its peak and after.
//! - [`bare`]: `danmu-bench serve-bare`, a bare WebSocket server for W3's memory floor.
//! - [`client`]: app clients, sharded over single-threaded runtimes; `seq` and latency checks.
//! - [`pusher`]: BIGO pushers on their own thread; open or closed loop; ack latency.
//! - [`ws`], [`scan`]: a minimal WebSocket client and a field scanner, so that the client
//!   side stays cheap and the figures measure the broker.
//! - [`stats`], [`procfs`]: histograms and reports; CPU and memory from `/proc`.
//! - [`redis_stats`]: the shared Redis's CPU, commands, bytes and commands by name
//!   (`--redis-port`); [`idle_rooms`]: W9, what owned rooms cost Redis with nothing pushed.
//!
//! [`run`] is the orchestrator: connect (paced), then per step warm up, measure, drain, and
//! report one [`StepReport`].

pub mod bare;
pub mod burst;
pub mod burst_clients;
pub mod churn;
pub mod client;
pub mod control;
pub mod idle_rooms;
pub mod options;
pub mod procfs;
pub mod pusher;
pub mod redis_stats;
pub mod scan;
pub mod stats;
pub mod ws;

use std::io::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client::{ClientSpec, Phase, ShardConfig, ShardStats};
use control::Control;
pub use options::{Options, Plan, Workload};
use pusher::PushConfig;
use redis_stats::{RedisDelta, RedisProbe};
use stats::{ClientStats, PushStats, StepReport};

/// Everything a run produced.
pub struct Outcome {
    pub steps: Vec<StepReport>,
    /// Losses found only at the end: a client whose last `seq` is below its room's last.
    pub tail_lost: u64,
    /// The highest rate whose step passed (zero loss/duplicates, p99 within bound).
    pub sustained_rate: Option<u64>,
    /// A burst run's result (W7); it has no steps.
    pub burst: Option<burst::BurstReport>,
}

pub(crate) fn say(opts: &Options, msg: impl AsRef<str>) {
    if !opts.quiet {
        eprintln!("danmu-bench: {}", msg.as_ref());
    }
}

/// Runs the whole plan (blocking; starts its own threads and runtimes) and prints each step as
/// a table row and a JSON line as it completes.
pub fn run(opts: &Options) -> Result<Outcome, String> {
    let plan = opts.resolve()?;
    let nofile = procfs::raise_nofile_limit();
    if (nofile as usize) < plan.clients + 64 {
        return Err(format!(
            "open-file limit {nofile} is below {} clients; raise the hard limit (ulimit -Hn)",
            plan.clients
        ));
    }
    let brokers: Vec<u32> = if opts.broker_pid.is_empty() {
        plan.ports.iter().filter_map(|p| procfs::pid_listening_on(*p)).collect()
    } else {
        opts.broker_pid.clone()
    };
    if brokers.len() == plan.ports.len() {
        say(opts, format!("broker pid(s) {brokers:?}"));
    } else {
        say(opts, "broker pid(s) not all found: no broker CPU/RSS figures (pass --broker-pid)");
    }
    let broker_pid = (brokers.len() == plan.ports.len()).then_some(brokers);
    if plan.burst.is_some() {
        let report = burst::run(opts, &plan, broker_pid.as_deref())?;
        if !opts.quiet {
            println!("{}\n{}", burst::BurstReport::HEADER, report.row());
        }
        println!("{}", report.json());
        append_json(opts, &report.json());
        return Ok(Outcome { steps: Vec::new(), tail_lost: 0, sustained_rate: None, burst: Some(report) });
    }
    let mut redis = opts.redis_port.map(RedisProbe::connect).transpose()?;
    if let Some(probe) = &redis {
        say(opts, format!("redis on port {}, pid {:?}", probe.port, probe.pid));
    }
    // W9: the nodes and Redis with no rooms, before any member connects.
    let idle_baseline =
        plan.idle.as_ref().and_then(|idle| idle_rooms::baseline(opts, idle, broker_pid.as_deref(), redis.as_mut()));
    let rss_before = broker_pid.as_deref().and_then(procfs::rss_kb_of).map_or(0, |(rss, _)| rss);
    let run_id = format!("{:x}", control::now_ms() % 0xff_ffff);
    let rooms: Vec<String> = (0..plan.rooms).map(|r| format!("bench-{run_id}-{r}")).collect();
    let ctl = Arc::new(Control::new(plan.rates.len(), plan.rooms));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(Phase::Running);

    // Clients, sharded over threads.
    let shard_cfg = Arc::new(ShardConfig {
        host_ports: plan.host_ports.clone(),
        rooms: plan.rooms,
        client_path: opts.client_path.clone(),
        jwt_secret: opts.jwt_secret.clone(),
        batch: plan.batch,
        deflate: opts.deflate,
        check_every: plan.check_every,
        connect_rate: (opts.connect_rate / opts.client_threads.max(1) as u64).max(1),
        ping_every: Duration::from_secs(opts.ping_every_s.max(1)),
    });
    let threads = opts.client_threads.max(1).min(plan.clients.max(1));
    let mut shard_stats = Vec::new();
    let mut handles = Vec::new();
    let connect_started = Instant::now();
    for t in 0..threads {
        let specs: Vec<ClientSpec> = (0..plan.clients)
            .filter(|i| i % threads == t)
            .map(|i| ClientSpec {
                index: i,
                user_id: format!("bench-{run_id}-u{i}"),
                sid: format!("s{i}"),
                room: i % plan.rooms,
                channel_name: rooms[i % plan.rooms].clone(),
            })
            .collect();
        let stats = Arc::new(Mutex::new(ShardStats {
            steps: vec![ClientStats::default(); plan.rates.len()],
            last_seqs: Vec::new(),
        }));
        shard_stats.push(stats.clone());
        let (cfg, ctl, stop) = (shard_cfg.clone(), ctl.clone(), stop_rx.clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("clients-{t}"))
                .spawn(move || client::run_shard(cfg, specs, ctl, stats, stop))
                .map_err(|e| e.to_string())?,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(opts.connect_timeout_s);
    let mut last_report = Instant::now();
    while ctl.joined.load(Relaxed) + ctl.failed.load(Relaxed) < plan.clients && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        if last_report.elapsed() > Duration::from_secs(5) {
            say(opts, format!("{} of {} clients joined", ctl.joined.load(Relaxed), plan.clients));
            last_report = Instant::now();
        }
    }
    let joined = ctl.joined.load(Relaxed);
    say(
        opts,
        format!(
            "{joined} of {} clients joined {} rooms in {:.1}s ({} failed)",
            plan.clients,
            plan.rooms,
            connect_started.elapsed().as_secs_f64(),
            ctl.failed.load(Relaxed)
        ),
    );
    if joined == 0 && plan.clients > 0 {
        let _ = stop_tx.send(Phase::Stop);
        return Err("no client could join; is the broker running, and --jwt-secret right?".into());
    }
    // Let the joins' enter_room fan-out settle before measuring memory and pushing.
    std::thread::sleep(Duration::from_millis(1000));
    let rss_after = broker_pid.as_deref().and_then(procfs::rss_kb_of).map_or(0, |(rss, _)| rss);
    let rss_per_conn = if joined > 0 { rss_after.saturating_sub(rss_before) as f64 / joined as f64 } else { 0.0 };

    // W9: no pushers; the rooms settle, then Redis is measured once.
    if let Some(idle) = &plan.idle {
        let (pids, baseline) = (broker_pid.as_deref(), idle_baseline.as_ref());
        let report = idle_rooms::measure(opts, &plan, idle, joined, pids, redis.as_mut(), baseline);
        let _ = stop_tx.send(Phase::Stop);
        for h in handles {
            let _ = h.join();
        }
        if !opts.quiet {
            println!("{}\n{}\n{}", idle_rooms::IdleReport::HEADER, report.row(), report.breakdown_line());
        }
        println!("{}", report.json());
        append_json(opts, &report.json());
        return Ok(Outcome { steps: Vec::new(), tail_lost: 0, sustained_rate: None, burst: None });
    }

    // Pushers on their own thread.
    let push_stats =
        Arc::new(Mutex::new(vec![
            PushStats { items_acked_per_room: vec![0; plan.rooms], ..Default::default() };
            plan.rates.len()
        ]));
    let closed_loop = plan.rates.iter().all(|&r| r == 0);
    let push_cfg = Arc::new(PushConfig {
        host_ports: plan.host_ports.clone(),
        bigo_path: opts.bigo_path.clone(),
        account: opts.account.clone(),
        password: opts.password.clone(),
        platform_abbr: opts.platform_abbr.clone(),
        pushers: opts.pushers.max(1),
        content: pusher::content_for(plan.event_bytes, &rooms[0]),
        realistic: plan.realistic,
        rooms: rooms.clone(),
        items_per_push: plan.items_per_push,
        window: plan.window,
        closed_loop,
    });
    let pusher_handle = {
        let (cfg, ctl, stats) = (push_cfg.clone(), ctl.clone(), push_stats.clone());
        std::thread::Builder::new()
            .name("pushers".into())
            .spawn(move || pusher::run_pushers(cfg, ctl, stats))
            .map_err(|e| e.to_string())?
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while ctl.pushers_ready.load(Relaxed) + ctl.pushers_failed.load(Relaxed) < push_cfg.pushers
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    if ctl.pushers_ready.load(Relaxed) == 0 {
        ctl.done.store(true, Relaxed);
        let _ = stop_tx.send(Phase::Stop);
        return Err("no pusher could log in".into());
    }

    if !opts.quiet {
        println!("{}", StepReport::HEADER);
    }
    let mut reports = Vec::new();
    let self_pid = std::process::id();
    for (i, &rate) in plan.rates.iter().enumerate() {
        ctl.step.store(i, Relaxed);
        let start = control::now_ms() + (opts.warmup_s * 1000.0) as i64;
        let end = start + (plan.duration_s * 1000.0) as i64;
        ctl.windows[i].0.store(start, Relaxed);
        ctl.windows[i].1.store(end, Relaxed);
        ctl.rate.store(rate, Relaxed);
        ctl.epoch.fetch_add(1, Relaxed);
        ctl.pushing.store(true, Relaxed);
        say(opts, format!("step {}: rate {rate}/s, warm-up {}s, measuring {}s", i + 1, opts.warmup_s, plan.duration_s));
        sleep_until_ms(start);
        let cpu0 = broker_pid.as_deref().and_then(procfs::cpu_seconds_of);
        let gen0 = procfs::cpu_seconds(self_pid);
        let redis0 = redis.as_mut().and_then(RedisProbe::read);
        let churn = (plan.churn_rate > 0).then(|| start_churn(opts, &plan, &run_id, &rooms));
        // W5: the broker's RSS a minute in, against the end (connections come and go).
        let mut rss_1min = None;
        while control::now_ms() < end {
            std::thread::sleep(
                Duration::from_millis(500).min(Duration::from_millis((end - control::now_ms()).max(1) as u64)),
            );
            if rss_1min.is_none() && control::now_ms() >= start + 60_000 {
                rss_1min = broker_pid.as_deref().and_then(procfs::rss_kb_of).map(|(rss, _)| rss);
            }
        }
        let cpu1 = broker_pid.as_deref().and_then(procfs::cpu_seconds_of);
        let gen1 = procfs::cpu_seconds(self_pid);
        let redis1 = redis.as_mut().and_then(RedisProbe::read);
        let load = procfs::load_avg_1m();
        let rss_end = broker_pid.as_deref().and_then(procfs::rss_kb_of).map(|(rss, _)| rss);
        ctl.pushing.store(false, Relaxed);
        if let Some((handle, counters)) = churn {
            let _ = handle.join();
            say(opts, counters.summary());
            let growth = rss_1min.zip(rss_end).map(|(a, b)| (b as f64 - a as f64) / a.max(1) as f64 * 100.0);
            let line = serde_json::json!({
                "label": format!("{}-churn", plan.label),
                "rss_1min_kb": rss_1min.unwrap_or(0),
                "rss_end_kb": rss_end.unwrap_or(0),
                "rss_growth_pct": growth.map(|g| (g * 10.0).round() / 10.0),
                "started": counters.started.load(Relaxed),
                "joined": counters.joined.load(Relaxed),
                "left": counters.left.load(Relaxed),
                "reconnected": counters.reconnected.load(Relaxed),
                "recovered": counters.recovered.load(Relaxed),
                "failed": counters.failed.load(Relaxed),
            })
            .to_string();
            if !opts.quiet {
                println!(
                    "{}: broker RSS {} KB after the first minute, {} KB at the end ({:+.1} %); {}",
                    plan.label,
                    rss_1min.unwrap_or(0),
                    rss_end.unwrap_or(0),
                    growth.unwrap_or(f64::NAN),
                    counters.summary()
                );
            }
            append_json(opts, &line);
        }
        std::thread::sleep(Duration::from_millis(plan_drain_ms(opts)));
        let report = step_report(StepInputs {
            opts,
            plan: &plan,
            step: i,
            rate,
            joined,
            ctl: &ctl,
            shards: &shard_stats,
            pushes: &push_stats,
            broker_pid: broker_pid.as_deref(),
            cpu: cpu0.zip(cpu1).map(|(a, b)| b - a),
            redis: redis0.zip(redis1).map(|(a, b)| RedisDelta::between(&a, &b)),
            gen_cpu: gen0.zip(gen1).map(|(a, b)| b - a),
            load,
            rss_per_conn,
        });
        emit(opts, &report);
        reports.push(report);
    }

    // Stop: clients record their last seq; the pushers leave.
    ctl.done.store(true, Relaxed);
    let _ = pusher_handle.join();
    // A backlog may still be in flight after an overloaded step: wait (bounded) until the
    // clients read nothing for half a second before checking the tail.
    let frames = || -> u64 {
        shard_stats.iter().filter_map(|s| s.lock().ok().map(|s| s.steps.iter().map(|st| st.frames).sum::<u64>())).sum()
    };
    let settle_deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = frames();
    while Instant::now() < settle_deadline {
        std::thread::sleep(Duration::from_millis(500));
        let now = frames();
        if now == seen {
            break;
        }
        seen = now;
    }
    let _ = stop_tx.send(Phase::Report);
    std::thread::sleep(Duration::from_millis(300));
    let _ = stop_tx.send(Phase::Stop);
    for h in handles {
        let _ = h.join();
    }
    let tail_lost = tail_losses(&shard_stats);
    if tail_lost > 0 {
        say(opts, format!("{tail_lost} events missing at the end of the run (last seq below the room's)"));
        if let Some(last) = reports.last_mut() {
            last.lost += tail_lost as i64;
            last.ok = false;
        }
    }
    let sustained_rate = reports.iter().filter(|r| r.ok && r.rate > 0).map(|r| r.rate).max();
    if plan.rates.len() > 1 && !opts.quiet {
        match sustained_rate {
            Some(rate) => {
                println!("{} (batch={})", sustained_line(rate, plan.items_per_push, joined, plan.rooms), plan.batch)
            }
            None => println!("sustained: no step passed"),
        }
    }
    Ok(Outcome { steps: reports, tail_lost, sustained_rate, burst: None })
}

/// Deliveries per second at `rate` pushes/s of `items_per_push` items each, the pushes going
/// round-robin over `rooms` rooms that `joined` clients share evenly: a push reaches only its
/// own room's members, `joined / rooms` of them, each getting every item.
fn sustained_deliveries_per_s(rate: u64, items_per_push: usize, joined: usize, rooms: usize) -> u64 {
    let deliveries = u128::from(rate) * items_per_push as u128 * joined as u128 / rooms.max(1) as u128;
    u64::try_from(deliveries).unwrap_or(u64::MAX)
}

/// The summary line of the highest passing rate.
fn sustained_line(rate: u64, items_per_push: usize, joined: usize, rooms: usize) -> String {
    let deliveries = sustained_deliveries_per_s(rate, items_per_push, joined, rooms);
    let items = if items_per_push == 1 { String::new() } else { format!(" x {items_per_push} items") };
    let members = joined as f64 / rooms.max(1) as f64;
    let reached = format!("{members:.0} clients per room ({joined} in {rooms} rooms)");
    format!("sustained: {rate} pushes/s{items} x {reached} = {deliveries} deliveries/s")
}

fn plan_drain_ms(opts: &Options) -> u64 {
    opts.reorder_window_ms + opts.drain_ms
}

fn sleep_until_ms(t: i64) {
    let wait = t - control::now_ms();
    if wait > 0 {
        std::thread::sleep(Duration::from_millis(wait as u64));
    }
}

struct StepInputs<'a> {
    opts: &'a Options,
    plan: &'a Plan,
    step: usize,
    rate: u64,
    joined: usize,
    ctl: &'a Control,
    shards: &'a [Arc<Mutex<ShardStats>>],
    pushes: &'a Mutex<Vec<PushStats>>,
    broker_pid: Option<&'a [u32]>,
    cpu: Option<f64>,
    /// What Redis did during the step (`--redis-port`).
    redis: Option<RedisDelta>,
    gen_cpu: Option<f64>,
    load: f64,
    rss_per_conn: f64,
}

fn step_report(x: StepInputs) -> StepReport {
    let mut clients = ClientStats::default();
    for shard in x.shards {
        if let Ok(s) = shard.lock() {
            clients.merge(&s.steps[x.step]);
        }
    }
    let pushes = x.pushes.lock().map(|p| p[x.step].clone()).unwrap_or_default();
    // Every acknowledged item, to every member of its room: what the checking members should
    // have got, and what the broker delivered to all of them.
    let per_room = |members: &[std::sync::atomic::AtomicUsize]| -> u64 {
        pushes.items_acked_per_room.iter().zip(members).map(|(items, m)| items * m.load(Relaxed) as u64).sum()
    };
    let expected = per_room(&x.ctl.checking_per_room);
    let broker_deliveries = per_room(&x.ctl.joined_per_room);
    let d = x.plan.duration_s.max(0.001);
    let (rss, hwm) = x.broker_pid.and_then(procfs::rss_kb_of).unwrap_or((0, 0));
    let redis = x.redis.as_ref();
    let redis_cpu_pct = redis.and_then(|r| r.cpu_s).map_or(0.0, |c| c / d * 100.0);
    let redis_commands_per_push =
        redis.filter(|_| pushes.acked > 0).map_or(0.0, |r| r.commands as f64 / pushes.acked as f64);
    let redis_bytes_per_s = redis.map_or(0.0, |r| r.net_bytes as f64 / d);
    let redis_by_command = redis.map(|r| redis_stats::shares(r, d, pushes.acked as f64));
    let mut r = StepReport {
        label: x.plan.label.clone(),
        batch: x.plan.batch,
        deflate: x.opts.deflate,
        rooms: x.plan.rooms,
        clients: x.plan.clients,
        clients_joined: x.joined,
        rate: x.rate,
        items_per_push: x.plan.items_per_push,
        duration_s: d,
        pushes_per_s: pushes.acked as f64 / d,
        ack_p50_ms: 0.0,
        ack_p99_ms: 0.0,
        refused: pushes.refused,
        skipped: pushes.skipped,
        expected,
        delivered: clients.delivered,
        deliveries_per_s: clients.delivered as f64 / d,
        frames_per_s: clients.frames as f64 / d,
        wire_bytes_per_event: per(clients.wire_bytes as f64, clients.wire_events),
        broker_cpu_ns_per_delivery: per(x.cpu.unwrap_or(0.0) * 1e9, broker_deliveries),
        broker_deliveries_per_s: broker_deliveries as f64 / d,
        check_every: x.plan.check_every,
        inflate_ns_per_event: per(clients.inflate_ns as f64, clients.wire_events),
        inflate_cpu_pct: clients.inflate_ns as f64 / 1e9 / d * 100.0,
        lat_p50_ms: 0.0,
        lat_p99_ms: 0.0,
        lat_p999_ms: 0.0,
        lat_max_ms: 0.0,
        lost: clients.lost,
        duplicated: clients.duplicated,
        out_of_order: clients.out_of_order,
        disconnected: clients.disconnected,
        nodes: x.plan.ports.len(),
        broker_pid: x.broker_pid.and_then(|p| p.first().copied()),
        broker_cpu_s: x.cpu.unwrap_or(0.0),
        broker_cpu_pct: x.cpu.map_or(0.0, |c| c / d * 100.0),
        broker_rss_kb: rss,
        broker_peak_rss_kb: hwm,
        broker_rss_per_conn_kb: x.rss_per_conn,
        gen_cpu_pct: x.gen_cpu.map_or(0.0, |c| c / d * 100.0),
        redis_cpu_pct,
        redis_commands_per_push,
        redis_bytes_per_s,
        redis_commands_per_s: redis.map_or(0.0, |r| (r.commands as f64 / d).round()),
        redis_bytes_per_push: redis.map_or(0.0, |r| per(r.net_bytes as f64, pushes.acked)),
        redis_by_command,
        load_avg_1m: x.load,
        ok: false,
        latency_bound_ms: x.plan.latency_bound_ms as f64,
    };
    r.fill_latency(&clients.latency_us);
    r.fill_acks(&pushes.ack_us);
    let clean = r.lost == 0 && r.duplicated == 0 && r.disconnected == 0 && r.refused == 0 && r.skipped == 0;
    // With churn the members also get the short-lived clients' chat: loss shows in `seq` only.
    let complete = (r.delivered == r.expected || x.plan.churn_rate > 0) && pushes.acked > 0;
    let fast = r.clients_joined == 0 || r.lat_p99_ms <= r.latency_bound_ms;
    r.ok = clean && complete && fast;
    r
}

/// `total / count` to one decimal, 0 when nothing was counted.
fn per(total: f64, count: u64) -> f64 {
    if count == 0 {
        return 0.0;
    }
    (total / count as f64 * 10.0).round() / 10.0
}

fn emit(opts: &Options, r: &StepReport) {
    let json = r.json();
    if opts.quiet {
        println!("{json}");
    } else {
        println!("{}", r.row());
        if let Some(line) = r.redis_line() {
            println!("{line}");
        }
        println!("{json}");
    }
    let _ = std::io::stdout().flush();
    append_json(opts, &json);
}

/// Appends one JSON line to `--json-out`, if given.
fn append_json(opts: &Options, json: &str) {
    if let Some(path) = &opts.json_out {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
        match file {
            Ok(mut f) => {
                let _ = writeln!(f, "{json}");
            }
            Err(e) => eprintln!("danmu-bench: --json-out {}: {e}", path.display()),
        }
    }
}

/// Starts W5's short-lived clients on their own thread for the step's duration.
fn start_churn(
    opts: &Options,
    plan: &Plan,
    run_id: &str,
    rooms: &[String],
) -> (std::thread::JoinHandle<()>, Arc<churn::ChurnCounters>) {
    let cfg = Arc::new(churn::ChurnConfig {
        // W5 churns on the first node named (a single-node workload).
        host_port: plan.host_ports[0].clone(),
        client_path: opts.client_path.clone(),
        jwt_secret: opts.jwt_secret.clone(),
        run_id: run_id.to_string(),
        rooms: rooms.to_vec(),
        rate: plan.churn_rate,
        stay: Duration::from_millis(opts.churn_stay_ms),
        reconnect_every: 100u64.checked_div(opts.churn_reconnect_pct).map_or(0, |every| every.max(1)),
    });
    let counters = Arc::new(churn::ChurnCounters::default());
    let duration = Duration::from_secs_f64(plan.duration_s);
    let handle = {
        let counters = counters.clone();
        std::thread::spawn(move || churn::run(cfg, counters, duration))
    };
    (handle, counters)
}

/// Events no client saw by the end: per room, the highest last `seq` any member saw, minus
/// each member's own last `seq`.
fn tail_losses(shards: &[Arc<Mutex<ShardStats>>]) -> u64 {
    let mut all = Vec::new();
    for shard in shards {
        if let Ok(s) = shard.lock() {
            all.extend(s.last_seqs.iter().copied());
        }
    }
    let mut room_last = std::collections::HashMap::new();
    for &(room, last) in &all {
        let e = room_last.entry(room).or_insert(0);
        *e = last.max(*e);
    }
    all.iter().map(|(room, last)| room_last[room] - last).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustained_deliveries_count_only_the_members_of_the_room_each_push_reaches() {
        // W1: one hot room, every client gets every push.
        assert_eq!(sustained_deliveries_per_s(1600, 1, 2000, 1), 3_200_000);
        // W2: 200 rooms of 10: a push reaches 10 clients, not 2000.
        assert_eq!(sustained_deliveries_per_s(4000, 1, 2000, 200), 40_000);
        // Items multiply: every item of a push is an event for each member.
        assert_eq!(sustained_deliveries_per_s(100, 5, 50, 5), 5_000);
        assert_eq!(sustained_deliveries_per_s(10, 1, 7, 0), 70, "no rooms counts as one");
        let line = sustained_line(4000, 1, 2000, 200);
        assert_eq!(line, "sustained: 4000 pushes/s x 10 clients per room (2000 in 200 rooms) = 40000 deliveries/s");
        assert!(sustained_line(100, 5, 50, 5).contains("100 pushes/s x 5 items x 10 clients per room"));
    }
}
