//! The broker's Prometheus metrics (docs/protocol.md section 4), in one explicit registry.
//!
//! Every metric is an atomic owned by `prometheus-client`; actors hold an `Arc<Metrics>` and
//! bump them, `/metrics` encodes the registry. Counter names are registered without `_total`:
//! the crate appends it.

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Kind {
    Bigo,
    Client,
}

impl EncodeLabelValue for Kind {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Kind::Bigo => "bigo",
            Kind::Client => "client",
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: Kind,
}

/// Whether bytes written to a client socket were compressed (docs/protocol.md 2.8).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CompressedLabel {
    pub compressed: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabel {
    pub kind: Kind,
    pub reason: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub connections: Family<KindLabel, Gauge>,
    pub frames_in: Family<KindLabel, Counter>,
    pub frames_out: Family<KindLabel, Counter>,
    pub rejected: Family<RejectLabel, Counter>,
    pub duplicates: Counter,
    pub late_items: Counter,
    pub pulled_items: Counter,
    pub pull_failures: Counter,
    pub rooms: Gauge,
    /// High-water mark of any room's reorder queue since the last scrape.
    pub room_queue_depth_max: Gauge,
    pub slow_clients_disconnected: Counter,
    pub delivery_delay: Histogram,
    /// 1 while the shared store (Redis) answers, 0 while it does not; absent on the memory store.
    pub store_up: Gauge,
    /// Live nodes (presence records not expired) as this node last read them; several nodes.
    pub nodes: Gauge,
    /// Bytes of room and direct messages queued to client sockets, compressed and not.
    pub client_bytes_out: Family<CompressedLabel, Counter>,
    /// The two series of `client_bytes_out`, looked up once: they are counted per frame per
    /// client, where a label look-up (hash, lock) would cost on the hot path.
    client_bytes_compressed: Counter,
    client_bytes_plain: Counter,
    /// What those messages held before compression.
    pub client_payload_bytes_out: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            connections: Family::default(),
            frames_in: Family::default(),
            frames_out: Family::default(),
            rejected: Family::default(),
            duplicates: Counter::default(),
            late_items: Counter::default(),
            pulled_items: Counter::default(),
            pull_failures: Counter::default(),
            rooms: Gauge::default(),
            room_queue_depth_max: Gauge::default(),
            slow_clients_disconnected: Counter::default(),
            delivery_delay: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            store_up: Gauge::default(),
            nodes: Gauge::default(),
            client_bytes_out: Family::default(),
            client_bytes_compressed: Counter::default(),
            client_bytes_plain: Counter::default(),
            client_payload_bytes_out: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("danmu_connections", "Open WebSocket connections", m.connections.clone());
        registry.register("danmu_frames_in", "Frames received", m.frames_in.clone());
        registry.register("danmu_frames_out", "Frames sent", m.frames_out.clone());
        registry.register("danmu_rejected_frames", "Frames rejected, by reason", m.rejected.clone());
        registry.register("danmu_duplicates", "Duplicate pushes and items dropped", m.duplicates.clone());
        registry.register("danmu_late_items", "Items released after a later item", m.late_items.clone());
        registry.register("danmu_pulled_items", "New items found by pull compensation", m.pulled_items.clone());
        registry.register("danmu_pull_failures", "Failed pull calls", m.pull_failures.clone());
        registry.register("danmu_rooms", "Running rooms", m.rooms.clone());
        registry.register(
            "danmu_room_queue_depth_max",
            "Deepest room reorder queue since the last scrape",
            m.room_queue_depth_max.clone(),
        );
        registry.register(
            "danmu_slow_clients_disconnected",
            "Clients disconnected for falling behind",
            m.slow_clients_disconnected.clone(),
        );
        registry.register(
            "danmu_delivery_delay_seconds",
            "Delay from a danmu item's ts to its fan-out",
            m.delivery_delay.clone(),
        );
        registry.register("danmu_store_up", "1 while Redis answers this node, 0 while not", m.store_up.clone());
        registry.register("danmu_nodes", "Live broker nodes seen in Redis", m.nodes.clone());
        registry.register(
            "danmu_client_bytes_out",
            "Bytes written to client sockets (frames), compressed or not",
            m.client_bytes_out.clone(),
        );
        registry.register(
            "danmu_client_payload_bytes_out",
            "Bytes of those messages before compression",
            m.client_payload_bytes_out.clone(),
        );
        let client_bytes_compressed = m.client_bytes_out.get_or_create(&CompressedLabel { compressed: "true" }).clone();
        let client_bytes_plain = m.client_bytes_out.get_or_create(&CompressedLabel { compressed: "false" }).clone();
        // Both kinds show from the first scrape, at 0, rather than appearing with their first
        // connection: a dashboard or alert then sees 0, not "no data".
        for kind in [Kind::Bigo, Kind::Client] {
            let _ = m.connections.get_or_create(&KindLabel { kind });
            let _ = m.frames_in.get_or_create(&KindLabel { kind });
            let _ = m.frames_out.get_or_create(&KindLabel { kind });
        }
        Self { registry, client_bytes_compressed, client_bytes_plain, ..m }
    }

    pub fn connection_opened(&self, kind: Kind) {
        self.connections.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn connection_closed(&self, kind: Kind) {
        self.connections.get_or_create(&KindLabel { kind }).dec();
    }

    pub fn frame_in(&self, kind: Kind) {
        self.frames_in.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn frames_out(&self, kind: Kind, n: u64) {
        self.frames_out.get_or_create(&KindLabel { kind }).inc_by(n);
    }

    /// A message of `payload` bytes went out as a frame of `frame` bytes.
    pub fn client_bytes(&self, frame: usize, payload: usize, compressed: bool) {
        let series = if compressed { &self.client_bytes_compressed } else { &self.client_bytes_plain };
        series.inc_by(frame as u64);
        self.client_payload_bytes_out.inc_by(payload as u64);
    }

    pub fn rejected(&self, kind: Kind, reason: &'static str) {
        self.rejected.get_or_create(&RejectLabel { kind, reason }).inc();
    }

    pub fn observe_queue_depth(&self, depth: usize) {
        self.room_queue_depth_max.inner().fetch_max(depth as i64, std::sync::atomic::Ordering::Relaxed);
    }

    /// The Prometheus text exposition; resets the queue-depth high-water mark.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        self.room_queue_depth_max.set(0);
        out
    }
}
