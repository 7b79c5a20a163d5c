//! What the generator reads from the Redis the nodes share (`--redis-port`, loopback), from one
//! `INFO all` per reading: its CPU seconds (`used_cpu_user` + `used_cpu_sys`, to the
//! microsecond, where `/proc/<pid>` counts 10 ms ticks: at 50 idle rooms a tick is 20 us per room
//! and second over 10 s; `/proc` when INFO lacks them), the commands it processed, the bytes
//! in and out, and `INFO commandstats` (calls and microseconds per command, commands
//! run inside Lua scripts included). Two readings make a [`RedisDelta`]: per second, per
//! acknowledged push (W1, W8) or per room (W9), by command.
//!
//! The readings go over one connection kept open for the run, so that between two readings
//! Redis sees exactly one command of ours (the second reading's `INFO`, counted after it ran:
//! the first one's is not in its own figures), and the bytes of ours are that `INFO`'s request
//! and the first one's reply; [`RedisDelta`] takes them out.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::procfs;

/// Calls and time of one command (`cmdstat_<name>:calls=..,usec=..`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandStat {
    pub calls: u64,
    pub usec: u64,
}

/// What Redis had done at one moment.
#[derive(Debug, Clone, Default)]
pub struct RedisReading {
    /// Its CPU seconds (user + system of the server process).
    pub cpu_s: Option<f64>,
    /// `total_commands_processed`.
    pub commands: u64,
    /// `total_net_input_bytes` + `total_net_output_bytes`.
    pub net_bytes: u64,
    /// `INFO commandstats`, by lower-case command name (`evalsha`, `client|setinfo`).
    pub by_command: BTreeMap<String, CommandStat>,
    /// Bytes of this reading's reply on the wire (counted in the next reading's figures).
    pub reply_bytes: u64,
}

/// The request `INFO all` on the wire (RESP2: `*2 $4 INFO $3 all`).
const INFO_REQUEST_BYTES: u64 = 23;

/// A connection to the shared Redis, and its process.
pub struct RedisProbe {
    pub port: u16,
    pub pid: Option<u32>,
    conn: redis::Connection,
}

impl RedisProbe {
    pub fn connect(port: u16) -> Result<Self, String> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).map_err(|e| e.to_string())?;
        let conn = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .map_err(|e| format!("--redis-port {port}: {e}"))?;
        Ok(Self { port, pid: procfs::pid_listening_on(port), conn })
    }

    /// One reading; `None` when Redis did not answer.
    pub fn read(&mut self) -> Option<RedisReading> {
        let text: String = redis::cmd("INFO").arg("all").query(&mut self.conn).ok()?;
        let mut r = parse_info(&text);
        r.cpu_s = r.cpu_s.or_else(|| self.pid.and_then(procfs::cpu_seconds));
        // A RESP2 bulk string: `$<len>\r\n<text>\r\n`.
        r.reply_bytes = text.len() as u64 + text.len().to_string().len() as u64 + 5;
        Some(r)
    }
}

/// The figures of `INFO` text that a reading keeps.
pub fn parse_info(text: &str) -> RedisReading {
    let mut r = RedisReading::default();
    let (mut user, mut sys) = (None, None);
    for line in text.lines() {
        let Some((key, value)) = line.trim_end().split_once(':') else {
            continue;
        };
        match key {
            "total_commands_processed" => r.commands = value.parse().unwrap_or(0),
            "total_net_input_bytes" | "total_net_output_bytes" => r.net_bytes += value.parse().unwrap_or(0),
            "used_cpu_user" => user = value.parse::<f64>().ok(),
            "used_cpu_sys" => sys = value.parse::<f64>().ok(),
            _ => {
                if let Some(name) = key.strip_prefix("cmdstat_") {
                    r.by_command.insert(name.to_ascii_lowercase(), parse_cmdstat(value));
                }
            }
        }
    }
    r.cpu_s = user.zip(sys).map(|(u, s)| u + s);
    r
}

/// `calls=12,usec=34,usec_per_call=2.83,rejected_calls=0,failed_calls=0` (older servers stop
/// after `usec_per_call`).
fn parse_cmdstat(value: &str) -> CommandStat {
    let mut s = CommandStat::default();
    for field in value.split(',') {
        match field.split_once('=') {
            Some(("calls", v)) => s.calls = v.parse().unwrap_or(0),
            Some(("usec", v)) => s.usec = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    s
}

/// What Redis did between two readings, the generator's own reading taken out.
#[derive(Debug, Clone, Default)]
pub struct RedisDelta {
    pub cpu_s: Option<f64>,
    pub commands: u64,
    pub net_bytes: u64,
    /// Commands with at least one call in the interval.
    pub by_command: BTreeMap<String, CommandStat>,
}

impl RedisDelta {
    pub fn between(a: &RedisReading, b: &RedisReading) -> Self {
        let mut by_command = BTreeMap::new();
        for (name, after) in &b.by_command {
            let before = a.by_command.get(name).copied().unwrap_or_default();
            let mut calls = after.calls.saturating_sub(before.calls);
            if name == "info" {
                calls = calls.saturating_sub(1);
            }
            if calls > 0 {
                by_command.insert(name.clone(), CommandStat { calls, usec: after.usec.saturating_sub(before.usec) });
            }
        }
        Self {
            cpu_s: b.cpu_s.zip(a.cpu_s).map(|(b, a)| b - a),
            commands: b.commands.saturating_sub(a.commands).saturating_sub(1),
            net_bytes: b.net_bytes.saturating_sub(a.net_bytes).saturating_sub(a.reply_bytes + INFO_REQUEST_BYTES),
            by_command,
        }
    }
}

/// One command's share of an interval, as reported.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CommandShare {
    pub calls: u64,
    /// Calls per second of the interval.
    pub per_s: f64,
    /// Calls per unit (an acknowledged push, or a room and second), and Redis's microseconds in them
    /// (`usec` of commandstats: a script's commands count both in themselves and in the script).
    pub per_unit: f64,
    pub usec_per_unit: f64,
}

/// The breakdown by command over `seconds`, per `units` (acknowledged pushes, or room-seconds;
/// 0 leaves those at 0), busiest first.
pub fn shares(delta: &RedisDelta, seconds: f64, units: f64) -> Vec<(String, CommandShare)> {
    let per = |x: u64| if units > 0.0 { round3(x as f64 / units) } else { 0.0 };
    let mut out: Vec<(String, CommandShare)> = delta
        .by_command
        .iter()
        .map(|(name, s)| {
            let share = CommandShare {
                calls: s.calls,
                per_s: round3(s.calls as f64 / seconds.max(0.001)),
                per_unit: per(s.calls),
                usec_per_unit: per(s.usec),
            };
            (name.clone(), share)
        })
        .collect();
    out.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then_with(|| a.0.cmp(&b.0)));
    out
}

/// `evalsha 2.00 (41 us), xrange 1.00 (3 us), ping 0.004 (0 us)`: calls per unit by command,
/// busiest first, with Redis's microseconds in them per unit.
pub fn breakdown_line(shares: &[(String, CommandShare)]) -> String {
    if shares.is_empty() {
        return "none".into();
    }
    let parts: Vec<String> = shares
        .iter()
        .map(|(name, s)| {
            // Rare commands (a renewal among many pushes) would all read 0.00.
            let digits = if s.per_unit >= 0.1 { 2 } else { 3 };
            format!("{name} {:.digits$} ({:.0} us)", s.per_unit, s.usec_per_unit)
        })
        .collect();
    parts.join(", ")
}

/// A breakdown in JSON: an object by command name, busiest first (as `shares` ordered it).
pub fn serialize_shares<S: serde::Serializer>(
    shares: &Option<Vec<(String, CommandShare)>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match shares {
        Some(shares) => serializer.collect_map(shares.iter().map(|(name, share)| (name, share))),
        None => serializer.serialize_none(),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `INFO all` of redis-server 7.0.15, cut to what matters, as the nodes left it after a
    /// few pushes.
    const CAPTURED: &str = "# Server\r\nredis_version:7.0.15\r\n\r\n# Stats\r\ntotal_connections_received:9\r\n\
        total_commands_processed:1234\r\ninstantaneous_ops_per_sec:12\r\ntotal_net_input_bytes:56789\r\n\
        total_net_output_bytes:43210\r\n\r\n# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500001\r\n\
        used_cpu_sys_children:9.000000\r\n\r\n# Commandstats\r\n\
        cmdstat_evalsha:calls=200,usec=9000,usec_per_call=45.00,rejected_calls=0,failed_calls=1\r\n\
        cmdstat_xadd:calls=300,usec=900,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_client|setinfo:calls=4,usec=2,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_INFO:calls=7,usec=700,usec_per_call=100.00\r\n\
        cmdstat_publish:calls=100,usec=150,usec_per_call=1.50,rejected_calls=0,failed_calls=0\r\n\
        \r\n# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0\r\n";

    #[test]
    fn info_text_gives_the_totals_and_every_commands_calls() {
        let r = parse_info(CAPTURED);
        assert_eq!((r.commands, r.net_bytes), (1234, 56789 + 43210));
        assert!((r.cpu_s.unwrap() - 3.750001).abs() < 1e-9, "the server's own, not its children's");
        assert_eq!(r.by_command.len(), 5);
        assert_eq!(r.by_command["evalsha"], CommandStat { calls: 200, usec: 9000 });
        assert_eq!(r.by_command["client|setinfo"], CommandStat { calls: 4, usec: 2 });
        assert_eq!(r.by_command["info"], CommandStat { calls: 7, usec: 700 }, "older format, upper case");
    }

    #[test]
    fn a_delta_leaves_out_the_generators_own_info_and_commands_not_called() {
        let mut a = parse_info(CAPTURED);
        a.cpu_s = Some(1.0);
        a.reply_bytes = 1000;
        let later = CAPTURED
            .replace("total_commands_processed:1234", "total_commands_processed:1835")
            .replace("total_net_input_bytes:56789", "total_net_input_bytes:70000")
            .replace("evalsha:calls=200,usec=9000", "evalsha:calls=400,usec=18000")
            .replace("xadd:calls=300,usec=900", "xadd:calls=700,usec=2100")
            .replace("INFO:calls=7", "INFO:calls=8");
        let mut b = parse_info(&later);
        b.cpu_s = Some(1.5);
        let d = RedisDelta::between(&a, &b);
        assert_eq!(d.commands, 600, "601 processed, one of them the second INFO");
        assert_eq!(d.net_bytes, 70000 - 56789 - 1000 - INFO_REQUEST_BYTES);
        assert_eq!(d.cpu_s, Some(0.5));
        let names: Vec<&str> = d.by_command.keys().map(String::as_str).collect();
        assert_eq!(names, vec!["evalsha", "xadd"], "info, publish and client|setinfo had no calls of the nodes");
        let s = shares(&d, 10.0, 200.0);
        assert_eq!(s[0].0, "xadd");
        assert_eq!(s[0].1, CommandShare { calls: 400, per_s: 40.0, per_unit: 2.0, usec_per_unit: 6.0 });
        assert_eq!(s[1].1.usec_per_unit, 45.0);
        assert_eq!(breakdown_line(&s), "xadd 2.00 (6 us), evalsha 1.00 (45 us)");
        assert_eq!(shares(&d, 10.0, 0.0)[0].1.per_unit, 0.0, "no units, no per-unit figure");
        assert_eq!(breakdown_line(&shares(&d, 10.0, 8000.0)), "xadd 0.050 (0 us), evalsha 0.025 (1 us)");
    }
}
