//! The generator's command line (clap) and the workload presets: W1-W4 of issue 7, W5 of
//! issue 13, W6 of issue 20, W7 of issue 19, W8 and W9 of issue 21.
//!
//! A preset fills in whatever the command line left unset, so `--workload w1 --clients 500`
//! is W1 with fewer clients. [`Options::resolve`] turns the parsed line into a [`Plan`].

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Hot room: 1 room, 2000 clients, rate stepped 100..1600 pushes/s.
    W1,
    /// Many rooms: 200 rooms x 10 clients, 4000 pushes/s, p99 bound = window + 10 ms.
    W2,
    /// Idle: 10,000 clients over 100 rooms, 10 pushes/s; reports broker RSS per connection.
    W3,
    /// Ingest: no clients, pushes of 5 items as fast as acks allow (64 outstanding).
    W4,
    /// Churn: 1000 members in 20 rooms and 100 pushes/s for 300 s, while 200 clients/s
    /// connect, join, chat and leave (one in ten cutting its connection and recovering with
    /// last_seq); reports broker RSS after the first minute and at the end.
    W5,
    /// Compression: 1 room of 2000 members with batch=1, 1200 pushes/s of `danmu-broker
    /// simulate`'s realistic mix (chat in Chinese with emoji, likes, gifts; its generator's
    /// items); run it with and without --deflate and compare the wire's bytes per event, the
    /// broker's CPU per delivery and p99.
    W6,
    /// Burst: 2000 members in 1 room, 1000 of them reading nothing after entering; one burst
    /// of 3800 items of ~1.2 KB (4.5 MB of events, the burst of issue 19), 50 a push, every
    /// push in flight at once; reports the broker's RSS before, at its peak and after, every
    /// reader's items in order, and the members that read nothing closed with 1013
    /// (`burst.rs`).
    W7,
    /// Many quiet rooms: 5000 rooms of 2 members (10,000 clients; with two --url nodes each
    /// room has a member on each), 1 push/s per room (5000 pushes/s, one item each, round-robin
    /// over the rooms and the pushers). With --redis-port it reports Redis's commands, CPU and
    /// bytes per push and the calls per push by command. --rooms scales it: the members
    /// (2 a room) and the rate (1 a room) follow unless given.
    W8,
    /// Idle rooms: 1000 rooms, 1 member each on the first node (which so owns them), no
    /// pushes; after --settle-s (5) it measures Redis for --duration-s (10): commands/s in all
    /// and per room, by command, and its CPU. --rooms scales it (the members follow).
    W9,
}

#[derive(Debug, Clone, Parser)]
#[command(name = "danmu-bench", version, about = "Load generator for danmu-broker (loopback only)")]
pub struct Options {
    /// Broker base URL, or several nodes' URLs separated by commas (clients and pushers are
    /// spread over them round-robin); loopback addresses only.
    #[arg(long, default_value = "ws://127.0.0.1:8080", value_delimiter = ',')]
    pub url: Vec<String>,
    /// A preset; explicit options below override its values.
    #[arg(long, value_enum)]
    pub workload: Option<Workload>,
    /// App clients (C).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Rooms (R); client i joins room i mod R, pushes go round-robin over the rooms.
    #[arg(long)]
    pub rooms: Option<usize>,
    /// Pushes per second, open loop (P); a comma-separated list runs one step per rate on the
    /// same connections. 0 = closed loop (see --window).
    #[arg(long, value_delimiter = ',')]
    pub rate: Option<Vec<u64>>,
    /// Clients connect with batch=1 (W6 always does).
    #[arg(long)]
    pub batch: bool,
    /// Clients offer permessage-deflate and inflate what the broker compresses (docs/protocol.md
    /// 2.8); the run reports the time they spent inflating apart.
    #[arg(long)]
    pub deflate: bool,
    /// 1 in N clients inflates, scans and checks every event (seq, latency, deliveries, wire
    /// bytes); the others read their bytes and drop them unread. Inflating is every viewer's
    /// own small cost, but 2,000 viewers inflating W6's 2.4 M events/s take more CPU than
    /// this class of machine has beside the broker (default 1; W6: 10).
    #[arg(long)]
    pub check_every: Option<usize>,
    /// Push the realistic mix of `danmu-broker simulate` (its generator: Chinese chat with
    /// emoji, likes, gifts, from 120 viewers) instead of padded chat (W6 always does).
    #[arg(long)]
    pub realistic: bool,
    /// BIGO pusher connections.
    #[arg(long, default_value_t = 1)]
    pub pushers: usize,
    /// Danmu items per push (with --realistic, the most: each push carries 1 to N).
    #[arg(long)]
    pub items_per_push: Option<usize>,
    /// Closed loop (rate 0): pushes kept outstanding per pusher. Open loop: the most
    /// outstanding before a due push is skipped (and counted).
    #[arg(long)]
    pub window: Option<usize>,
    /// Measured seconds per step (default 10; W5: 300).
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Short-lived clients started per second during each step (default 0; W5: 200).
    #[arg(long)]
    pub churn_rate: Option<u64>,
    /// How long each short-lived client stays in its room.
    #[arg(long, default_value_t = 1000)]
    pub churn_stay_ms: u64,
    /// Percentage of short-lived clients that cut their connection and recover with last_seq.
    #[arg(long, default_value_t = 10)]
    pub churn_reconnect_pct: u64,
    /// Seconds of pushing before each step's measurement starts.
    #[arg(long, default_value_t = 3.0)]
    pub warmup_s: f64,
    /// Extra wait after each step's pushing stops (on top of the reorder window) for the last
    /// events to arrive.
    #[arg(long, default_value_t = 1500)]
    pub drain_ms: u64,
    /// Size of one delivered send_topic_msg event in bytes (the content is padded to it;
    /// default 250, W7: 1200).
    #[arg(long)]
    pub event_bytes: Option<usize>,
    /// An idle run (W9): seconds between the last member's join and the measurement.
    #[arg(long)]
    pub settle_s: Option<f64>,
    /// An idle run (W9): seconds of measuring the nodes and Redis before any member connects,
    /// taken off the per-room figures (default: --duration-s; 0 = none).
    #[arg(long)]
    pub baseline_s: Option<f64>,
    /// A burst run (W7): this many danmu items pushed at once, `--items-per-push` a push, into
    /// one room (default 3800 with W7).
    #[arg(long)]
    pub burst_items: Option<usize>,
    /// A burst run: members of the room that read nothing after entering (W7: 1000 of 2000).
    #[arg(long)]
    pub stalled: Option<usize>,
    /// A burst run: the receive buffer (SO_RCVBUF) of the members that read nothing.
    #[arg(long, default_value_t = 4096)]
    pub stalled_recv_buffer: u32,
    /// The broker's client.write_timeout_ms: a burst run checks that the members that read
    /// nothing were closed within it.
    #[arg(long, default_value_t = 10_000)]
    pub write_timeout_ms: u64,
    /// New client connections per second during the connect phase.
    #[arg(long, default_value_t = 1000)]
    pub connect_rate: u64,
    /// Give up on clients not joined after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub connect_timeout_s: u64,
    /// Threads for the clients (each runs one single-threaded runtime). One thread reads
    /// about 1.5 million events/s on this class of machine; W1 needs two.
    #[arg(long, default_value_t = 2)]
    pub client_threads: usize,
    /// The brokers' pids for CPU and RSS (summed over nodes); default: the processes listening
    /// on the URLs' ports.
    #[arg(long, value_delimiter = ',')]
    pub broker_pid: Vec<u32>,
    /// Port of the Redis the nodes share (loopback): the run then also reports Redis's CPU and
    /// the Redis commands per acknowledged push (`INFO stats`).
    #[arg(long)]
    pub redis_port: Option<u16>,
    /// The broker's room.reorder_window_ms (the latency bound is this plus --latency-slack-ms).
    #[arg(long, default_value_t = 300)]
    pub reorder_window_ms: u64,
    /// Allowed p99 above the reorder window for a step to count as sustained.
    #[arg(long)]
    pub latency_slack_ms: Option<u64>,
    /// The broker's auth.jwt_secret.
    #[arg(long, default_value = "change-me")]
    pub jwt_secret: String,
    /// A bigo.accounts entry of the broker.
    #[arg(long, default_value = "bigoUser1")]
    pub account: String,
    #[arg(long, default_value = "change-me")]
    pub password: String,
    #[arg(long, default_value = "inke")]
    pub platform_abbr: String,
    #[arg(long, default_value = "/bigo/ws")]
    pub bigo_path: String,
    #[arg(long, default_value = "/iapi/websocket")]
    pub client_path: String,
    /// Seconds between each client's `ping` frames (the broker drops clients silent for
    /// client.idle_timeout_ms, 20 s by default).
    #[arg(long, default_value_t = 8)]
    pub ping_every_s: u64,
    /// Label of the result rows (default: the workload's name).
    #[arg(long)]
    pub label: Option<String>,
    /// Also append each result's JSON line to this file.
    #[arg(long)]
    pub json_out: Option<std::path::PathBuf>,
    /// Print nothing but the results.
    #[arg(long)]
    pub quiet: bool,
}

/// A resolved run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// One `host:port` per broker node.
    pub host_ports: Vec<String>,
    pub ports: Vec<u16>,
    pub label: String,
    pub clients: usize,
    pub rooms: usize,
    pub rates: Vec<u64>,
    pub items_per_push: usize,
    pub window: usize,
    pub latency_bound_ms: u64,
    pub duration_s: f64,
    /// Short-lived clients per second (W5); 0 = none.
    pub churn_rate: u64,
    pub event_bytes: usize,
    /// Clients connect with batch=1.
    pub batch: bool,
    /// Pushes carry `simulate`'s realistic mix (`event_bytes` does not apply).
    pub realistic: bool,
    /// 1 in this many clients checks every event; the others only read.
    pub check_every: usize,
    /// A burst run (W7) instead of steps.
    pub burst: Option<BurstPlan>,
    /// An idle run (W9) instead of steps: no pushers, Redis measured once.
    pub idle: Option<IdlePlan>,
}

/// What an idle run (W9) waits for: its members are `Plan::clients` over `Plan::rooms`, it
/// measures for `Plan::duration_s`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdlePlan {
    /// Seconds from the last join to the start of the measurement.
    pub settle_s: f64,
    /// Seconds measured before any member connects (0 = none).
    pub baseline_s: f64,
}

/// What a burst run (W7) pushes and to whom; its clients are `Plan::clients` in one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurstPlan {
    /// Items pushed at once, in pushes of `Plan::items_per_push`.
    pub items: usize,
    /// Members that read nothing after entering (the rest read everything).
    pub stalled: usize,
    pub stalled_recv_buffer: u32,
    pub write_timeout_ms: u64,
}

impl Options {
    pub fn resolve(&self) -> Result<Plan, String> {
        let (c, r, rates, items, window, slack): (usize, usize, Vec<u64>, usize, usize, u64) = match self.workload {
            Some(Workload::W1) => (2000, 1, vec![100, 200, 400, 800, 1200, 1600], 1, 4096, 150),
            Some(Workload::W2) => (2000, 200, vec![4000], 1, 4096, 10),
            Some(Workload::W3) => (10_000, 100, vec![10], 1, 4096, 150),
            Some(Workload::W4) => (0, 10, vec![0], 5, 64, 150),
            Some(Workload::W5) => (1000, 20, vec![100], 1, 4096, 150),
            Some(Workload::W6) => (2000, 1, vec![1200], 1, 4096, 150),
            Some(Workload::W7) => (2000, 1, vec![0], 50, 4096, 150),
            Some(Workload::W8) => (10_000, 5000, vec![5000], 1, 4096, 150),
            Some(Workload::W9) => (1000, 1000, vec![0], 1, 4096, 150),
            None => (10, 1, vec![100], 1, 4096, 150),
        };
        let w5 = self.workload == Some(Workload::W5);
        let w6 = self.workload == Some(Workload::W6);
        let w7 = self.workload == Some(Workload::W7);
        let w8 = self.workload == Some(Workload::W8);
        let w9 = self.workload == Some(Workload::W9);
        // W8 and W9 scale with whichever of --rooms and --clients is given: W8 has 2 members
        // and 1 push/s a room, W9 1 member a room.
        let (c, r, rates) = match (w8, w9) {
            (true, _) => {
                let rooms = self.rooms.or(self.clients.map(|c| c / 2)).unwrap_or(r).max(1);
                (2 * rooms, rooms, vec![rooms as u64])
            }
            (_, true) => {
                let rooms = self.rooms.or(self.clients).unwrap_or(r).max(1);
                (rooms, rooms, rates)
            }
            _ => (c, r, rates),
        };
        let rooms = self.rooms.unwrap_or(r).max(1);
        let clients = self.clients.unwrap_or(c);
        let burst = (w7 || self.burst_items.is_some()).then(|| BurstPlan {
            items: self.burst_items.unwrap_or(3800).max(1),
            stalled: self.stalled.unwrap_or(if w7 { 1000 } else { 0 }),
            stalled_recv_buffer: self.stalled_recv_buffer,
            write_timeout_ms: self.write_timeout_ms,
        });
        if let Some(b) = &burst {
            if b.stalled > clients || rooms != 1 {
                return Err("a burst run has one room and at most --clients members that read nothing".into());
            }
        }
        let duration_s = self.duration_s.unwrap_or(if w5 { 300.0 } else { 10.0 });
        let idle = w9.then(|| IdlePlan {
            settle_s: self.settle_s.unwrap_or(5.0).max(0.0),
            baseline_s: self.baseline_s.unwrap_or(duration_s).max(0.0),
        });
        if idle.is_some() && burst.is_some() {
            return Err("an idle run (W9) is not a burst run".into());
        }
        let rates = self.rate.clone().unwrap_or(rates);
        if rates.is_empty() {
            return Err("--rate needs at least one value".into());
        }
        if self.url.is_empty() {
            return Err("--url needs at least one URL".into());
        }
        let mut host_ports = Vec::new();
        let mut ports = Vec::new();
        for url in &self.url {
            let host_port = url
                .strip_prefix("ws://")
                .ok_or("--url must start with ws:// (TLS is not supported by the generator)")?
                .trim_end_matches('/')
                .to_string();
            let (host, port) = host_port.rsplit_once(':').ok_or("--url must name a port")?;
            let port: u16 = port.parse().map_err(|_| "--url port is not a number")?;
            // Loopback only: this tool floods whatever it points at.
            let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(format!(
                    "--url host {host} is not a loopback address; danmu-bench only targets 127.0.0.0/8"
                ));
            }
            host_ports.push(host_port);
            ports.push(port);
        }
        let label = self.label.clone().unwrap_or_else(|| match self.workload {
            Some(w) => format!("{w:?}"),
            None => "custom".into(),
        });
        Ok(Plan {
            host_ports,
            ports,
            label,
            clients,
            rooms,
            rates,
            items_per_push: self.items_per_push.unwrap_or(items).max(1),
            window: self.window.unwrap_or(window).max(1),
            latency_bound_ms: self.reorder_window_ms + self.latency_slack_ms.unwrap_or(slack),
            duration_s,
            churn_rate: self.churn_rate.unwrap_or(if w5 { 200 } else { 0 }),
            event_bytes: self.event_bytes.unwrap_or(if burst.is_some() { 1200 } else { 250 }),
            batch: self.batch || w6,
            realistic: self.realistic || w6,
            check_every: self.check_every.unwrap_or(if w6 { 10 } else { 1 }).max(1),
            burst,
            idle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preset_fills_only_what_the_command_line_left_open() {
        let o = Options::parse_from(["danmu-bench", "--workload", "w1", "--clients", "50"]);
        let p = o.resolve().unwrap();
        assert_eq!((p.clients, p.rooms, p.rates.len(), p.latency_bound_ms), (50, 1, 6, 450));
    }

    #[test]
    fn non_loopback_targets_are_refused() {
        let o = Options::parse_from(["danmu-bench", "--url", "ws://10.0.0.1:8080"]);
        assert!(o.resolve().is_err());
        let w5 = Options::parse_from(["danmu-bench", "--workload", "w5"]).resolve().unwrap();
        assert_eq!((w5.clients, w5.rooms, w5.duration_s, w5.churn_rate), (1000, 20, 300.0, 200));
        let o = Options::parse_from(["danmu-bench", "--url", "ws://127.0.0.1:9000", "--rate", "1,2"]);
        assert_eq!(o.resolve().unwrap().rates, vec![1, 2]);
        let o = Options::parse_from(["danmu-bench", "--url", "ws://127.0.0.1:9000,ws://10.0.0.1:9001"]);
        assert!(o.resolve().is_err(), "every node must be local");
    }

    #[test]
    fn w7_is_one_burst_into_one_room_half_of_which_reads_nothing() {
        let p = Options::parse_from(["danmu-bench", "--workload", "w7"]).resolve().unwrap();
        assert_eq!((p.clients, p.rooms, p.items_per_push, p.event_bytes), (2000, 1, 50, 1200));
        let b = p.burst.unwrap();
        assert_eq!((b.items, b.stalled, b.stalled_recv_buffer, b.write_timeout_ms), (3800, 1000, 4096, 10_000));
        let o =
            Options::parse_from(["danmu-bench", "--workload", "w7", "--clients", "10", "--write-timeout-ms", "2000"]);
        assert!(o.resolve().is_err(), "more members that read nothing than members");
        let o = Options::parse_from(["danmu-bench", "--burst-items", "100", "--clients", "4", "--stalled", "2"]);
        let p = o.resolve().unwrap();
        assert_eq!(p.burst.map(|b| (b.items, b.stalled)), Some((100, 2)));
        assert!(Options::parse_from(["danmu-bench"]).resolve().unwrap().burst.is_none());
    }

    #[test]
    fn w6_is_one_room_of_batch_members_under_the_simulators_mix_with_or_without_deflate() {
        let p = Options::parse_from(["danmu-bench", "--workload", "w6"]).resolve().unwrap();
        assert_eq!((p.clients, p.rooms, p.rates.clone(), p.items_per_push), (2000, 1, vec![1200], 1));
        assert!(p.batch && p.realistic && p.burst.is_none());
        assert_eq!(p.check_every, 10, "1 in 10 members inflates and checks");
        let o = Options::parse_from(["danmu-bench", "--workload", "w6", "--deflate"]);
        assert!(o.deflate);
        let w1 = Options::parse_from(["danmu-bench", "--workload", "w1"]).resolve().unwrap();
        assert!(!w1.batch && !w1.realistic);
    }

    #[test]
    fn w8_is_two_members_and_one_push_a_second_per_room_and_scales_with_the_rooms() {
        let p = Options::parse_from(["danmu-bench", "--workload", "w8"]).resolve().unwrap();
        assert_eq!((p.clients, p.rooms, p.rates.clone(), p.items_per_push), (10_000, 5000, vec![5000], 1));
        assert!(p.burst.is_none() && p.idle.is_none() && !p.batch);
        assert_eq!(p.duration_s, 10.0);
        let p = Options::parse_from(["danmu-bench", "--workload", "w8", "--rooms", "200"]).resolve().unwrap();
        assert_eq!((p.clients, p.rooms, p.rates), (400, 200, vec![200]), "a smoke run's 200 rooms");
        let p = Options::parse_from(["danmu-bench", "--workload", "w8", "--clients", "300"]).resolve().unwrap();
        assert_eq!((p.clients, p.rooms, p.rates), (300, 150, vec![150]));
        let o = ["danmu-bench", "--workload", "w8", "--rooms", "100", "--clients", "100", "--rate", "50"];
        let p = Options::parse_from(o).resolve().unwrap();
        assert_eq!((p.clients, p.rooms, p.rates), (100, 100, vec![50]), "explicit values win");
    }

    #[test]
    fn w9_is_one_member_a_room_and_no_pushes_measured_after_a_settle() {
        let p = Options::parse_from(["danmu-bench", "--workload", "w9"]).resolve().unwrap();
        assert_eq!((p.clients, p.rooms, p.duration_s), (1000, 1000, 10.0));
        assert_eq!(p.idle, Some(IdlePlan { settle_s: 5.0, baseline_s: 10.0 }));
        let o = ["danmu-bench", "--workload", "w9", "--rooms", "50", "--settle-s", "2", "--duration-s", "5"];
        let p = Options::parse_from(o).resolve().unwrap();
        assert_eq!((p.clients, p.rooms, p.duration_s), (50, 50, 5.0));
        assert_eq!(
            p.idle,
            Some(IdlePlan { settle_s: 2.0, baseline_s: 5.0 }),
            "the baseline as long as the measurement"
        );
        let o = ["danmu-bench", "--workload", "w9", "--baseline-s", "0"];
        assert_eq!(Options::parse_from(o).resolve().unwrap().idle.map(|i| i.baseline_s), Some(0.0));
        let p = Options::parse_from(["danmu-bench", "--workload", "w9", "--clients", "80"]).resolve().unwrap();
        assert_eq!((p.clients, p.rooms), (80, 80));
        let o = ["danmu-bench", "--workload", "w9", "--rooms", "40", "--clients", "80"];
        assert_eq!(Options::parse_from(o).resolve().unwrap().clients, 80, "a member on each of two nodes");
        assert!(Options::parse_from(["danmu-bench", "--workload", "w8"]).resolve().unwrap().idle.is_none());
    }

    #[test]
    fn several_urls_are_several_nodes() {
        let o = Options::parse_from(["danmu-bench", "--url", "ws://127.0.0.1:9000,ws://localhost:9001/"]);
        let p = o.resolve().unwrap();
        assert_eq!((p.host_ports, p.ports), (vec!["127.0.0.1:9000".into(), "localhost:9001".into()], vec![9000, 9001]));
    }
}
