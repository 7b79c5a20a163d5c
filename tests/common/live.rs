//! Live-room harness (docs/protocol.md 3): a broker on any store ([`LiveBroker`]), a real
//! `redis-server` per test ([`RedisServer`], or the one `REDIS_URL` names), a real 3-master
//! Redis Cluster ([`RedisCluster`], one per test process, shared by prefix), and a fake of the
//! cloud's stream APIs ([`FakeCloud`]: a real actix-web server on port 0, scripted per
//! `stream_id`). The cloud is the one system here outside our control, so it is the one fake.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use danmu_broker::config::{Config, StoreKind};
use serde_json::{json, Value};

use super::{TestBroker, WAIT};

pub const ADMIN_KEY: &str = "test-admin-key";
pub const CALLBACK_KEY: &str = "test-callback-key";
pub const PUSH_KEY: &str = "test-push-key";
pub const BIZID: &str = "7777";
pub const PUSH_DOMAIN: &str = "push.example.test";
pub const PLAY_DOMAIN: &str = "play.example.test";

/// Adds the live-room settings every live-room test shares.
pub fn live_config(c: &mut Config) {
    c.admin.key = ADMIN_KEY.into();
    c.live.callback_key = CALLBACK_KEY.into();
    c.live.push_key = PUSH_KEY.into();
    c.live.bizid = BIZID.into();
    c.live.push_domain = PUSH_DOMAIN.into();
    c.live.play_domain = PLAY_DOMAIN.into();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// A `redis-server` of this test's own, killed when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    /// With persistence: the directory of its append-only file (kept across restarts).
    dir: Option<std::path::PathBuf>,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut server = Self { port: free_port(), child: None, dir: None };
        server.restart();
        server
    }

    /// A server that writes every command to an append-only file before answering it
    /// (`appendfsync always`), so that a restart keeps everything it acknowledged.
    pub fn start_persistent() -> Self {
        let dir = std::env::temp_dir().join(format!("danmu-redis-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut server = Self { port: free_port(), child: None, dir: Some(dir) };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port, empty, and waits until it answers PING.
    pub fn restart(&mut self) {
        let persistence: Vec<String> = match &self.dir {
            None => ["--appendonly", "no"].map(String::from).to_vec(),
            Some(dir) => ["--appendonly", "yes", "--appendfsync", "always", "--dir"]
                .map(String::from)
                .into_iter()
                .chain([dir.display().to_string()])
                .collect(),
        };
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(&persistence)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server, or set REDIS_URL)");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if ping(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer PING", self.port);
    }

    /// Kills it (an outage).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 7];
    conn.write_all(b"PING\r\n").is_ok() && conn.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// A Redis Cluster of three masters (no replicas) on free ports, built the way an operator
/// builds one (`redis-cli --cluster create`), and stopped by PID when dropped.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("danmu-cluster-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let mut cluster = Self { ports: Vec::new(), children: Vec::new(), dir };
        for _ in 0..3 {
            let (port, bus) = (free_port(), free_port());
            let mut command = Command::new("redis-server");
            // The server gets SIGKILL when the thread that started it ends, so that no test
            // run (even one that panics or is killed) leaves a cluster behind.
            // SAFETY: the hook only calls prctl(2), which is async-signal-safe.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
            let child = command
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-port", &bus.to_string()])
                .args(["--cluster-node-timeout", "3000", "--cluster-config-file", &format!("nodes-{port}.conf")])
                .arg("--dir")
                .arg(&cluster.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (apt-get install redis-server)");
            cluster.children.push(child);
            cluster.ports.push(port);
        }
        for port in &cluster.ports {
            wait_for_ping(*port);
        }
        let addrs: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("redis-cli (apt-get install redis-tools)");
        assert!(created.status.success(), "redis-cli --cluster create: {}", String::from_utf8_lossy(&created.stderr));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.ports.iter().all(|p| cluster_ok(*p)) {
            assert!(Instant::now() < deadline, "the cluster on {:?} never reached cluster_state:ok", cluster.ports);
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// One cluster for every test of this process (each test uses a prefix of its own): a
    /// cluster takes seconds to form. A static is never dropped, so its servers are started
    /// from a thread that lives as long as the process, and die with it (see `start`).
    pub fn shared() -> &'static RedisCluster {
        static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
        CLUSTER.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(Self::start());
                loop {
                    std::thread::park();
                }
            });
            rx.recv().expect("the cluster thread")
        })
    }

    /// The seed URLs (`store.cluster_nodes`).
    pub fn urls(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect()
    }

    /// Keys under `prefix` on every master, with their types.
    pub fn keys(&self, prefix: &str) -> HashMap<String, String> {
        self.urls().iter().flat_map(|url| redis_keys(url, prefix)).collect()
    }

    /// The master port that serves `key`'s slot.
    pub fn port_of(&self, key: &str) -> u16 {
        let client = redis::Client::open(self.urls()[0].as_str()).expect("redis url");
        let mut conn = client.get_connection().expect("redis connection");
        let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut conn).expect("KEYSLOT");
        let shards: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut conn).expect("SLOTS");
        for shard in shards {
            let redis::Value::Array(parts) = shard else { continue };
            let (Some(from), Some(to), Some(redis::Value::Array(master))) = (parts.first(), parts.get(1), parts.get(2))
            else {
                continue;
            };
            let (from, to): (i64, i64) =
                (redis::from_redis_value_ref(from).unwrap(), redis::from_redis_value_ref(to).unwrap());
            if (from..=to).contains(&slot) {
                return redis::from_redis_value_ref(&master[1]).expect("master port");
            }
        }
        panic!("no master serves slot {slot}");
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn cluster_ok(port: u16) -> bool {
    Command::new("redis-cli")
        .args(["-p", &port.to_string(), "cluster", "info"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
        .unwrap_or(false)
}

fn wait_for_ping(port: u16) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if ping(port) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server on port {port} did not answer PING");
}

/// Who a call is made as.
#[derive(Clone, Copy)]
pub enum As<'a> {
    Nobody,
    User(&'a str),
    Admin,
    AdminKey(&'a str),
}

/// A broker with the live-room settings on the store `kind`; Redis tests get their own
/// `redis-server` (or `REDIS_URL`) and a key prefix of their own.
pub struct LiveBroker {
    pub broker: TestBroker,
    pub redis: Option<RedisServer>,
    pub kind: StoreKind,
}

impl Deref for LiveBroker {
    type Target = TestBroker;

    fn deref(&self) -> &TestBroker {
        &self.broker
    }
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("test:{}:", actors::protocol::sign::random_token())
}

impl LiveBroker {
    pub async fn start(kind: StoreKind) -> Self {
        Self::start_with(kind, |_| {}).await
    }

    pub async fn start_with(kind: StoreKind, adjust: impl FnOnce(&mut Config)) -> Self {
        let (redis, url) = match kind {
            StoreKind::Memory => (None, String::new()),
            StoreKind::Redis => match std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) {
                Some(url) => (None, url),
                None => {
                    let server = RedisServer::start();
                    let url = server.url();
                    (Some(server), url)
                }
            },
            StoreKind::RedisCluster => (None, RedisCluster::shared().urls().join(",")),
        };
        Self::start_on_redis(kind, redis, url, unique_prefix(), adjust).await
    }

    /// A broker on `url` with `prefix` (a second broker on the same Redis data, or one on a
    /// server the test controls); for a cluster, `url` is its seed URLs joined by commas.
    pub async fn start_on_redis(
        kind: StoreKind,
        redis: Option<RedisServer>,
        url: String,
        prefix: String,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let broker = TestBroker::start_with(|c| {
            live_config(c);
            c.store.kind = kind;
            match kind {
                StoreKind::Memory => {}
                StoreKind::Redis => c.store.redis_url = url,
                StoreKind::RedisCluster => c.store.cluster_nodes = url.split(',').map(String::from).collect(),
            }
            c.store.key_prefix = prefix;
            adjust(c);
        })
        .await;
        Self { broker, redis, kind }
    }

    /// Makes one HTTP call; answers the status and the JSON body (`Null` when not JSON).
    pub async fn call(&self, method: &str, path: &str, who: As<'_>, body: Option<Value>) -> (u16, Value) {
        let client = awc::Client::new();
        let url = self.http_url(path);
        let mut req = match method {
            "GET" => client.get(url),
            "POST" => client.post(url),
            other => panic!("method {other}"),
        };
        match who {
            As::Nobody => {}
            As::User(user_id) => req = req.insert_header(("Authorization", format!("Bearer {}", self.token(user_id)))),
            As::Admin => req = req.insert_header(("X-Admin-Key", ADMIN_KEY)),
            As::AdminKey(key) => req = req.insert_header(("X-Admin-Key", key)),
        }
        let mut resp = match body {
            Some(body) => req.send_json(&body).await,
            None => req.send().await,
        }
        .expect("HTTP call");
        let status = resp.status().as_u16();
        let bytes = resp.body().limit(8 << 20).await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// A call that must succeed; answers its body.
    pub async fn ok(&self, method: &str, path: &str, who: As<'_>, body: Option<Value>) -> Value {
        let (status, answer) = self.call(method, path, who, body).await;
        assert_eq!((status, &answer["error_code"]), (200, &json!(0)), "{method} {path}: {answer}");
        answer
    }

    /// Creates a room owned by `owner`; answers the create answer.
    pub async fn create_room(&self, owner: &str) -> Value {
        self.ok("POST", "/iapi/rooms", As::User(owner), Some(json!({"title": format!("{owner}'s room")}))).await
    }

    pub async fn go_live(&self, owner: &str, room_id: u64) -> Value {
        self.ok("POST", &format!("/iapi/rooms/{room_id}/live"), As::User(owner), None).await
    }

    /// A room owned by `owner`, live; answers its room_id.
    pub async fn live_room(&self, owner: &str) -> u64 {
        let room_id = room_id_of(&self.create_room(owner).await);
        self.go_live(owner, room_id).await;
        room_id
    }

    /// `GET /iapi/rooms/{room_id}` as some viewer.
    pub async fn room(&self, room_id: u64) -> Value {
        self.ok("GET", &format!("/iapi/rooms/{room_id}"), As::User("viewer"), None).await
    }

    /// The room_ids of one page of the live list.
    pub async fn listed(&self, page: u64, page_size: u64) -> Vec<u64> {
        let answer =
            self.ok("GET", &format!("/iapi/rooms?page={page}&page_size={page_size}"), As::User("viewer"), None).await;
        answer["rooms"].as_array().expect("rooms").iter().map(room_id_of).collect()
    }

    /// Waits until the room's `field` equals `value`.
    pub async fn room_field_becomes(&self, room_id: u64, field: &str, value: Value) {
        let mut last = Value::Null;
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            last = self.room(room_id).await[field].clone();
            if last == value {
                return;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("room {room_id}: {field} stayed {last}, expected {value}");
    }

    /// Posts a stream callback body; answers the status and body.
    pub async fn callback(&self, body: Value) -> (u16, Value) {
        self.call("POST", "/callback/stream", As::Nobody, Some(body)).await
    }
}

pub fn room_id_of(room: &Value) -> u64 {
    room["room_id"].as_u64().unwrap_or_else(|| panic!("room_id in {room}"))
}

pub fn stream_of(room_id: u64) -> String {
    format!("{BIZID}_{room_id}")
}

/// A correctly signed stream callback body, expiring `ttl_s` from now (negative: expired).
pub fn callback_body(stream_id: &str, event_type: i64, ttl_s: i64) -> Value {
    let t = (super::now_ms() / 1000 + ttl_s).to_string();
    json!({"t": t, "sign": super::md5(&format!("{CALLBACK_KEY}{t}")), "event_type": event_type,
           "stream_id": stream_id, "channel_id": stream_id, "app": "live", "appname": "live",
           "event_time": super::now_ms() / 1000})
}

/// Polls `check` until it holds, failing after [`WAIT`] with `what`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// One scripted answer of the fake stream-status API.
#[derive(Debug, Clone, Copy)]
pub enum StatusAnswer {
    /// `{"ret":0,"output":[{"status":N}]}`: 0 offline, 1 pushing, 3 forbidden.
    Status(i64),
    /// `{"ret":-1,...}`: the API says it could not answer.
    RetError,
    /// HTTP 500.
    HttpError,
}

pub const OFFLINE: StatusAnswer = StatusAnswer::Status(0);
pub const PUSHING: StatusAnswer = StatusAnswer::Status(1);

#[derive(Default)]
struct CloudState {
    /// Per stream: the answers, cycled; a stream without a script is pushing.
    scripts: HashMap<String, (Vec<StatusAnswer>, usize)>,
    queries: HashMap<String, usize>,
    forbid_calls: Vec<(String, String)>,
    forbid_failures_left: usize,
}

/// The cloud's stream-status and forbid-push APIs, faked by a real HTTP server.
pub struct FakeCloud {
    pub addr: SocketAddr,
    state: web::Data<Mutex<CloudState>>,
}

impl FakeCloud {
    pub async fn start() -> Self {
        let state = web::Data::new(Mutex::new(CloudState::default()));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let data = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/status", web::get().to(status))
                .route("/forbid", web::get().to(forbid))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        actix_rt::spawn(server);
        Self { addr, state }
    }

    pub fn status_url(&self) -> String {
        format!("http://{}/status", self.addr)
    }

    pub fn forbid_url(&self) -> String {
        format!("http://{}/forbid", self.addr)
    }

    /// From now on `stream_id` answers `answers`, in a cycle.
    pub fn script(&self, stream_id: &str, answers: Vec<StatusAnswer>) {
        self.state.lock().unwrap().scripts.insert(stream_id.to_string(), (answers, 0));
    }

    /// Status queries about `stream_id` so far.
    pub fn queries(&self, stream_id: &str) -> usize {
        self.state.lock().unwrap().queries.get(stream_id).copied().unwrap_or(0)
    }

    /// Every forbid call so far: (stream_id, status).
    pub fn forbid_calls(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().forbid_calls.clone()
    }

    /// The next `n` forbid calls answer `{"ret":1}`.
    pub fn fail_forbid(&self, n: usize) {
        self.state.lock().unwrap().forbid_failures_left = n;
    }
}

async fn status(state: web::Data<Mutex<CloudState>>, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let stream_id = q.get("stream_id").cloned().unwrap_or_default();
    let answer = {
        let mut state = state.lock().unwrap();
        *state.queries.entry(stream_id.clone()).or_default() += 1;
        match state.scripts.get_mut(&stream_id) {
            Some((answers, next)) if !answers.is_empty() => {
                let answer = answers[*next % answers.len()];
                *next += 1;
                answer
            }
            _ => PUSHING,
        }
    };
    match answer {
        StatusAnswer::Status(n) => HttpResponse::Ok().json(json!({"ret":0,"message":"","output":[{"status":n}]})),
        StatusAnswer::RetError => HttpResponse::Ok().json(json!({"ret":-1,"message":"busy","output":[]})),
        StatusAnswer::HttpError => HttpResponse::InternalServerError().finish(),
    }
}

async fn forbid(state: web::Data<Mutex<CloudState>>, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let mut state = state.lock().unwrap();
    let call = (q.get("stream_id").cloned().unwrap_or_default(), q.get("status").cloned().unwrap_or_default());
    state.forbid_calls.push(call);
    if state.forbid_failures_left > 0 {
        state.forbid_failures_left -= 1;
        return HttpResponse::Ok().json(json!({"ret":1,"message":"try again"}));
    }
    HttpResponse::Ok().json(json!({"ret":0}))
}

/// Keys under `prefix` in the Redis at `url`, with their types (the key table of docs/decisions.md, "Redis keys").
pub fn redis_keys(url: &str, prefix: &str) -> HashMap<String, String> {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client.get_connection().expect("redis connection");
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query(&mut conn).expect("KEYS");
    keys.into_iter()
        .map(|key| {
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).expect("TYPE");
            (key[prefix.len()..].to_string(), kind)
        })
        .collect()
}

/// A plain GET of one Redis string key.
pub fn redis_get(url: &str, key: &str) -> Option<String> {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client.get_connection().expect("redis connection");
    redis::cmd("GET").arg(key).query(&mut conn).expect("GET")
}
