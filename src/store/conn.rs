//! One handle on the deployment's Redis, whichever engine it is: a single server
//! (`store.kind: redis`, the `redis` crate's [`ConnectionManager`]) or a Redis Cluster
//! (`redis-cluster`, its [`ClusterConnection`], which routes each command to the master of
//! its key's slot and follows MOVED/ASK and failovers by itself).
//!
//! Both connect lazily (the broker starts while Redis is down), fail fast during an outage
//! (connect timeout 1 s, response timeout 2 s) and reconnect by themselves. The
//! `ConnectionManager` reconnects when its connection drops (reset, end of stream, refused),
//! but not when requests time out on a connection that stays open (a half-open TCP link, or a
//! pipeline stalled inside the client): every call would then fail for good. So a single
//! server's connection is a [`SingleConn`], which opens a fresh manager after
//! [`STALLED_AFTER`] timeouts in a row (and subscribes it to the channels the old one had). [`RedisConn`] is a
//! [`ConnectionLike`], so commands, pipelines and scripts run on it unchanged. Two things
//! differ by engine, and only here:
//!
//! - **Pub/sub**: on a cluster, a room's channel is a *sharded* channel (SSUBSCRIBE/SPUBLISH),
//!   so that its messages stay on the one shard that holds the room's slot instead of being
//!   broadcast to every master; on a single server, plain SUBSCRIBE/PUBLISH. Callers ask
//!   [`RedisConn::publish_command`] and subscribe through [`RedisConn::subscribe`].
//! - **Multi-key commands**: a cluster refuses a script or pipeline whose keys lie in more than
//!   one slot, so every such group of keys shares one hash tag (see `cluster::keys` and the
//!   live list's `{rooms}` tag in `store::redis`); on a single server the tags are harmless.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use log::warn;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo, RedisFuture, RedisResult, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::{StoreConfig, StoreKind};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Requests timed out in a row, with no answer between, after which a single server's
/// connection is taken for stalled and replaced.
pub const STALLED_AFTER: u32 = 5;

/// Where the store's Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server at this URL.
    Single(String),
    /// A cluster, found through these seed URLs (any reachable one is enough).
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// The target `config` names; `None` for the memory store.
    pub fn of(config: &StoreConfig) -> Option<Self> {
        match config.kind {
            StoreKind::Memory => None,
            StoreKind::Redis => Some(Self::Single(config.redis_url.clone())),
            StoreKind::RedisCluster => Some(Self::Cluster(config.cluster_nodes.clone())),
        }
    }
}

/// A cloneable, self-reconnecting connection to a single server or a cluster.
#[derive(Clone)]
pub enum RedisConn {
    Single(SingleConn),
    Cluster(ClusterConnection),
}

/// A single server's connection: the `redis` crate's [`ConnectionManager`], replaced by a
/// fresh one when [`STALLED_AFTER`] requests in a row have timed out (see the module doc).
/// Clones share the manager in use, so a replacement serves every holder at once.
#[derive(Clone)]
pub struct SingleConn(Arc<Single>);

struct Single {
    client: redis::Client,
    config: ConnectionManagerConfig,
    current: ArcSwap<ConnectionManager>,
    timeouts: AtomicU32,
    /// The channels a pub/sub connection is subscribed to (for its replacement).
    channels: Mutex<BTreeSet<String>>,
}

impl SingleConn {
    fn open(client: redis::Client, config: ConnectionManagerConfig) -> RedisResult<Self> {
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(Self(Arc::new(Single {
            client,
            config,
            current: ArcSwap::from_pointee(manager),
            timeouts: AtomicU32::new(0),
            channels: Mutex::default(),
        })))
    }

    fn manager(&self) -> Arc<ConnectionManager> {
        self.0.current.load_full()
    }

    /// Counts a request's outcome on `used`; replaces `used` once it has stalled.
    fn note<T>(&self, used: &Arc<ConnectionManager>, result: &RedisResult<T>) {
        match result {
            Ok(_) => self.0.timeouts.store(0, Ordering::Relaxed),
            Err(e) if e.is_timeout() => {
                if self.0.timeouts.fetch_add(1, Ordering::Relaxed) + 1 >= STALLED_AFTER {
                    self.replace(used);
                }
            }
            Err(_) => {}
        }
    }

    fn replace(&self, stalled: &Arc<ConnectionManager>) {
        let fresh = match ConnectionManager::new_lazy_with_config(self.0.client.clone(), self.0.config.clone()) {
            Ok(fresh) => Arc::new(fresh),
            Err(e) => return warn!("store: cannot open a new Redis connection: {e}"),
        };
        let previous = self.0.current.compare_and_swap(stalled, fresh.clone());
        if !Arc::ptr_eq(&previous, stalled) {
            return; // another request replaced it already
        }
        self.0.timeouts.store(0, Ordering::Relaxed);
        warn!("store: {STALLED_AFTER} Redis requests in a row timed out on one connection; opening a new one");
        let channels: Vec<String> = self.0.channels.lock().map(|c| c.iter().cloned().collect()).unwrap_or_default();
        if !channels.is_empty() {
            tokio::spawn(async move {
                let mut manager = (*fresh).clone();
                for channel in channels {
                    if let Err(e) = manager.subscribe(&channel).await {
                        warn!("store: {channel} not subscribed again on the new connection: {e}");
                    }
                }
            });
        }
    }

    async fn subscribe(&self, channel: &str) -> RedisResult<()> {
        let used = self.manager();
        let result = (*used).clone().subscribe(channel).await;
        self.note(&used, &result);
        if result.is_ok() {
            if let Ok(mut channels) = self.0.channels.lock() {
                channels.insert(channel.to_string());
            }
        }
        result
    }

    async fn unsubscribe(&self, channel: &str) -> RedisResult<()> {
        if let Ok(mut channels) = self.0.channels.lock() {
            channels.remove(channel);
        }
        let used = self.manager();
        let result = (*used).clone().unsubscribe(channel).await;
        self.note(&used, &result);
        result
    }
}

impl ConnectionLike for SingleConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let used = self.manager();
            let result = (*used).clone().req_packed_command(cmd).await;
            self.note(&used, &result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let used = self.manager();
            let result = (*used).clone().req_packed_commands(pipeline, offset, count).await;
            self.note(&used, &result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.manager().get_db()
    }
}

impl RedisConn {
    /// A connection for commands (not connected yet; see the module doc).
    pub fn open(target: &RedisTarget) -> RedisResult<Self> {
        Self::open_with(target, None)
    }

    /// A connection that also carries pub/sub: messages of the channels it subscribes to
    /// arrive on `pushes` (RESP3), and it subscribes again by itself after a reconnect.
    pub fn open_pubsub(target: &RedisTarget, pushes: UnboundedSender<PushInfo>) -> RedisResult<Self> {
        Self::open_with(target, Some(pushes))
    }

    fn open_with(target: &RedisTarget, pushes: Option<UnboundedSender<PushInfo>>) -> RedisResult<Self> {
        match target {
            RedisTarget::Single(url) => {
                let mut info = url.as_str().into_connection_info()?;
                let mut config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(1)
                    // Requests queued at once, shared by every room of the node: a burst of
                    // joins queues thousands (docs/decisions.md, "Several nodes", known limits).
                    .set_pipeline_buffer_size(4096)
                    .set_max_delay(Duration::from_millis(500));
                if let Some(tx) = pushes {
                    let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
                    info = info.set_redis_settings(settings);
                    config = config.set_push_sender(tx).set_automatic_resubscription();
                }
                let client = redis::Client::open(info)?;
                Ok(Self::Single(SingleConn::open(client, config)?))
            }
            RedisTarget::Cluster(seeds) => {
                let mut builder = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(2)
                    .min_retry_wait(50)
                    .max_retry_wait(500);
                if let Some(tx) = pushes {
                    builder = builder.use_protocol(ProtocolVersion::RESP3).push_sender(tx);
                }
                let client = builder.build()?;
                let config =
                    ClusterConfig::new().set_connection_timeout(CONNECT_TIMEOUT).set_response_timeout(RESPONSE_TIMEOUT);
                Ok(Self::Cluster(client.get_pending_async_connection_with_config(config)))
            }
        }
    }

    /// The command that publishes to a channel this connection's subscribers hear:
    /// `SPUBLISH` on a cluster (sharded pub/sub), `PUBLISH` on a single server.
    pub fn publish_command(&self) -> &'static str {
        match self {
            Self::Single(_) => "PUBLISH",
            Self::Cluster(_) => "SPUBLISH",
        }
    }

    /// Publishes `payload` on `channel` with [`publish_command`](Self::publish_command);
    /// answers how many subscribers got it (on a cluster: those of the channel's shard).
    pub async fn publish(&mut self, channel: &str, payload: &str) -> RedisResult<i64> {
        redis::cmd(self.publish_command()).arg(channel).arg(payload).query_async(self).await
    }

    /// Subscribes this (pub/sub) connection to `channel`; answers once Redis confirmed.
    pub async fn subscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Self::Single(c) => c.subscribe(channel).await,
            Self::Cluster(c) => c.ssubscribe(channel).await,
        }
    }

    pub async fn unsubscribe(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Self::Single(c) => c.unsubscribe(channel).await,
            Self::Cluster(c) => c.sunsubscribe(channel).await,
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
