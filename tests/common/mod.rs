//! Test harness: starts the real broker on an ephemeral port inside the test's actix system
//! and talks to it with real WebSocket (tokio-tungstenite) and HTTP (awc) clients, written
//! from docs/protocol.md: [`BigoClient`] speaks the platform's side (its frames built by
//! `actors::protocol::bigo_client`, the module the simulator and the load generator share;
//! `bigo_ingress.rs` checks the signatures against docs/protocol.md's formulas written out),
//! [`AppClient`] an app's (its query, frames and greeting from `actors::protocol::app_client`,
//! shared with `danmu-broker listen` and the load generator; `client_protocol.rs` checks the
//! sign against the formula of 2.3 written out).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actors::protocol::app_client::{BrokerFrame, CommonParams, EndPointAnswer, Signer, END_POINT_PATH};
use actors::protocol::bigo_client;
use actors::protocol::client::ClientRequest;
use danmu_broker::auth;
use danmu_broker::config::Config;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

pub const PASSWORD: &str = "test-password";
pub const ACCOUNT: &str = "bigoUser1";
pub const ABBR: &str = "inke";
pub const SECRET: &str = "test-jwt-secret";
pub const WAIT: Duration = Duration::from_secs(5);

pub fn now_ms() -> i64 {
    actors::protocol::now_ms()
}

pub fn md5(s: &str) -> String {
    actors::protocol::sign::md5_hex(s)
}

/// A client token for `user_id` (nickname `nick-{user_id}`) signed with `secret`, for an hour.
pub fn token_for(secret: &str, user_id: &str) -> String {
    auth::issue(secret, &auth::claims_for(user_id, Some(format!("nick-{user_id}")), 3600))
}

/// The query of `end_point` and of the upgrade for `user_id` on device `sid`, signed with
/// `secret`, at the present time.
pub fn client_query(secret: &str, user_id: &str, sid: &str) -> String {
    let token = token_for(secret, user_id);
    CommonParams { user_id, sid, timestamp: now_ms(), token: &token }.query()
}

/// The configuration tests start from: quick, quiet, memory store.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.server.public_url = String::new();
    c.server.workers = 1;
    c.bigo.accounts = vec![actors::config::BigoAccount { account: ACCOUNT.into(), password: PASSWORD.into() }];
    c.bigo.platform_abbr = ABBR.into();
    c.auth.jwt_secret = SECRET.into();
    c.room.reorder_window_ms = 150;
    c
}

/// Where a test's rooms run. The room tests (`room_protocol.rs`, `room_order.rs`, ...) run on
/// every engine ([`on_every_engine!`]): one behaviour, whichever engine sequences the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// One node on the memory store: the room sequenced in-process.
    Memory,
    /// One node on a Redis of its own: the room sequenced through Redis.
    Redis,
    /// Two nodes on one Redis: members alternate between the nodes (the first on the node
    /// HTTP calls go to), BIGO pushes to the second.
    TwoNodes,
    /// Two nodes, as [`Engine::TwoNodes`], on a Redis Cluster of three masters (one for the
    /// whole test process, a key prefix per test).
    ClusterTwoNodes,
}

pub struct TestBroker {
    /// The node HTTP calls go to (the first).
    pub addr: SocketAddr,
    /// The internal listener (operator endpoints), when `server.internal` is set.
    pub internal_addr: Option<SocketAddr>,
    pub config: Config,
    pub shutdown: danmu_broker::ShutdownHandle,
    pub engine: Engine,
    /// Every node, the first being `addr`.
    pub nodes: Vec<SocketAddr>,
    /// Which node the next client connects to (two nodes: they alternate).
    next_node: std::cell::Cell<usize>,
    /// The Redis of a Redis engine (stopped when the test ends).
    pub redis: Option<live::RedisServer>,
}

impl TestBroker {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_on(Engine::Memory, adjust).await
    }

    /// A broker whose rooms run on `engine`, configured by `adjust` (every node alike).
    pub async fn start_on(engine: Engine, adjust: impl FnOnce(&mut Config)) -> Self {
        let _ = env_logger::builder().is_test(true).try_init();
        let mut config = test_config();
        adjust(&mut config);
        let redis = matches!(engine, Engine::Redis | Engine::TwoNodes).then(live::RedisServer::start);
        if let Some(redis) = &redis {
            config.store.kind = danmu_broker::config::StoreKind::Redis;
            config.store.redis_url = redis.url();
        }
        if engine == Engine::ClusterTwoNodes {
            config.store.kind = danmu_broker::config::StoreKind::RedisCluster;
            config.store.cluster_nodes = live::RedisCluster::shared().urls();
        }
        if engine != Engine::Memory {
            config.store.key_prefix = live::unique_prefix();
            config.store.shared_rooms = true;
        }
        let count = if matches!(engine, Engine::TwoNodes | Engine::ClusterTwoNodes) { 2 } else { 1 };
        let mut nodes = Vec::new();
        let mut shutdowns = Vec::new();
        let mut internal_addr = None;
        for i in 0..count {
            let mut node = config.clone();
            if count > 1 {
                node.store.node_id = format!("node-{i}");
            }
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
            let broker = danmu_broker::start_on(node, listener).expect("start the broker");
            actix_rt::spawn(broker.server);
            nodes.push(broker.local_addr);
            internal_addr = internal_addr.or(broker.internal_addr);
            shutdowns.push(broker.shutdown);
        }
        Self {
            addr: nodes[0],
            internal_addr,
            config,
            shutdown: shutdowns.swap_remove(0),
            engine,
            nodes,
            next_node: std::cell::Cell::new(0),
            redis,
        }
    }

    /// The sum of an unlabelled metric over every node.
    pub async fn metric_on_every_node(&self, name: &str) -> f64 {
        let mut sum = 0.0;
        for node in &self.nodes {
            let mut resp = awc::Client::new().get(format!("http://{node}/metrics")).send().await.expect("GET /metrics");
            let text = String::from_utf8_lossy(&resp.body().limit(8 << 20).await.expect("body")).into_owned();
            sum += ops::sample(&text, name, "").unwrap_or(0.0);
        }
        sum
    }

    /// The node BIGO connects to: the last one (with two nodes, not the first member's).
    pub fn bigo_node(&self) -> SocketAddr {
        self.nodes[self.nodes.len() - 1]
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// A BIGO connection, not yet logged in.
    pub async fn bigo(&self) -> BigoClient {
        let url = format!("ws://{}{}", self.bigo_node(), self.config.bigo.path);
        let (ws, _) = connect_async(url).await.expect("connect BIGO ingress");
        BigoClient { ws, token: String::new() }
    }

    /// A BIGO connection that logged in successfully.
    pub async fn bigo_logged_in(&self) -> BigoClient {
        let mut bigo = self.bigo().await;
        let resp = bigo.login(ACCOUNT, PASSWORD, now_ms()).await;
        assert_eq!(resp["code"], 200, "login failed: {resp}");
        bigo
    }

    pub fn token(&self, user_id: &str) -> String {
        token_for(&self.config.auth.jwt_secret, user_id)
    }

    /// An app client connected through `end_point`, past its `connected` frame.
    pub async fn client(&self, user_id: &str) -> AppClient {
        self.client_with(user_id, "sid-1", false).await
    }

    pub async fn client_with(&self, user_id: &str, sid: &str, batch: bool) -> AppClient {
        self.connect_client(user_id, sid, batch, None).await
    }

    /// An app client whose socket has a small receive buffer, so that it fills soon once the
    /// client stops reading (a phone on a bad network, or an app that froze).
    pub async fn client_with_small_window(&self, user_id: &str) -> AppClient {
        self.connect_client(user_id, "sid-1", false, Some(4096)).await
    }

    async fn connect_client(&self, user_id: &str, sid: &str, batch: bool, recv_buffer: Option<u32>) -> AppClient {
        let token = self.token(user_id);
        let params = CommonParams { user_id, sid, timestamp: now_ms(), token: &token };
        let (_, body) = self.get_text(&format!("{END_POINT_PATH}?{}", params.query())).await;
        let answer: EndPointAnswer = serde_json::from_str(&body).expect("end_point answers JSON");
        let mut end_point = answer.url().unwrap_or_else(|| panic!("end_point: {body}")).to_string();
        if self.nodes.len() > 1 {
            // Members alternate between the nodes, whatever end_point would spread them to.
            let node = self.nodes[self.next_node.get() % self.nodes.len()];
            self.next_node.set(self.next_node.get() + 1);
            end_point = format!("ws://{node}{}", self.config.client.path);
        }
        let url = format!("{end_point}?{}", params.upgrade_query(batch));
        let ws = match recv_buffer {
            None => connect_async(url).await.expect("connect client").0,
            Some(bytes) => {
                let host = end_point.trim_start_matches("ws://").split('/').next().expect("host:port");
                let addr: SocketAddr = host.parse().expect("an address");
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
                let tcp = socket.connect(addr).await.expect("connect");
                tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp)).await.expect("upgrade").0
            }
        };
        AppClient::connected(ws, user_id, sid).await
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let mut resp = awc::Client::new().get(self.http_url(path)).send().await.expect("GET");
        let status = resp.status().as_u16();
        let body = resp.body().await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let mut resp = awc::Client::new().get(self.http_url(path)).send().await.expect("GET");
        let status = resp.status().as_u16();
        let body = resp.body().limit(8 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// Reads the next text frame as JSON, answering pings, failing after [`WAIT`].
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("connection ended")
            .expect("websocket error");
        match msg {
            Message::Text(text) => return serde_json::from_str(&text).expect("frame is JSON"),
            Message::Close(frame) => panic!("connection closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// Waits for the server to close; answers the close code.
pub async fn closed_with(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("timed out waiting for close") {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

pub struct BigoClient {
    pub ws: Ws,
    pub token: String,
}

impl BigoClient {
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws.send(Message::Text(text.into().into())).await.expect("send");
    }

    pub async fn recv(&mut self) -> Value {
        next_json(&mut self.ws).await
    }

    /// The `data` of a response, decoded from its JSON string.
    pub fn data_of(resp: &Value) -> Value {
        serde_json::from_str(resp["data"].as_str().expect("data is a JSON string")).expect("data JSON")
    }

    /// Logs in (the frame from `actors::protocol::bigo_client`); answers the response's data.
    pub async fn login(&mut self, account: &str, password: &str, timestamp: i64) -> Value {
        self.send_text(bigo_client::login_request(account, password, ABBR, timestamp)).await;
        let resp = self.recv().await;
        assert_eq!(resp["uri"], "platformLoginResp", "{resp}");
        let data = Self::data_of(&resp);
        if let Some(token) = data["access_token"].as_str() {
            self.token = token.to_string();
        }
        data
    }

    /// Sends a signed `dataReception` with `data` (an object, sent as a JSON string).
    pub async fn send_push(&mut self, data: &Value) {
        let frame = bigo_client::data_reception_request(&data.to_string(), &self.token, ABBR, 0, now_ms());
        self.send_text(frame).await;
    }

    /// Pushes and answers the response's data, or `None` when the connection failed before
    /// an answer came (the push may or may not have been taken: a BIGO client retries it).
    pub async fn try_push(&mut self, data: &Value) -> Option<Value> {
        let frame = bigo_client::data_reception_request(&data.to_string(), &self.token, ABBR, 0, now_ms());
        self.ws.send(Message::Text(frame.into())).await.ok()?;
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await.ok()?? {
                Ok(Message::Text(text)) => {
                    let resp: Value = serde_json::from_str(&text).ok()?;
                    return (resp["uri"] == "dataReceptionResp").then(|| Self::data_of(&resp));
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Pushes and answers the response's data.
    pub async fn push(&mut self, data: &Value) -> Value {
        self.send_push(data).await;
        let resp = self.recv().await;
        assert_eq!(resp["uri"], "dataReceptionResp", "{resp}");
        Self::data_of(&resp)
    }
}

/// A `dataReception` data object for one anchor with `items`.
pub fn push_data(seqid: &str, game_sess: &str, status: i64, items: Vec<Value>) -> Value {
    json!({"seqid": seqid, "timestamp": now_ms(), "game_id": "10000", "game_sess": game_sess,
           "status": status, "danmu_data": [{"openid": "anchor-1", "datas": items}]})
}

pub fn msg_item(data_seq: &str, ts: i64, content: &str) -> Value {
    json!({"type":"msg","user":"viewer-1","nick_name":"Viewer","user_img":"http://img/v1.png",
           "ts": ts.to_string(),"data_seq":data_seq,"content":content})
}

pub fn gift_item(data_seq: &str, ts: i64) -> Value {
    json!({"type":"gift","user":"viewer-2","nick_name":"Giver","user_img":"http://img/v2.png",
           "ts": ts.to_string(),"data_seq":data_seq,"gift_id":"g7","gift_url":"http://img/rose.png",
           "gift_level":1,"gift_count":3,"gift_name":"Rose"})
}

pub fn heart_item(data_seq: &str, ts: i64) -> Value {
    json!({"type":"heart","user":"viewer-3","nick_name":"Liker","user_img":"http://img/v3.png",
           "ts": ts.to_string(),"data_seq":data_seq,"count":5})
}

pub struct AppClient {
    pub ws: Ws,
    pub user_id: String,
    pub sid: String,
    pub online_token: String,
}

impl AppClient {
    /// The client of `user_id` on device `sid` over `ws`, just upgraded: past its `connected`
    /// frame, whose `online_token` it signs with.
    pub async fn connected(ws: Ws, user_id: &str, sid: &str) -> Self {
        let mut client = Self { ws, user_id: user_id.into(), sid: sid.into(), online_token: String::new() };
        let hello = client.recv().await;
        match serde_json::from_value::<BrokerFrame>(hello.clone()) {
            Ok(BrokerFrame::Connected { online_token, .. }) => client.online_token = online_token,
            _ => panic!("first frame: {hello}"),
        }
        client
    }

    fn signer(&self) -> Signer<'_> {
        Signer { online_token: &self.online_token, sid: &self.sid }
    }

    /// A correctly signed frame for `action` with `fields` (an object).
    pub fn frame(&self, action: &str, fields: Value) -> Value {
        serde_json::from_str(&self.signer().frame(action, &fields, now_ms())).expect("a frame of an object")
    }

    pub async fn send(&mut self, action: &str, fields: Value) {
        let frame = self.frame(action, fields);
        self.send_text(frame.to_string()).await;
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws.send(Message::Text(text.into().into())).await.expect("send");
    }

    /// The next frame (an object, or an array with `batch=1`).
    pub async fn recv(&mut self) -> Value {
        next_json(&mut self.ws).await
    }

    /// Frames until one has `action` (objects only), answering it.
    pub async fn recv_action(&mut self, action: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["action"] == action {
                return frame;
            }
        }
    }

    /// Joins `channel`, answering the ack.
    pub async fn enter(&mut self, channel: &str) -> Value {
        let enter = ClientRequest::EnterRoom { channel_name: channel.into(), last_seq: None, epoch: None };
        self.send_text(self.signer().request(&enter, now_ms())).await;
        let ack = self.recv_action("ack").await;
        assert_eq!(ack["for"], "enter_room_report", "{ack}");
        ack
    }

    /// Every frame (arrays flattened) until the connection ends, however it ends.
    pub async fn frames_until_closed(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(Some(Ok(msg))) = tokio::time::timeout(WAIT, self.ws.next()).await {
            match msg {
                Message::Text(text) => match serde_json::from_str(&text) {
                    Ok(Value::Array(items)) => out.extend(items),
                    Ok(frame) => out.push(frame),
                    Err(_) => {}
                },
                Message::Close(_) => break,
                _ => {}
            }
        }
        out
    }

    /// The next `n` room events with the given action (skipping other actions).
    pub async fn events(&mut self, action: &str, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < n {
            let frame = self.recv().await;
            let frames = match frame {
                Value::Array(items) => items,
                other => vec![other],
            };
            out.extend(frames.into_iter().filter(|f| f["action"] == action));
        }
        out
    }
}
/// Runs each listed room test on every [`Engine`]: `on_every_engine!(a, b)` makes the tests
/// `memory::a`, `redis::a`, `two_nodes::a`, `cluster::a`, ... of the `async fn a(engine: Engine)`
/// above it.
#[macro_export]
macro_rules! on_every_engine {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[actix_rt::test] async fn $test() { super::$test($crate::common::Engine::Memory).await })*
        }
        mod redis {
            $(#[actix_rt::test] async fn $test() { super::$test($crate::common::Engine::Redis).await })*
        }
        mod two_nodes {
            $(#[actix_rt::test] async fn $test() { super::$test($crate::common::Engine::TwoNodes).await })*
        }
        mod cluster {
            $(#[actix_rt::test] async fn $test() { super::$test($crate::common::Engine::ClusterTwoNodes).await })*
        }
    };
}

pub mod browser;
pub mod live;
pub mod nodes;
pub mod ops;
pub mod room;
