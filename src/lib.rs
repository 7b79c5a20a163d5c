//! danmu-broker, the server shell: configuration, HTTP routes, start-up and shutdown around
//! the actor system of the `actors` crate.
//!
//! [`start`] binds, starts the registry and the room arbiters, and answers a [`Broker`]: the
//! running server (a future to await), its address, and a handle for a graceful [`shutdown`].
//! `main.rs` and the integration tests both start the broker this way. With `server.tls` the
//! same listener speaks TLS ([`tls`]), so BIGO can reach `wss://` without a proxy in front.
//! With `server.internal` a second, internal listener serves the operator endpoints
//! ([`http::operator_routes`]) and the public one no longer does; the probes `/livez` and
//! `/readyz` are on both ([`http::probe_routes`]). What a broker facing a
//! network refuses to start with is [`exposure`]'s.
//! The [`listener`] serves the routes and hands each app client's WebSocket over to its
//! session after the upgrade.
//! The BIGO stand-in behind `danmu-broker simulate` is a crate of its own (`danmu-simulator`,
//! in `simulator/`): a client of the broker, not part of it.

pub mod auth;
pub mod cloud;
pub mod cluster;
pub mod config;
pub mod exposure;
pub mod http;
pub mod listener;
pub mod live;
pub mod logging;
pub mod room_redis;
pub mod secrets;
pub mod startup;
pub mod store;
pub mod tls;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Arbiter, ArbiterHandle, AsyncContext, Context};
use actix_web::{web, App};
use actors::clients::sessions::{KickAll, SessionIndex};
use actors::metrics::Metrics;
use actors::protocol::client::KickReason;
use actors::registry::{AllRooms, CloseAllBigo, Registry};
use actors::room::Flush;
use log::{info, warn};

use crate::config::Config;
use crate::http::AppState;

/// A started broker.
pub struct Broker {
    pub local_addr: SocketAddr,
    /// The internal listener's address, when `server.internal` is set.
    pub internal_addr: Option<SocketAddr>,
    /// The server itself: await it (it ends after [`Broker::shutdown`] or a signal).
    pub server: actix_web::dev::Server,
    pub shutdown: ShutdownHandle,
}

/// What a graceful shutdown needs to reach.
#[derive(Clone)]
pub struct ShutdownHandle {
    server: actix_web::dev::ServerHandle,
    registry: Addr<Registry>,
    sessions: Addr<SessionIndex>,
    presence: Option<Addr<cluster::presence::NodePresence>>,
    draining: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
    arbiters: Vec<ArbiterHandle>,
    /// `server.drain_delay_ms`, `server.reconnect_spread_ms`.
    drain_delay: Duration,
    reconnect_spread_ms: u64,
}

impl ShutdownHandle {
    /// docs/protocol.md 4: `/readyz` (and `/healthz`) answer 503 at once and the presence record
    /// goes (no node sends new clients here any more); the node goes on serving for
    /// `server.drain_delay_ms`, the time a load balancer takes to see it; then it stops taking
    /// connections, closes the BIGO connections (no new pushes; BIGO re-sends what has no 200
    /// to another node), flushes every room so that what BIGO was told is taken reaches the
    /// clients, tells every client `kicked: shutdown` with its own `retry_after_ms` (spread
    /// over `server.reconnect_spread_ms`) and a close frame, and stops the server.
    pub async fn shutdown(&self) {
        if self.draining.swap(true, Ordering::SeqCst) {
            return;
        }
        info!("shutdown: draining (/readyz answers 503), serving on for {:?}", self.drain_delay);
        if let Some(presence) = &self.presence {
            // Before anything else: no node sends new clients here any more.
            let _ = presence.send(cluster::presence::Withdraw).await;
        }
        actix_rt::time::sleep(self.drain_delay).await;
        self.closing.store(true, Ordering::SeqCst);
        let bigo = self.registry.send(CloseAllBigo).await.unwrap_or_default();
        let rooms = self.registry.send(AllRooms).await.unwrap_or_default();
        for room in &rooms {
            // Best effort: a room that is already gone has nothing to flush.
            let _ = room.flush.send(Flush).await;
        }
        // The flushed events travel through each room's ring to the sessions: let them be
        // written before the kick closes the sessions.
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        let kick = KickAll { reason: KickReason::Shutdown, spread_ms: Some(self.reconnect_spread_ms) };
        let _ = self.sessions.send(kick).await;
        // Give the sessions a moment to write their close frames.
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        info!("shutdown: {bigo} BIGO connections closed, {} rooms flushed, stopping the server", rooms.len());
        self.server.stop(true).await;
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

/// Binds `config.server.host:port` and starts the broker.
pub fn start(config: Config) -> std::io::Result<Broker> {
    let listener = startup::bind(&config.server.host, config.server.port)?;
    start_on(config, listener)
}

/// Starts the broker on an already-bound listener (tests bind port 0), and binds
/// `server.internal` when it is set (port 0: any free port, [`Broker::internal_addr`]). Must
/// run inside an actix system. An empty `server.public_url` means "derive it per request"
/// ([`http::public_url`]).
pub fn start_on(config: Config, listener: TcpListener) -> std::io::Result<Broker> {
    // rustls picks its process-wide crypto provider from its crate features; should a
    // dependency ever bring aws-lc-rs too, that choice would fail at the first TLS use (the
    // pull client's https). Installing ring first settles it; an error means one is already set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = config.server.tls.as_ref().map(tls::server_config).transpose()?;
    let local_addr = listener.local_addr()?;
    let internal = match &config.server.internal {
        Some(internal) => Some(startup::bind_as("server.internal", &internal.host, internal.port)?),
        None => None,
    };
    let internal_addr = internal.as_ref().map(TcpListener::local_addr).transpose()?;
    let exposure_warnings =
        exposure::check(&config, local_addr.ip(), internal_addr.map(|a| a.ip())).map_err(std::io::Error::other)?;
    let metrics = Arc::new(Metrics::new());
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let arbiters: Vec<ArbiterHandle> = (0..cores).map(|_| Arbiter::new().handle()).collect();
    // The live-room list (docs/protocol.md 3): its room hooks hear every room's joins and
    // leaves through the registry's membership hook.
    let store = store::Store::open(&config.store).map_err(std::io::Error::other)?;
    let redis = store.redis_connection();
    let node_id = cluster::node_id(&config.store.node_id);
    let hooks = Context::<live::hooks::RoomHooks>::new();
    let mut registry =
        Registry::new(config.room.clone(), config.client.send_queue_len, metrics.clone(), arbiters.clone());
    // Several nodes on one Redis (docs/protocol.md 7): this node's presence, for end_point and as
    // the judge of other nodes' death (started below, once the sessions are).
    let presence_context = redis.as_ref().map(|_| Context::<cluster::presence::NodePresence>::new());
    let liveness = cluster::liveness::Liveness::new(Duration::from_millis(config.store.node_ttl_ms));
    // Shared rooms and the session rules across nodes (docs/protocol.md 7).
    let mut shared_bus = None;
    if let (Some(conn), Some(presence), true) = (&redis, &presence_context, config.store.shared_rooms) {
        let target = store::conn::RedisTarget::of(&config.store).expect("a Redis store");
        let bus = cluster::bus::Bus::open(&target).map_err(std::io::Error::other)?.start();
        shared_bus = Some((conn.clone(), bus.clone()));
        let shared = room_redis::SharedRooms {
            node_id: node_id.clone(),
            keys: cluster::keys::Keys::new(&config.store.key_prefix),
            conn: conn.clone(),
            bus,
            presence: presence.address().recipient(),
            liveness: liveness.clone(),
            config: config.room.clone(),
            send_queue_len: config.client.send_queue_len,
            metrics: metrics.clone(),
        };
        info!("rooms are shared through Redis (store.shared_rooms), node {node_id}");
        registry = registry.with_room_factory(room_redis::factory(shared));
    }
    let registry = registry
        .with_pull(Arc::new(config.bigo.clone()))
        .with_membership_hook(hooks.address().recipient())
        .with_status_source(hooks.address().recipient())
        .start();
    let shared_links = shared_bus.clone();
    let (sessions, directory) = match shared_bus {
        None => (SessionIndex::default().start(), None),
        Some((conn, bus)) => {
            let directory = Context::<cluster::directory::SessionDirectory>::new();
            let sessions = SessionIndex::default().with_directory(directory.address().recipient()).start();
            let keys = cluster::keys::Keys::new(&config.store.key_prefix);
            let addr = directory.address();
            directory.run(cluster::directory::SessionDirectory::new(
                node_id.clone(),
                keys,
                conn,
                bus,
                sessions.clone(),
            ));
            (sessions, Some(addr))
        }
    };
    // A /game link made here reaches every node's routing when rooms are shared.
    let links = match &shared_links {
        Some((conn, bus)) => cluster::links::LinkFeed::new(
            &config.store.key_prefix,
            conn.clone(),
            bus.clone(),
            store.clone(),
            registry.clone(),
        )
        .start()
        .recipient(),
        None => registry.clone().recipient(),
    };
    // The cloud agent needs the service (to close zombies) and the service the agent (to cut a
    // banned room's push): the agent's context first, so that each can hold the other's handle.
    // Started here, inside the actix system, on the thread the agent will live on.
    let cloud = actix::Context::<cloud::CloudAgent>::new();
    let live = live::start(&config.live, store, registry.clone(), links, hooks, cloud.address().recipient());
    cloud.run(cloud::CloudAgent::new(&config.live, live.clone()));
    let public_url = http::public_url::PublicUrl::new(&config.server.public_url, local_addr, tls.is_some());
    let report = startup::report(&config, local_addr, internal_addr, &public_url);
    let presence = redis.zip(presence_context).map(|(conn, context)| {
        let node_id = node_id.clone();
        let url = public_url.of_node();
        let ttl = Duration::from_millis(config.store.node_ttl_ms);
        let keys = cluster::keys::Keys::new(&config.store.key_prefix);
        let presence =
            cluster::presence::NodePresence::new(node_id, url, ttl, keys, conn, sessions.clone(), metrics.clone());
        if config.store.shared_rooms {
            context.run(presence.kicking_when_expired().sharing(liveness))
        } else {
            context.run(presence)
        }
    });
    let (draining, closing) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let state = web::Data::new(AppState {
        bigo: Arc::new(config.bigo.clone()),
        client: Arc::new(config.client.clone()),
        config: Arc::new(config.clone()),
        registry: registry.clone(),
        sessions: sessions.clone(),
        metrics,
        live,
        public_url,
        presence: presence.clone(),
        directory,
        draining: draining.clone(),
        closing: closing.clone(),
    });
    let routes = http::routes(&state);
    let listen = listener::Listen { listener, tls, internal, workers: config.server.workers, shutdown_timeout_s: 5 };
    let internal_state = state.clone();
    let server = listener::serve(
        listen,
        move || App::new().app_data(state.clone()).configure(routes.clone()),
        move || App::new().app_data(internal_state.clone()).configure(http::internal_routes),
    )?;
    for line in report {
        info!("{line}");
    }
    for warning in startup::warnings(&config).into_iter().chain(exposure_warnings) {
        warn!("{warning}");
    }
    let shutdown = ShutdownHandle {
        server: server.handle(),
        registry,
        sessions,
        presence,
        draining,
        closing,
        arbiters,
        drain_delay: Duration::from_millis(config.server.drain_delay_ms),
        reconnect_spread_ms: config.server.reconnect_spread_ms,
    };
    Ok(Broker { local_addr, internal_addr, server, shutdown })
}

/// Runs `handle.shutdown()` on SIGTERM or SIGINT.
pub fn shutdown_on_signals(handle: ShutdownHandle) {
    actix_rt::spawn(async move {
        wait_for_signal().await;
        info!("signal received");
        handle.shutdown().await;
    });
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
