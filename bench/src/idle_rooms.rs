//! W9, idle rooms (issue 21): what rooms that a node owns cost Redis while nothing is pushed.
//! Before any member connects, the orchestrator (`lib.rs`) has [`baseline`] measure the nodes
//! and Redis with no rooms for `--baseline-s` (default: `--duration-s`); then it connects the
//! members (one a room by default, all on the first node, whose joins make it the rooms'
//! owner: docs/protocol.md 7) and hands over to [`measure`]: wait `--settle-s`, measure for
//! `--duration-s`. The result is one [`IdleReport`]: Redis's commands a second in all and per
//! room, by command, its CPU and bytes, and the brokers' CPU. Per room it gives both the gross
//! figure (all of Redis's work over the rooms) and the net one (less the baseline: the nodes'
//! own renewals and Redis's own background, which at 50 rooms are most of its CPU).

use serde::Serialize;
use std::time::{Duration, Instant};

use crate::options::{IdlePlan, Options, Plan};
use crate::redis_stats::{self, CommandShare, RedisDelta, RedisProbe};
use crate::{procfs, say};

/// One idle run's figures (per room: divided by the rooms, not by the members).
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    pub label: String,
    pub nodes: usize,
    pub rooms: usize,
    pub clients: usize,
    pub clients_joined: usize,
    pub settle_s: f64,
    pub duration_s: f64,
    /// Whether Redis was measured (`--redis-port`); the redis figures are 0 otherwise.
    pub redis: bool,
    pub redis_commands_per_s: f64,
    pub redis_commands_per_room_s: f64,
    pub redis_cpu_pct: f64,
    /// Redis's CPU per room and second, in microseconds.
    pub redis_cpu_us_per_room_s: f64,
    pub redis_bytes_per_s: f64,
    pub redis_bytes_per_room_s: f64,
    /// By command: `per_s` in all, `per_unit` per room and second, `usec_per_unit` Redis's
    /// microseconds in them per room and second.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "redis_stats::serialize_shares")]
    pub redis_by_command: Option<Vec<(String, CommandShare)>>,
    /// The same nodes and Redis before any member connected (0 s: not measured).
    pub baseline_s: f64,
    pub baseline_redis_commands_per_s: f64,
    pub baseline_redis_cpu_pct: f64,
    pub baseline_redis_bytes_per_s: f64,
    pub baseline_broker_cpu_pct: f64,
    /// By command, `per_s` (and `per_unit`) the calls a second.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "redis_stats::serialize_shares")]
    pub baseline_redis_by_command: Option<Vec<(String, CommandShare)>>,
    /// Per room and second less the baseline (the gross figures when there was none).
    pub net_redis_commands_per_room_s: f64,
    pub net_redis_cpu_us_per_room_s: f64,
    pub net_redis_bytes_per_room_s: f64,
    /// Summed over the nodes; 0 when their pids were not found.
    pub broker_cpu_pct: f64,
    pub broker_rss_kb: u64,
    pub load_avg_1m: f64,
}

/// What Redis and the brokers did over one measured interval.
#[derive(Debug, Clone, Default)]
pub struct Interval {
    pub seconds: f64,
    pub redis: Option<RedisDelta>,
    pub broker_cpu_s: Option<f64>,
}

impl Interval {
    fn redis_cpu_pct(&self) -> f64 {
        self.redis.as_ref().and_then(|r| r.cpu_s).unwrap_or(0.0) / self.seconds.max(0.001) * 100.0
    }

    fn per_s(&self, f: impl Fn(&RedisDelta) -> u64) -> f64 {
        self.redis.as_ref().map_or(0.0, |r| f(r) as f64 / self.seconds.max(0.001))
    }
}

/// Measures for `seconds` (blocking).
fn interval(seconds: f64, broker_pid: Option<&[u32]>, mut redis: Option<&mut RedisProbe>) -> Interval {
    let cpu0 = broker_pid.and_then(procfs::cpu_seconds_of);
    let redis0 = redis.as_deref_mut().and_then(RedisProbe::read);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let cpu1 = broker_pid.and_then(procfs::cpu_seconds_of);
    let redis1 = redis.and_then(RedisProbe::read);
    Interval {
        seconds: started.elapsed().as_secs_f64(),
        redis: redis0.zip(redis1).map(|(a, b)| RedisDelta::between(&a, &b)),
        broker_cpu_s: cpu0.zip(cpu1).map(|(a, b)| b - a),
    }
}

/// The nodes and Redis before any member connected, for `IdlePlan::baseline_s` (none at 0).
pub fn baseline(
    opts: &Options,
    idle: &IdlePlan,
    broker_pid: Option<&[u32]>,
    redis: Option<&mut RedisProbe>,
) -> Option<Interval> {
    if idle.baseline_s <= 0.0 {
        return None;
    }
    say(opts, format!("baseline: {}s of the nodes and Redis before any member connects", idle.baseline_s));
    Some(interval(idle.baseline_s, broker_pid, redis))
}

/// Settles, then measures for the plan's duration (blocking).
pub fn measure(
    opts: &Options,
    plan: &Plan,
    idle: &IdlePlan,
    joined: usize,
    broker_pid: Option<&[u32]>,
    redis: Option<&mut RedisProbe>,
    baseline: Option<&Interval>,
) -> IdleReport {
    if redis.is_none() {
        say(opts, "no --redis-port: an idle run measures the brokers' CPU only");
    }
    say(
        opts,
        format!(
            "{joined} members in {} rooms; settling {}s, measuring {}s",
            plan.rooms, idle.settle_s, plan.duration_s
        ),
    );
    std::thread::sleep(Duration::from_secs_f64(idle.settle_s));
    let rooms = interval(plan.duration_s, broker_pid, redis);
    report(plan, idle, joined, &rooms, baseline, broker_pid)
}

fn report(
    plan: &Plan,
    idle: &IdlePlan,
    joined: usize,
    x: &Interval,
    baseline: Option<&Interval>,
    broker_pid: Option<&[u32]>,
) -> IdleReport {
    let rooms = plan.rooms.max(1) as f64;
    let d = x.seconds.max(0.001);
    let round1 = |x: f64| (x * 10.0).round() / 10.0;
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let commands_per_s = x.per_s(|r| r.commands);
    let bytes_per_s = x.per_s(|r| r.net_bytes);
    let cpu_us_per_s = x.redis_cpu_pct() * 1e4;
    let base = baseline.cloned().unwrap_or_default();
    let base_commands_per_s = base.per_s(|r| r.commands);
    let base_bytes_per_s = base.per_s(|r| r.net_bytes);
    let base_cpu_us_per_s = base.redis_cpu_pct() * 1e4;
    IdleReport {
        label: plan.label.clone(),
        nodes: plan.ports.len(),
        rooms: plan.rooms,
        clients: plan.clients,
        clients_joined: joined,
        settle_s: idle.settle_s,
        duration_s: round3(d),
        redis: x.redis.is_some(),
        redis_commands_per_s: round1(commands_per_s),
        redis_commands_per_room_s: round3(commands_per_s / rooms),
        redis_cpu_pct: round1(x.redis_cpu_pct()),
        redis_cpu_us_per_room_s: round1(cpu_us_per_s / rooms),
        redis_bytes_per_s: round1(bytes_per_s),
        redis_bytes_per_room_s: round1(bytes_per_s / rooms),
        redis_by_command: x.redis.as_ref().map(|r| redis_stats::shares(r, d, rooms * d)),
        baseline_s: round3(base.seconds),
        baseline_redis_commands_per_s: round1(base_commands_per_s),
        baseline_redis_cpu_pct: round1(base.redis_cpu_pct()),
        baseline_redis_bytes_per_s: round1(base_bytes_per_s),
        baseline_broker_cpu_pct: round1(base.broker_cpu_s.unwrap_or(0.0) / base.seconds.max(0.001) * 100.0),
        baseline_redis_by_command: base.redis.as_ref().map(|r| redis_stats::shares(r, base.seconds, base.seconds)),
        net_redis_commands_per_room_s: round3((commands_per_s - base_commands_per_s) / rooms),
        net_redis_cpu_us_per_room_s: round1((cpu_us_per_s - base_cpu_us_per_s) / rooms),
        net_redis_bytes_per_room_s: round1((bytes_per_s - base_bytes_per_s) / rooms),
        broker_cpu_pct: round1(x.broker_cpu_s.unwrap_or(0.0) / d * 100.0),
        broker_rss_kb: broker_pid.and_then(procfs::rss_kb_of).map_or(0, |(rss, _)| rss),
        load_avg_1m: procfs::load_avg_1m(),
    }
}

impl IdleReport {
    /// Per room: gross, then net of the baseline (`base_*`: before any member connected).
    pub const HEADER: &'static str = "label        nodes  rooms  joined  seconds  red_cmd/s  base_cmd/s  cmd/room/s  net        redCPU%  baseCPU%  us/room/s  net      B/room/s  net      brkCPU%  baseBrk%  brkRSS_MB  load";

    pub fn row(&self) -> String {
        format!(
            "{:<12} {:<6} {:<6} {:<7} {:<8.1} {:<10.1} {:<11.1} {:<11.3} {:<10.3} {:<8.1} {:<9.1} {:<10.1} {:<8.1} {:<9.1} {:<8.1} {:<8.1} {:<9.1} {:<10.1} {:.2}",
            self.label,
            self.nodes,
            self.rooms,
            self.clients_joined,
            self.duration_s,
            self.redis_commands_per_s,
            self.baseline_redis_commands_per_s,
            self.redis_commands_per_room_s,
            self.net_redis_commands_per_room_s,
            self.redis_cpu_pct,
            self.baseline_redis_cpu_pct,
            self.redis_cpu_us_per_room_s,
            self.net_redis_cpu_us_per_room_s,
            self.redis_bytes_per_room_s,
            self.net_redis_bytes_per_room_s,
            self.broker_cpu_pct,
            self.baseline_broker_cpu_pct,
            self.broker_rss_kb as f64 / 1024.0,
            self.load_avg_1m,
        )
    }

    /// Calls per room and second by command, busiest first; and the baseline's calls a second.
    pub fn breakdown_line(&self) -> String {
        let Some(shares) = &self.redis_by_command else {
            return format!("{}: no Redis figures (--redis-port)", self.label);
        };
        let mut line = format!(
            "{}: redis calls per room and second by command (us of Redis in them): {}",
            self.label,
            redis_stats::breakdown_line(shares)
        );
        if let Some(base) = &self.baseline_redis_by_command {
            line.push_str(&format!(
                "\n{}: baseline (no rooms), redis calls a second by command: {}",
                self.label,
                redis_stats::breakdown_line(base)
            ));
        }
        line
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn an_idle_rooms_cost_is_divided_by_the_rooms_and_the_seconds_less_the_baseline() {
        let plan = Options::parse_from(["danmu-bench", "--workload", "w9", "--rooms", "50"]).resolve().unwrap();
        let idle = plan.idle.clone().unwrap();
        let mut delta = RedisDelta { cpu_s: Some(0.05), commands: 1000, net_bytes: 50_000, ..Default::default() };
        delta.by_command.insert("evalsha".into(), redis_stats::CommandStat { calls: 100, usec: 2000 });
        delta.by_command.insert("xrange".into(), redis_stats::CommandStat { calls: 500, usec: 1000 });
        let rooms = Interval { seconds: 10.0, redis: Some(delta), broker_cpu_s: Some(0.2) };
        let mut quiet = RedisDelta { cpu_s: Some(0.02), commands: 20, net_bytes: 10_000, ..Default::default() };
        quiet.by_command.insert("ping".into(), redis_stats::CommandStat { calls: 20, usec: 4 });
        let base = Interval { seconds: 10.0, redis: Some(quiet), broker_cpu_s: Some(0.1) };
        let r = report(&plan, &idle, 50, &rooms, Some(&base), None);
        assert_eq!((r.redis_commands_per_s, r.redis_commands_per_room_s), (100.0, 2.0));
        assert_eq!((r.redis_cpu_pct, r.redis_cpu_us_per_room_s), (0.5, 100.0));
        assert_eq!((r.redis_bytes_per_room_s, r.broker_cpu_pct), (100.0, 2.0));
        assert_eq!(
            (r.baseline_redis_commands_per_s, r.baseline_redis_cpu_pct, r.baseline_broker_cpu_pct),
            (2.0, 0.2, 1.0)
        );
        assert_eq!((r.net_redis_commands_per_room_s, r.net_redis_cpu_us_per_room_s), (1.96, 60.0));
        assert_eq!(r.net_redis_bytes_per_room_s, 80.0);
        let shares = r.redis_by_command.as_ref().unwrap();
        assert_eq!(shares[0].0, "xrange");
        assert_eq!((shares[0].1.per_s, shares[0].1.per_unit, shares[0].1.usec_per_unit), (50.0, 1.0, 2.0));
        assert!(r.json().contains(r#""redis_by_command":{"xrange":{"calls":500"#), "{}", r.json());
        assert!(r.breakdown_line().contains("baseline (no rooms), redis calls a second by command: ping 2.00 (0 us)"));
        let alone = report(&plan, &idle, 50, &rooms, None, None);
        assert_eq!((alone.baseline_s, alone.net_redis_commands_per_room_s), (0.0, 2.0), "no baseline: net = gross");
        let none = report(&plan, &idle, 50, &Interval { seconds: 10.0, ..Default::default() }, None, None);
        assert!(!none.redis && none.redis_by_command.is_none());
        assert!(none.breakdown_line().contains("no Redis figures"));
    }
}
