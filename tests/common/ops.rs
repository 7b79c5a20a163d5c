//! Harness for the operations and pull tests: a fake of BIGO's HTTP API (a real actix-web
//! server on port 0 that records every `pull_data` call and answers from a script), the broker
//! binary started as a separate process with a temp config, `/metrics` parsing, and a
//! self-signed certificate for TLS.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use tokio_tungstenite::{connect_async_tls_with_config, Connector};

/// How the fake API answers one call.
#[derive(Clone, Debug)]
pub enum Answer {
    /// `{"seqid":<echoed>,"rescode":200,"messge":"","danmu_data":[..],"context":..}`.
    Items { danmu_data: Value, context: String },
    /// A JSON body as given (e.g. a non-200 `rescode`).
    Json(Value),
    /// An HTTP error status with an empty body.
    Status(u16),
    /// 200 with a body that is not JSON.
    Garbage,
    /// Waits this long before answering (the client should time out first), then answers 200.
    Hang(Duration),
}

/// One call the fake API received.
#[derive(Clone, Debug)]
pub struct PullCall {
    pub authorization: String,
    pub body: Value,
    pub at: Instant,
}

#[derive(Default)]
struct FakeState {
    script: VecDeque<Answer>,
    calls: Vec<PullCall>,
}

/// A fake BIGO HTTP API. Once its script runs out it answers an empty 200 with the same
/// `context` as the request.
pub struct FakeBigoApi {
    pub addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    server: actix_web::dev::ServerHandle,
}

impl FakeBigoApi {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let shared = web::Data::new(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake API");
        let addr = listener.local_addr().expect("fake API address");
        let server = HttpServer::new(move || {
            App::new().app_data(shared.clone()).route("/broom/pull_data", web::post().to(pull_data))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self { addr, state, server: handle }
    }

    /// `bigo.api_base` pointing here.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues answers, used one per call, in order.
    pub fn answer(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.lock().expect("fake state").script.extend(answers);
    }

    pub fn calls(&self) -> Vec<PullCall> {
        self.state.lock().expect("fake state").calls.clone()
    }

    /// Waits until at least `n` calls came in; answers them all.
    pub async fn wait_calls(&self, n: usize, within: Duration) -> Vec<PullCall> {
        let deadline = Instant::now() + within;
        loop {
            let calls = self.calls();
            if calls.len() >= n {
                return calls;
            }
            assert!(Instant::now() < deadline, "expected {n} pull calls within {within:?}, got {}", calls.len());
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}

async fn pull_data(req: HttpRequest, body: web::Bytes, state: web::Data<Arc<Mutex<FakeState>>>) -> HttpResponse {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let authorization =
        req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let answer = {
        let mut state = state.lock().expect("fake state");
        state.calls.push(PullCall { authorization, body: body.clone(), at: Instant::now() });
        state.script.pop_front()
    };
    let seqid = body["seqid"].clone();
    let empty = || json!({"seqid": seqid, "rescode": 200, "messge": "", "danmu_data": [], "context": body["context"]});
    match answer {
        None => HttpResponse::Ok().json(empty()),
        Some(Answer::Items { danmu_data, context }) => HttpResponse::Ok()
            .json(json!({"seqid": seqid, "rescode": 200, "messge": "", "danmu_data": danmu_data, "context": context})),
        Some(Answer::Json(value)) => HttpResponse::Ok().json(value),
        Some(Answer::Status(code)) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).expect("status")).finish()
        }
        Some(Answer::Garbage) => HttpResponse::Ok().content_type("application/json").body("<html>oops"),
        Some(Answer::Hang(wait)) => {
            actix_rt::time::sleep(wait).await;
            HttpResponse::Ok().json(empty())
        }
    }
}

/// `danmu_data` for one anchor.
pub fn anchor_items(openid: &str, items: Vec<Value>) -> Value {
    json!([{"openid": openid, "datas": items}])
}

// -------------------------------------------------------------------------------------------
// /metrics

/// The value of the sample `name{labels}` (labels as printed, e.g. `kind="bigo"`; "" for
/// none), when the exposition has it.
pub fn sample(exposition: &str, name: &str, labels: &str) -> Option<f64> {
    let key = if labels.is_empty() { name.to_string() } else { format!("{name}{{{labels}}}") };
    exposition.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (k, v) = line.rsplit_once(' ')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

// -------------------------------------------------------------------------------------------
// The binary as a separate process

/// A scratch directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("danmu-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// The broker binary running as its own process, its stderr going to a file.
pub struct BrokerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
    pub dir: TempDir,
}

impl BrokerProcess {
    /// Writes `config_yaml` (which must bind `127.0.0.1:{port}`) and starts the binary with
    /// `--config`, waiting until `/healthz` answers 200.
    pub async fn start(config_yaml: &str, port: u16) -> Self {
        let dir = TempDir::new("proc");
        let config = dir.path("config.yaml");
        std::fs::write(&config, config_yaml).expect("write config");
        Self::start_file(dir, &config, &[], port).await
    }

    /// Starts the binary with `--config config` and the environment `env` (in `dir`, which
    /// keeps its log), waiting until `/healthz` on `127.0.0.1:{port}` answers 200.
    pub async fn start_file(dir: TempDir, config: &Path, env: &[(&str, &str)], port: u16) -> Self {
        let mut process = Self::spawn(dir, config, env, port);
        let addr = process.addr;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!("danmu-broker exited early with {status}: {}", process.log_text());
            }
            if healthz(addr).await == Some(200) {
                return process;
            }
            assert!(Instant::now() < deadline, "danmu-broker did not come up: {}", process.log_text());
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the binary as [`Self::start_file`] does, without waiting for anything (for one
    /// that is expected to exit).
    pub fn spawn(dir: TempDir, config: &Path, env: &[(&str, &str)], port: u16) -> Self {
        let log = dir.path("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_danmu-broker"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", std::env::var("TEST_BROKER_LOG").unwrap_or_else(|_| "info".into()))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn danmu-broker");
        Self { child, addr: ([127, 0, 0, 1], port).into(), log, dir }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a pid we spawned and a valid signal number has no memory effects.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM {pid}");
    }

    /// Waits for the process to exit, up to `within`; answers its status (None: still running,
    /// and then it is killed).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The status of `GET /healthz`, None when nothing answers.
pub async fn healthz(addr: SocketAddr) -> Option<u16> {
    let client = awc::Client::builder().timeout(Duration::from_millis(500)).finish();
    client.get(format!("http://{addr}/healthz")).send().await.ok().map(|r| r.status().as_u16())
}

// -------------------------------------------------------------------------------------------
// TLS

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files into `dir`;
/// answers (cert path, key path, the certificate in DER for the client's trust store).
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names).expect("certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, signing_key.serialize_pem()).expect("write key");
    (cert_path, key_path, cert.der().to_vec())
}

// -------------------------------------------------------------------------------------------
// Clients of a broker that is not a `TestBroker` (a spawned process, a TLS listener)

/// The query of a client upgrade for `user_id` with a fresh token signed with [`super::SECRET`].
pub fn client_query(user_id: &str, sid: &str) -> String {
    super::client_query(super::SECRET, user_id, sid)
}

/// An app client on `base` (`ws://host:port` or `wss://...`), past its `connected` frame.
pub async fn app_client_at(base: &str, user_id: &str, connector: Option<Connector>) -> super::AppClient {
    let url = format!("{base}/iapi/websocket?{}", client_query(user_id, "sid-1"));
    let (ws, _) = connect_async_tls_with_config(url, None, false, connector).await.expect("connect client");
    super::AppClient::connected(ws, user_id, "sid-1").await
}

/// A rustls client config on ring that trusts exactly `cert_der`.
pub fn trusting(cert_der: &[u8]) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(cert_der.to_vec())).expect("add the test certificate");
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    std::sync::Arc::new(config)
}

/// A BIGO connection on `base`, not yet logged in.
pub async fn bigo_at(base: &str, connector: Option<Connector>) -> super::BigoClient {
    let (ws, _) = connect_async_tls_with_config(format!("{base}/bigo/ws"), None, false, connector)
        .await
        .expect("connect BIGO ingress");
    super::BigoClient { ws, token: String::new() }
}

/// A TCP forwarder on a free loopback port to `upstream`, which a test can cut (every open
/// connection is shut down, new ones are closed at once) and restore: one node's link to Redis
/// fails while the node and Redis keep running, as in a network partition. Or it can freeze
/// the connections open now: they stay open and swallow what is sent either way (a half-open
/// link), while new connections are forwarded as before.
pub struct TcpCut {
    pub port: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<Mutex<Vec<std::net::TcpStream>>>,
    frozen: Arc<Mutex<Vec<Arc<std::sync::atomic::AtomicBool>>>>,
}

impl TcpCut {
    pub fn start(upstream: u16) -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the forwarder");
        let port = listener.local_addr().expect("its address").port();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let frozen: Arc<Mutex<Vec<Arc<std::sync::atomic::AtomicBool>>>> = Arc::default();
        let (is_cut, conns, flags) = (cut.clone(), open.clone(), frozen.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming().flatten() {
                if is_cut.load(SeqCst) {
                    let _ = inbound.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(outbound) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let this_frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
                if let Ok(mut all) = flags.lock() {
                    all.push(this_frozen.clone());
                }
                let pipe = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
                    let frozen = this_frozen.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            if !frozen.load(SeqCst) && to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                if let (Ok(i2), Ok(o2)) = (inbound.try_clone(), outbound.try_clone()) {
                    if let Ok(mut held) = conns.lock() {
                        held.extend([i2, o2]);
                    }
                    pipe(inbound.try_clone().expect("clone"), outbound.try_clone().expect("clone"));
                    pipe(outbound, inbound);
                }
            }
        });
        Self { port, cut, open, frozen }
    }

    /// Freezes the connections open now: nothing more passes either way, none of them closes.
    pub fn freeze_open(&self) {
        if let Ok(all) = self.frozen.lock() {
            for flag in all.iter() {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    /// Cuts the link: open connections end, new ones are refused.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut held) = self.open.lock() {
            for conn in held.drain(..) {
                let _ = conn.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}
