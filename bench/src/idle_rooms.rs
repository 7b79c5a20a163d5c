//! W9, idle rooms (issue 21): what rooms that a node owns cost Redis while nothing is pushed.
//! The members (one a room by default, all on the first node, whose joins make it the rooms'
//! owner: docs/protocol.md 7) are connected by the orchestrator (`lib.rs`), which then hands
//! over here: wait `--settle-s`, read Redis, the brokers and the clock, wait `--duration-s`,
//! read again. The result is one [`IdleReport`]: Redis's commands a second in all and per room,
//! by command, its CPU and bytes, and the brokers' CPU.

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
    /// Summed over the nodes; 0 when their pids were not found.
    pub broker_cpu_pct: f64,
    pub broker_rss_kb: u64,
    pub load_avg_1m: f64,
}

/// Settles, then measures for the plan's duration (blocking).
pub fn measure(
    opts: &Options,
    plan: &Plan,
    idle: &IdlePlan,
    joined: usize,
    broker_pid: Option<&[u32]>,
    mut redis: Option<&mut RedisProbe>,
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
    let cpu0 = broker_pid.and_then(procfs::cpu_seconds_of);
    let redis0 = redis.as_deref_mut().and_then(RedisProbe::read);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(plan.duration_s));
    let cpu1 = broker_pid.and_then(procfs::cpu_seconds_of);
    let redis1 = redis.and_then(RedisProbe::read);
    let d = started.elapsed().as_secs_f64();
    let delta = redis0.zip(redis1).map(|(a, b)| RedisDelta::between(&a, &b));
    report(plan, idle, joined, d, delta.as_ref(), cpu0.zip(cpu1).map(|(a, b)| b - a), broker_pid)
}

fn report(
    plan: &Plan,
    idle: &IdlePlan,
    joined: usize,
    d: f64,
    delta: Option<&RedisDelta>,
    broker_cpu_s: Option<f64>,
    broker_pid: Option<&[u32]>,
) -> IdleReport {
    let rooms = plan.rooms.max(1) as f64;
    let round1 = |x: f64| (x * 10.0).round() / 10.0;
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let redis_cpu_s = delta.and_then(|r| r.cpu_s).unwrap_or(0.0);
    let commands_per_s = delta.map_or(0.0, |r| r.commands as f64 / d);
    let bytes_per_s = delta.map_or(0.0, |r| r.net_bytes as f64 / d);
    IdleReport {
        label: plan.label.clone(),
        nodes: plan.ports.len(),
        rooms: plan.rooms,
        clients: plan.clients,
        clients_joined: joined,
        settle_s: idle.settle_s,
        duration_s: round3(d),
        redis: delta.is_some(),
        redis_commands_per_s: round1(commands_per_s),
        redis_commands_per_room_s: round3(commands_per_s / rooms),
        redis_cpu_pct: round1(redis_cpu_s / d * 100.0),
        redis_cpu_us_per_room_s: round1(redis_cpu_s * 1e6 / d / rooms),
        redis_bytes_per_s: round1(bytes_per_s),
        redis_bytes_per_room_s: round1(bytes_per_s / rooms),
        redis_by_command: delta.map(|r| redis_stats::shares(r, d, rooms * d)),
        broker_cpu_pct: round1(broker_cpu_s.unwrap_or(0.0) / d * 100.0),
        broker_rss_kb: broker_pid.and_then(procfs::rss_kb_of).map_or(0, |(rss, _)| rss),
        load_avg_1m: procfs::load_avg_1m(),
    }
}

impl IdleReport {
    pub const HEADER: &'static str =
        "label        nodes  rooms  joined  seconds  red_cmd/s  cmd/room/s  redCPU%  us/room/s  B/room/s  brkCPU%  brkRSS_MB  load";

    pub fn row(&self) -> String {
        format!(
            "{:<12} {:<6} {:<6} {:<7} {:<8.1} {:<10.1} {:<11.3} {:<8.1} {:<10.1} {:<9.1} {:<8.1} {:<10.1} {:.2}",
            self.label,
            self.nodes,
            self.rooms,
            self.clients_joined,
            self.duration_s,
            self.redis_commands_per_s,
            self.redis_commands_per_room_s,
            self.redis_cpu_pct,
            self.redis_cpu_us_per_room_s,
            self.redis_bytes_per_room_s,
            self.broker_cpu_pct,
            self.broker_rss_kb as f64 / 1024.0,
            self.load_avg_1m,
        )
    }

    /// Calls per room and second by command, busiest first.
    pub fn breakdown_line(&self) -> String {
        match &self.redis_by_command {
            Some(shares) => format!(
                "{}: redis calls per room and second by command (us of Redis in them): {}",
                self.label,
                redis_stats::breakdown_line(shares)
            ),
            None => format!("{}: no Redis figures (--redis-port)", self.label),
        }
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
    fn an_idle_rooms_cost_is_divided_by_the_rooms_and_the_seconds() {
        let plan = Options::parse_from(["danmu-bench", "--workload", "w9", "--rooms", "50"]).resolve().unwrap();
        let idle = plan.idle.clone().unwrap();
        let mut delta = RedisDelta { cpu_s: Some(0.05), commands: 1000, net_bytes: 50_000, ..Default::default() };
        delta.by_command.insert("evalsha".into(), redis_stats::CommandStat { calls: 100, usec: 2000 });
        delta.by_command.insert("xreadgroup".into(), redis_stats::CommandStat { calls: 500, usec: 1000 });
        let r = report(&plan, &idle, 50, 10.0, Some(&delta), Some(0.2), None);
        assert_eq!((r.redis_commands_per_s, r.redis_commands_per_room_s), (100.0, 2.0));
        assert_eq!((r.redis_cpu_pct, r.redis_cpu_us_per_room_s), (0.5, 100.0));
        assert_eq!((r.redis_bytes_per_room_s, r.broker_cpu_pct), (100.0, 2.0));
        let shares = r.redis_by_command.as_ref().unwrap();
        assert_eq!(shares[0].0, "xreadgroup");
        assert_eq!((shares[0].1.per_s, shares[0].1.per_unit, shares[0].1.usec_per_unit), (50.0, 1.0, 2.0));
        assert!(r.json().contains(r#""redis_by_command":{"xreadgroup":{"calls":500"#), "{}", r.json());
        let none = report(&plan, &idle, 50, 10.0, None, None, None);
        assert!(!none.redis && none.redis_by_command.is_none());
        assert!(none.breakdown_line().contains("no Redis figures"));
    }
}
