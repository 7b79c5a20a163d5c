//! Test harness: starts the real broker on an ephemeral port inside the test's actix system
//! and talks to it with real WebSocket (tokio-tungstenite) and HTTP (awc) clients, written
//! from PROTOCOL.md: [`BigoClient`] speaks the platform's side (its frames built by
//! `actors::protocol::bigo_client`, the module the simulator and the load generator share;
//! `bigo_ingress.rs` checks the signatures against PROTOCOL.md's formulas written out),
//! [`AppClient`] an app's.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actors::protocol::bigo_client;
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

pub struct TestBroker {
    pub addr: SocketAddr,
    /// The internal listener (operator endpoints), when `server.internal` is set.
    pub internal_addr: Option<SocketAddr>,
    pub config: Config,
    pub shutdown: danmu_broker::ShutdownHandle,
}

impl TestBroker {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let _ = env_logger::builder().is_test(true).try_init();
        let mut config = test_config();
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let broker = danmu_broker::start_on(config.clone(), listener).expect("start the broker");
        actix_rt::spawn(broker.server);
        Self { addr: broker.local_addr, internal_addr: broker.internal_addr, config, shutdown: broker.shutdown }
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// A BIGO connection, not yet logged in.
    pub async fn bigo(&self) -> BigoClient {
        let (ws, _) = connect_async(self.ws_url(&self.config.bigo.path)).await.expect("connect BIGO ingress");
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
        auth::issue(&self.config.auth.jwt_secret, &auth::claims_for(user_id, Some(format!("nick-{user_id}")), 3600))
    }

    /// An app client connected through `end_point`, past its `connected` frame.
    pub async fn client(&self, user_id: &str) -> AppClient {
        self.client_with(user_id, "sid-1", false).await
    }

    pub async fn client_with(&self, user_id: &str, sid: &str, batch: bool) -> AppClient {
        let token = self.token(user_id);
        let query = format!("user_id={user_id}&sid={sid}&timestamp={}&token={token}", now_ms());
        let answer: Value = self.get_json(&format!("/iapi/websocket/end_point?{query}")).await.1;
        assert_eq!(answer["error_code"], 0, "end_point: {answer}");
        let end_point = answer["end_point"].as_str().expect("end_point").to_string();
        let url = format!("{end_point}?{query}{}", if batch { "&batch=1" } else { "" });
        let (ws, _) = connect_async(url).await.expect("connect client");
        let mut client = AppClient { ws, user_id: user_id.into(), sid: sid.into(), online_token: String::new() };
        let hello = client.recv().await;
        assert_eq!(hello["action"], "connected", "first frame: {hello}");
        client.online_token = hello["online_token"].as_str().expect("online_token").to_string();
        client
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
    /// A correctly signed frame for `action` with `fields`.
    pub fn frame(&self, action: &str, fields: Value) -> Value {
        let ts = now_ms();
        let sign = md5(&format!("action={action}&online_token={}&sid={}&timestamp={ts}", self.online_token, self.sid));
        let mut frame = json!({"action": action, "online_token": self.online_token, "sid": self.sid,
                               "timestamp": ts, "sign": sign});
        if let (Some(obj), Value::Object(extra)) = (frame.as_object_mut(), fields) {
            obj.extend(extra);
        }
        frame
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
        self.send("enter_room_report", json!({"channel_name": channel})).await;
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
pub mod browser;
pub mod live;
pub mod ops;
pub mod room;
