//! `NodePresence`: this node's presence record in Redis, and its view of the others
//! (PROTOCOL.md 4 and 7: several nodes, `end_point` names the live node with the fewest
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

use std::sync::Arc;
use std::time::Duration;

use crate::store::conn::RedisConn;
use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseFuture, WrapFuture};
use actors::clients::sessions::{ClientCount, KickAll, SessionIndex};
use actors::metrics::Metrics;
use actors::protocol::client::KickReason;
use actors::protocol::now_ms;
use log::{debug, info, warn};

use super::keys::Keys;

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
    /// Whether a renewal ever reached Redis (a new node's record does not exist yet).
    renewed_once: bool,
    /// Close every client connection when this node turns out to have been taken for dead
    /// (shared rooms removed its members meanwhile).
    kick_when_expired: bool,
    /// Whether the last renewal reached Redis (for the log: said once per change).
    reachable: Option<bool>,
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
            renewed_once: false,
            kick_when_expired: false,
            reachable: None,
        }
    }

    /// With shared rooms: a node whose record expired (cut off, stopped) closes its client
    /// connections with 1012 when it is back, so that they reconnect through `end_point` and
    /// join their rooms again (PROTOCOL.md 7).
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
        let (sessions, mut conn, keys) = (self.sessions.clone(), self.conn.clone(), self.keys.clone());
        let (node_id, public_url, ttl) = (self.node_id.clone(), self.public_url.clone(), self.ttl);
        let round = async move {
            let clients = sessions.send(ClientCount).await.unwrap_or(0) as u64;
            let now = now_ms();
            let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
            let expires_at = now.saturating_add(ttl_ms);
            let record = keys.node(&node_id);
            let (existed, live): (bool, Vec<(String, i64)>) = redis::pipe()
                .exists(&record)
                .hset_multiple(&record, &[("public_url", public_url.as_str()), ("clients", &clients.to_string())])
                .ignore()
                .pexpire(&record, ttl_ms)
                .ignore()
                .zadd(keys.nodes(), &node_id, expires_at)
                .ignore()
                .zrembyscore(keys.nodes(), "-inf", now.saturating_sub(3_600_000))
                .ignore()
                .zrangebyscore_withscores(keys.nodes(), now, "+inf")
                .query_async(&mut conn)
                .await?;
            let mut pipe = redis::pipe();
            for (id, _) in &live {
                pipe.cmd("HMGET").arg(keys.node(id)).arg("public_url").arg("clients");
            }
            let records: Vec<(Option<String>, Option<u64>)> = pipe.query_async(&mut conn).await?;
            let view = live
                .into_iter()
                .zip(records)
                .filter_map(|((node_id, expires_at), (url, clients))| {
                    Some(NodeView { node_id, public_url: url?, clients: clients.unwrap_or(0), expires_at })
                })
                .collect::<Vec<_>>();
            Ok::<_, redis::RedisError>((existed, view))
        };
        ctx.spawn(round.into_actor(self).map(|answer, act, _ctx| {
            act.renewing = false;
            match answer {
                Ok((existed, view)) => {
                    // Our record was gone while another node was alive: that node took us for
                    // dead and removed our members from their rooms. (Alone, or back from a
                    // Redis outage that every node saw, nobody did.)
                    let others = view.iter().any(|n| n.node_id != act.node_id);
                    let taken_for_dead = act.renewed_once && !existed && others;
                    act.renewed_once = true;
                    if taken_for_dead && act.kick_when_expired {
                        warn!(
                            "node {}: its presence had expired while other nodes were up: closing its client connections (1012)",
                            act.node_id
                        );
                        act.sessions.do_send(KickAll { reason: KickReason::Reconnect, spread_ms: None });
                    }
                    if act.reachable != Some(true) {
                        info!("node {}: presence renewed in Redis, {} live node(s)", act.node_id, view.len());
                    }
                    act.reachable = Some(true);
                    act.metrics.store_up.set(1);
                    act.metrics.nodes.set(view.len() as i64);
                    debug!("node {}: live nodes {:?}", act.node_id, view);
                    act.view = view;
                }
                Err(e) => {
                    if act.reachable != Some(false) {
                        warn!("node {}: cannot renew its presence in Redis: {e}", act.node_id);
                    }
                    act.reachable = Some(false);
                    act.metrics.store_up.set(0);
                }
            }
        }));
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
