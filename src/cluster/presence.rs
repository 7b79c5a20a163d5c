//! `NodePresence`: this node's presence record in Redis, and its view of the others
//! (docs/protocol.md 4 and 7: several nodes, `end_point` names the live node with the fewest
//! client connections).
//!
//! Every `store.node_ttl_ms / 3` (and at most every 5 s) it writes its record: the hash
//! `node:{id}` (`public_url`, `clients`) with an expiry of `store.node_ttl_ms`, and its id in
//! the sorted set `nodes` scored by that expiry time. In the same round trip it reads every
//! live node (score in the future) and their records, and keeps them as the answer to
//! [`PickNode`], so `end_point` never waits for Redis. A node that stops renewing drops out of
//! the view within `node_ttl_ms`; ids that expired long ago are swept from the set.
//!
//! While Redis is unreachable the view keeps its last answer, minus the nodes whose records
//! have expired since: `end_point` still answers, at worst with this node.
//!
//! It is also this node's judge of the others' death ([`DeadNodes`], asked by the owners of
//! rooms for the nodes of their members): it keeps the [`Evidence`] of every renewal, and takes
//! a node for dead only on evidence that this node was fine meanwhile. A node it takes for dead
//! is marked in Redis (`{nodes}:dead:<id>`), in one script with the check that its record is
//! still missing; the marked node finds the mark at its next renewal, in the same script that
//! writes its record again, and only then closes its client connections (1012). A node whose
//! record merely lapsed (Redis was unreachable for everyone, or this node stalled for less than
//! it takes to be judged) writes it again and keeps its clients.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::conn::RedisConn;
use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseFuture, WrapFuture};
use actors::clients::sessions::{ClientCount, KickAll, SessionIndex};
use actors::metrics::Metrics;
use actors::protocol::client::KickReason;
use actors::protocol::now_ms;
use log::{debug, info, warn};

use super::evidence::Evidence;
use super::keys::Keys;
use super::liveness::Liveness;

/// How long the ids of nodes gone away stay in the node set (and nodes the rooms asked about
/// stay watched).
pub const FORGOTTEN_AFTER: Duration = Duration::from_secs(3600);

/// How long a node taken for dead stays marked. A node back after longer than this cannot tell
/// whether it was marked, and closes its clients as if it had been.
pub const MARK_LASTS: Duration = Duration::from_secs(24 * 3600);

/// KEYS: record, mark, nodes. ARGV: node id, public_url, clients, ttl ms, expires at (Unix ms),
/// ids expired before this are swept. Writes this node's record and takes away its mark;
/// answers {whether the record existed, whether the mark did, the node set flat (id, score)}.
const RENEW: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
redis.call('HSET', KEYS[1], 'public_url', ARGV[2], 'clients', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[6])
local marked = redis.call('DEL', KEYS[2])
return {existed, marked, redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')}
";

/// KEYS: record and mark of each node, in pairs. ARGV: the mark's lifetime in ms. Marks each
/// node whose record is still missing; answers 1 (marked: dead) or 0 (back) per node.
const MARK_DEAD: &str = r"
local out = {}
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    out[#out + 1] = 0
  else
    redis.call('SET', KEYS[i + 1], '1', 'PX', ARGV[1])
    out[#out + 1] = 1
  end
end
return out
";

/// A node as another node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub node_id: String,
    pub public_url: String,
    pub clients: u64,
    /// Unix ms at which its record expires.
    pub expires_at: i64,
}

/// The node `end_point` should name: the live one with the fewest clients (ties: the lower
/// id, so that every node picks alike), or `None` when no record is known.
pub fn fewest_clients(nodes: &[NodeView], now_ms: i64) -> Option<&NodeView> {
    nodes.iter().filter(|n| n.expires_at > now_ms).min_by(|a, b| (a.clients, &a.node_id).cmp(&(b.clients, &b.node_id)))
}

/// Which node's `public_url` a client should be sent to.
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct PickNode;

/// The node is shutting down: its record goes now (clients are not sent to it any more, by
/// this node's `end_point` either), and it is not renewed again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Withdraw;

impl Handler<Withdraw> for NodePresence {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Withdraw, _ctx: &mut Self::Context) -> Self::Result {
        self.withdrawn = true;
        let me = self.node_id.clone();
        self.view.retain(|n| n.node_id != me);
        let (mut conn, keys, node_id) = (self.conn.clone(), self.keys.clone(), self.node_id.clone());
        Box::pin(async move {
            let gone: redis::RedisResult<()> = redis::pipe()
                .zrem(keys.nodes(), &node_id)
                .ignore()
                .del(keys.node(&node_id))
                .ignore()
                .query_async(&mut conn)
                .await;
            match gone {
                Ok(()) => info!("node {node_id}: presence withdrawn"),
                Err(e) => warn!("node {node_id}: presence not withdrawn ({e}); it expires by itself"),
            }
        })
    }
}

/// Which of `nodes` are dead (see the module doc); each answered is marked in Redis as taken
/// for dead, and its members are to be removed from their rooms.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct DeadNodes {
    pub nodes: Vec<String>,
}

impl Handler<DeadNodes> for NodePresence {
    type Result = ResponseFuture<Vec<String>>;

    fn handle(&mut self, msg: DeadNodes, _ctx: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let mut dead = Vec::new();
        for node in msg.nodes {
            if node == self.node_id {
                continue;
            }
            if self.evidence.is_dead(&node, now) {
                dead.push(node.clone());
            }
            // Watched from the next renewal on, even when it is not in the node set.
            self.asked.insert(node, now);
        }
        if dead.is_empty() {
            return Box::pin(async { Vec::new() });
        }
        let (mut conn, keys, scripts, me) =
            (self.conn.clone(), self.keys.clone(), self.scripts.clone(), self.node_id.clone());
        Box::pin(async move {
            let mut invocation = scripts.mark_dead.prepare_invoke();
            for node in &dead {
                invocation.key(keys.node(node)).key(keys.node_dead(node));
            }
            invocation.arg(MARK_LASTS.as_millis() as u64);
            match invocation.invoke_async::<Vec<i64>>(&mut conn).await {
                Ok(marked) => {
                    let dead: Vec<String> =
                        dead.into_iter().zip(marked).filter(|(_, m)| *m == 1).map(|(n, _)| n).collect();
                    if !dead.is_empty() {
                        debug!("node {me}: takes {dead:?} for dead");
                    }
                    dead
                }
                Err(e) => {
                    warn!("node {me}: cannot mark nodes taken for dead ({e}); their members stay for now");
                    Vec::new()
                }
            }
        })
    }
}

/// Whether the last renewal reached Redis (`None` before the first one ended).
#[derive(Message)]
#[rtype(result = "Option<bool>")]
pub struct StoreReachable;

impl Handler<StoreReachable> for NodePresence {
    type Result = Option<bool>;

    fn handle(&mut self, _: StoreReachable, _ctx: &mut Self::Context) -> Option<bool> {
        self.reachable
    }
}

pub struct NodePresence {
    node_id: String,
    public_url: String,
    ttl: Duration,
    keys: Keys,
    conn: RedisConn,
    sessions: Addr<SessionIndex>,
    metrics: Arc<Metrics>,
    view: Vec<NodeView>,
    renewing: bool,
    /// Set on shutdown: no more renewals.
    withdrawn: bool,
    /// When a renewal last reached Redis (`None`: never; a new node's record does not exist
    /// yet).
    last_renewed: Option<Instant>,
    /// Close every client connection when this node turns out to have been taken for dead
    /// (shared rooms removed its members meanwhile).
    kick_when_expired: bool,
    /// Whether the last renewal reached Redis (for the log: said once per change).
    reachable: Option<bool>,
    /// What this node saw of the others' records: whom it may take for dead.
    evidence: Evidence,
    /// Nodes the rooms asked about ([`DeadNodes`]), watched even when not in the node set.
    asked: HashMap<String, Instant>,
    scripts: Arc<Scripts>,
    /// What each renewal saw, for the rooms' leases (with shared rooms).
    liveness: Option<Liveness>,
}

struct Scripts {
    renew: redis::Script,
    mark_dead: redis::Script,
}

/// What one renewal found.
struct Round {
    /// When the renewal was sent: the record lasts at least `ttl` from then.
    sent: Instant,
    /// This node's record was still there.
    existed: bool,
    /// Another node had taken this one for dead.
    marked: bool,
    /// The live nodes (this one too).
    view: Vec<NodeView>,
    /// Every watched node but this one, and whether its record is there.
    seen: Vec<(String, bool)>,
}

impl NodePresence {
    pub fn new(
        node_id: String,
        public_url: String,
        ttl: Duration,
        keys: Keys,
        conn: RedisConn,
        sessions: Addr<SessionIndex>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            node_id,
            public_url,
            ttl,
            keys,
            conn,
            sessions,
            metrics,
            view: Vec::new(),
            renewing: false,
            withdrawn: false,
            last_renewed: None,
            kick_when_expired: false,
            reachable: None,
            evidence: Evidence::new(ttl),
            asked: HashMap::new(),
            scripts: Arc::new(Scripts { renew: redis::Script::new(RENEW), mark_dead: redis::Script::new(MARK_DEAD) }),
            liveness: None,
        }
    }

    /// Shares what each renewal sees with the rooms (their leases hold while their owner's
    /// record does: [`Liveness`]).
    pub fn sharing(mut self, liveness: Liveness) -> Self {
        self.liveness = Some(liveness);
        self
    }

    /// With shared rooms: a node that another node took for dead (cut off or stopped while
    /// the others were not) closes its client connections with 1012 when it is back, so that
    /// they reconnect through `end_point` and join their rooms again (docs/protocol.md 7).
    pub fn kicking_when_expired(mut self) -> Self {
        self.kick_when_expired = true;
        self
    }

    /// How often the record is written: a third of its lifetime, at most every 5 s.
    pub fn renew_every(ttl: Duration) -> Duration {
        (ttl / 3).min(Duration::from_secs(5)).max(Duration::from_millis(100))
    }

    fn renew(&mut self, ctx: &mut Context<Self>) {
        if self.renewing || self.withdrawn {
            return;
        }
        self.renewing = true;
        self.asked.retain(|_, at| at.elapsed() < FORGOTTEN_AFTER);
        let asked: Vec<String> = self.asked.keys().cloned().collect();
        let (sessions, mut conn, keys, scripts) =
            (self.sessions.clone(), self.conn.clone(), self.keys.clone(), self.scripts.clone());
        let (node_id, public_url, ttl) = (self.node_id.clone(), self.public_url.clone(), self.ttl);
        let round = async move {
            let clients = sessions.send(ClientCount).await.unwrap_or(0) as u64;
            let sent = Instant::now();
            let now = now_ms();
            let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
            let forgotten_ms = i64::try_from(FORGOTTEN_AFTER.as_millis()).unwrap_or(i64::MAX);
            let (existed, marked, set): (bool, bool, Vec<String>) = scripts
                .renew
                .key(keys.node(&node_id))
                .key(keys.node_dead(&node_id))
                .key(keys.nodes())
                .arg(&node_id)
                .arg(&public_url)
                .arg(clients)
                .arg(ttl_ms)
                .arg(now.saturating_add(ttl_ms))
                .arg(now.saturating_sub(forgotten_ms))
                .invoke_async(&mut conn)
                .await?;
            // The node set holds (id, expiry) pairs; the nodes asked about are watched too.
            let mut watched: Vec<(String, Option<i64>)> = set
                .chunks(2)
                .filter_map(|pair| Some((pair.first()?.clone(), pair.get(1)?.parse::<f64>().ok()? as i64)))
                .map(|(id, expires_at)| (id, Some(expires_at)))
                .collect();
            for id in asked {
                if !watched.iter().any(|(w, _)| *w == id) {
                    watched.push((id, None));
                }
            }
            let mut pipe = redis::pipe();
            for (id, _) in &watched {
                pipe.cmd("HMGET").arg(keys.node(id)).arg("public_url").arg("clients");
            }
            let records: Vec<(Option<String>, Option<u64>)> = pipe.query_async(&mut conn).await?;
            let mut round = Round { sent, existed, marked, view: Vec::new(), seen: Vec::new() };
            for ((id, expires_at), (url, clients)) in watched.into_iter().zip(records) {
                if id != node_id {
                    round.seen.push((id.clone(), url.is_some()));
                }
                if let (Some(public_url), Some(expires_at)) = (url, expires_at.filter(|at| *at > now)) {
                    round.view.push(NodeView { node_id: id, public_url, clients: clients.unwrap_or(0), expires_at });
                }
            }
            Ok::<_, redis::RedisError>(round)
        };
        ctx.spawn(round.into_actor(self).map(|answer, act, _ctx| {
            act.renewing = false;
            match answer {
                Ok(round) => act.renewed(round),
                Err(e) => {
                    if act.reachable != Some(false) {
                        warn!("node {}: cannot renew its presence in Redis: {e}", act.node_id);
                    }
                    act.reachable = Some(false);
                    act.evidence.failed();
                    act.metrics.store_up.set(0);
                }
            }
        }));
    }

    fn renewed(&mut self, round: Round) {
        let now = Instant::now();
        let Round { sent, existed, marked, view, seen } = round;
        self.evidence.renewed(now, seen.iter().map(|(id, present)| (id.as_str(), *present)));
        if let Some(liveness) = &self.liveness {
            let mut live: HashSet<String> =
                seen.iter().filter(|(_, present)| *present).map(|(id, _)| id.clone()).collect();
            live.insert(self.node_id.clone());
            liveness.renewed(sent, live);
        }
        if let Some(last) = self.last_renewed.filter(|_| !existed) {
            // Its record had expired. Taken for dead (marked, or away so long that a mark
            // would have gone too): its members were removed from their rooms, its clients
            // must reconnect. Else nobody judged it (an outage every node saw, or a stall
            // shorter than it takes): it is back, and keeps its clients.
            let away = now.saturating_duration_since(last);
            if marked || away > MARK_LASTS {
                if self.kick_when_expired {
                    warn!(
                        "node {}: another node took it for dead while it could not renew its presence ({:?}): closing its client connections (1012)",
                        self.node_id, away
                    );
                    self.sessions.do_send(KickAll { reason: KickReason::Reconnect, spread_ms: None });
                }
            } else {
                info!(
                    "node {}: its presence had expired ({:?} since the last renewal) but no node took it for dead: registered again, its clients stay",
                    self.node_id, away
                );
            }
        }
        self.last_renewed = Some(now);
        if self.reachable != Some(true) {
            info!("node {}: presence renewed in Redis, {} live node(s)", self.node_id, view.len());
        }
        self.reachable = Some(true);
        self.metrics.store_up.set(1);
        self.metrics.nodes.set(view.len() as i64);
        debug!("node {}: live nodes {:?}", self.node_id, view);
        self.view = view;
    }
}

impl Actor for NodePresence {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(
            "node {}: several-nodes mode, presence every {:?} (ttl {:?})",
            self.node_id,
            Self::renew_every(self.ttl),
            self.ttl
        );
        self.renew(ctx);
        ctx.run_interval(Self::renew_every(self.ttl), |act, ctx| act.renew(ctx));
    }
}

impl Handler<PickNode> for NodePresence {
    type Result = Option<String>;

    fn handle(&mut self, _: PickNode, _ctx: &mut Self::Context) -> Option<String> {
        let picked = fewest_clients(&self.view, now_ms())?.node_id.clone();
        // The counts are as of the last renewal (up to 5 s old): until the next one, count the
        // newcomer just sent there, so that a burst of `end_point` calls spreads over the nodes
        // instead of naming the same one every time.
        let node = self.view.iter_mut().find(|n| n.node_id == picked)?;
        node.clients += 1;
        Some(node.public_url.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, clients: u64, expires_at: i64) -> NodeView {
        NodeView { node_id: id.into(), public_url: format!("ws://{id}"), clients, expires_at }
    }

    #[test]
    fn the_live_node_with_the_fewest_clients_is_picked() {
        let nodes = [node("a", 5, 100), node("b", 2, 100), node("c", 1, 10)];
        assert_eq!(fewest_clients(&nodes, 50).map(|n| n.node_id.as_str()), Some("b"), "c has expired");
        assert_eq!(fewest_clients(&nodes, 200), None);
    }

    #[test]
    fn ties_go_to_the_lower_id_so_every_node_agrees() {
        let nodes = [node("b", 1, 100), node("a", 1, 100)];
        assert_eq!(fewest_clients(&nodes, 0).map(|n| n.node_id.as_str()), Some("a"));
    }

    #[test]
    fn renewals_are_a_third_of_the_ttl_and_at_most_five_seconds_apart() {
        assert_eq!(NodePresence::renew_every(Duration::from_millis(15_000)), Duration::from_secs(5));
        assert_eq!(NodePresence::renew_every(Duration::from_millis(3_000)), Duration::from_secs(1));
        assert_eq!(NodePresence::renew_every(Duration::from_secs(60)), Duration::from_secs(5));
    }
}
