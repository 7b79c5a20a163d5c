//! What the generator counts and how it reports: a log-linear latency histogram, the per-step
//! counters each client shard keeps (merged at the end of a step), and the [`StepReport`]
//! printed as a table row and as one JSON line.

use serde::Serialize;

use crate::redis_stats::{self, CommandShare};

/// A log-linear histogram of microsecond values: 64 sub-buckets per power of two, so any
/// quantile is within ~1.6% of the true value. Fixed size (32 KiB), no allocation per record.
#[derive(Clone)]
pub struct Hist {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;

impl Default for Hist {
    fn default() -> Self {
        Self { counts: vec![0; (64 * SUB) as usize], total: 0, max: 0 }
    }
}

impl Hist {
    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let magnitude = 63 - v.leading_zeros() - SUB_BITS + 1;
        let sub = v >> (magnitude - 1);
        (u64::from(magnitude) * SUB + (sub - SUB)) as usize
    }

    /// The smallest value of bucket `i` (the inverse of [`Hist::index`]).
    fn low(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let magnitude = i / SUB;
        let sub = i % SUB + SUB;
        sub << (magnitude - 1)
    }

    pub fn record(&mut self, v: u64) {
        let i = Self::index(v).min(self.counts.len() - 1);
        self.counts[i] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the low edge of the bucket holding it.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::low(i).min(self.max);
            }
        }
        self.max
    }
}

/// What the clients of one shard saw during one step.
#[derive(Clone, Default)]
pub struct ClientStats {
    /// Danmu events (`send_topic_msg`, `like`, `send_gift`, `danmu`) whose `ts` lies in the
    /// step's measurement window.
    pub delivered: u64,
    /// Latency of those, from `ts` to receipt, in microseconds.
    pub latency_us: Hist,
    /// Gaps, duplicates and out-of-order events by `seq`, counted when noticed.
    pub lost: i64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Connections the broker closed during the step (e.g. 1013 for slow consumers).
    pub disconnected: u64,
    /// Frames received (one per event, or one per batch with `batch=1`).
    pub frames: u64,
    /// Bytes read from the sockets during the measurement window (WebSocket frames, as the
    /// TCP stream carried them), and the danmu events they held: the wire's bytes per event.
    pub wire_bytes: u64,
    pub wire_events: u64,
    /// Time the clients spent inflating compressed messages during the window.
    pub inflate_ns: u64,
}

impl ClientStats {
    pub fn merge(&mut self, o: &ClientStats) {
        self.delivered += o.delivered;
        self.latency_us.merge(&o.latency_us);
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.out_of_order += o.out_of_order;
        self.disconnected += o.disconnected;
        self.frames += o.frames;
        self.wire_bytes += o.wire_bytes;
        self.wire_events += o.wire_events;
        self.inflate_ns += o.inflate_ns;
    }
}

/// What the pushers saw during one step's measurement window.
#[derive(Clone, Default)]
pub struct PushStats {
    pub sent: u64,
    pub acked: u64,
    /// Pushes answered with something other than 200 (503: room full).
    pub refused: u64,
    /// Items acknowledged with 200, per room (the clients of that room should each get them).
    pub items_acked_per_room: Vec<u64>,
    pub ack_us: Hist,
    /// Pushes an open-loop pusher could not send because too many were outstanding.
    pub skipped: u64,
}

impl PushStats {
    pub fn merge(&mut self, o: &PushStats) {
        self.sent += o.sent;
        self.acked += o.acked;
        self.refused += o.refused;
        if self.items_acked_per_room.len() < o.items_acked_per_room.len() {
            self.items_acked_per_room.resize(o.items_acked_per_room.len(), 0);
        }
        for (a, b) in self.items_acked_per_room.iter_mut().zip(&o.items_acked_per_room) {
            *a += b;
        }
        self.ack_us.merge(&o.ack_us);
        self.skipped += o.skipped;
    }
}

/// One row of results.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub label: String,
    pub batch: bool,
    /// The clients offered permessage-deflate.
    pub deflate: bool,
    pub rooms: usize,
    pub clients: usize,
    pub clients_joined: usize,
    /// Target pushes/s (0 = closed loop, as fast as acks allow).
    pub rate: u64,
    pub items_per_push: usize,
    pub duration_s: f64,
    pub pushes_per_s: f64,
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    pub refused: u64,
    pub skipped: u64,
    pub expected: u64,
    pub delivered: u64,
    pub deliveries_per_s: f64,
    pub frames_per_s: f64,
    /// Bytes the clients read from their sockets per danmu event they got, both counted while
    /// the step was measured (WebSocket frame bytes; TCP/IP headers not included).
    pub wire_bytes_per_event: f64,
    /// Broker CPU per delivery, in nanoseconds: over every acknowledged item times the members
    /// of its room (with --check-every, most members do not count what they get).
    pub broker_cpu_ns_per_delivery: f64,
    pub broker_deliveries_per_s: f64,
    /// 1 in this many clients checked every event (`delivered`, `expected`, latency, wire
    /// bytes are theirs).
    pub check_every: usize,
    /// The clients' own inflating (--deflate): per danmu event, and in % of one core.
    pub inflate_ns_per_event: f64,
    pub inflate_cpu_pct: f64,
    pub lat_p50_ms: f64,
    pub lat_p99_ms: f64,
    pub lat_p999_ms: f64,
    pub lat_max_ms: f64,
    pub lost: i64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub disconnected: u64,
    pub broker_pid: Option<u32>,
    pub broker_cpu_s: f64,
    pub broker_cpu_pct: f64,
    pub broker_rss_kb: u64,
    pub broker_peak_rss_kb: u64,
    /// (RSS after connecting - RSS before) / clients, when clients > 0.
    pub broker_rss_per_conn_kb: f64,
    pub gen_cpu_pct: f64,
    /// Broker nodes the run was spread over (their CPU and RSS are summed).
    pub nodes: usize,
    /// With --redis-port: Redis's CPU during the step, and the commands it processed per
    /// acknowledged push (everything the nodes sent it, renewals and polls included).
    pub redis_cpu_pct: f64,
    pub redis_commands_per_push: f64,
    /// Bytes in and out of Redis per second (its `total_net_*_bytes`).
    pub redis_bytes_per_s: f64,
    /// Commands Redis processed per second, and its bytes in and out per acknowledged push.
    pub redis_commands_per_s: f64,
    pub redis_bytes_per_push: f64,
    /// With --redis-port: `INFO commandstats` over the step, by command (`per_unit` is the
    /// calls per acknowledged push, `usec_per_unit` Redis's microseconds in them).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "redis_stats::serialize_shares")]
    pub redis_by_command: Option<Vec<(String, CommandShare)>>,
    pub load_avg_1m: f64,
    /// Zero loss and duplicates, every expected event delivered, p99 within the latency bound.
    pub ok: bool,
    pub latency_bound_ms: f64,
}

fn ms(us: u64) -> f64 {
    (us as f64 / 100.0).round() / 10.0
}

impl StepReport {
    pub fn fill_latency(&mut self, h: &Hist) {
        self.lat_p50_ms = ms(h.quantile(0.50));
        self.lat_p99_ms = ms(h.quantile(0.99));
        self.lat_p999_ms = ms(h.quantile(0.999));
        self.lat_max_ms = ms(h.max());
    }

    pub fn fill_acks(&mut self, h: &Hist) {
        self.ack_p50_ms = ms(h.quantile(0.50));
        self.ack_p99_ms = ms(h.quantile(0.99));
    }

    pub const HEADER: &'static str = "label        batch  defl  C      R    rate    push/s   ack99ms  deliv/s     B/event  brk_ns/dlv  p50ms   p99ms   p999ms  maxms   lost  dup  ooo  disc  brkCPU%  brkRSS_MB  KB/conn  genCPU%  redCPU%  cmd/push  load  ok";

    pub fn row(&self) -> String {
        format!(
            "{:<12} {:<6} {:<5} {:<6} {:<4} {:<7} {:<8.0} {:<8.1} {:<11.0} {:<8.1} {:<11.0} {:<7.1} {:<7.1} {:<7.1} {:<7.1} {:<6} {:<4} {:<4} {:<5} {:<8.1} {:<10.1} {:<8.1} {:<8.1} {:<8.1} {:<9.1} {:<5.2} {}",
            self.label,
            if self.batch { "yes" } else { "no" },
            if self.deflate { "yes" } else { "no" },
            self.clients_joined,
            self.rooms,
            self.rate,
            self.pushes_per_s,
            self.ack_p99_ms,
            self.deliveries_per_s,
            self.wire_bytes_per_event,
            self.broker_cpu_ns_per_delivery,
            self.lat_p50_ms,
            self.lat_p99_ms,
            self.lat_p999_ms,
            self.lat_max_ms,
            self.lost,
            self.duplicated,
            self.out_of_order,
            self.disconnected,
            self.broker_cpu_pct,
            self.broker_rss_kb as f64 / 1024.0,
            self.broker_rss_per_conn_kb,
            self.gen_cpu_pct,
            self.redis_cpu_pct,
            self.redis_commands_per_push,
            self.load_avg_1m,
            if self.ok { "yes" } else { "NO" },
        )
    }

    /// With --redis-port, a second line under the row: Redis over the step, per push and by
    /// command, beside the ack latency and the brokers' CPU.
    pub fn redis_line(&self) -> Option<String> {
        let by_command = self.redis_by_command.as_ref()?;
        Some(format!(
            "{}: redis {:.0} commands/s, CPU {:.1} %, {:.2} commands and {:.0} B in+out per push; ack p50/p99 {:.1}/{:.1} ms; brokers {:.1} % CPU\n{}: redis calls per push by command (us of Redis in them): {}",
            self.label,
            self.redis_commands_per_s,
            self.redis_cpu_pct,
            self.redis_commands_per_push,
            self.redis_bytes_per_push,
            self.ack_p50_ms,
            self.ack_p99_ms,
            self.broker_cpu_pct,
            self.label,
            redis_stats::breakdown_line(by_command),
        ))
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut h = Hist::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, want) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.max(), 100_000);
        assert_eq!(h.quantile(0.0), 1);
    }

    #[test]
    fn bucket_low_edges_invert_the_index() {
        for v in [0u64, 1, 63, 64, 65, 127, 128, 1000, 123_456, 1 << 40] {
            let i = Hist::index(v);
            assert!(Hist::low(i) <= v && Hist::index(Hist::low(i)) == i, "{v}");
        }
    }
}
