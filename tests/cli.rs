//! The by-hand tools of the binary (`src/cli/`): `listen`, `push` and `check-config`, each run
//! as the real binary against a real broker process started on a free port, the way a person
//! runs them in a terminal.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::ops::{app_client_at, bigo_at, free_port, BrokerProcess, TempDir};
use common::*;
use serde_json::Value;

/// How long a line the tools print may take to come.
const LINE_WAIT: Duration = Duration::from_secs(10);

/// A config for a broker on `port` (and for the tools talking to it) with the test accounts
/// and secret, plus `extra` YAML.
fn config_yaml(port: u16, extra: &str) -> String {
    format!(
        "server: {{ host: 127.0.0.1, port: {port}, public_url: \"\", workers: 1 }}\n\
         bigo: {{ platform_abbr: {ABBR}, accounts: [ {{ account: {ACCOUNT}, password: {PASSWORD} }} ] }}\n\
         auth: {{ jwt_secret: {SECRET} }}\n\
         room: {{ reorder_window_ms: 50 }}\n{extra}"
    )
}

async fn broker(extra: &str) -> (BrokerProcess, PathBuf) {
    let port = free_port();
    let broker = BrokerProcess::start(&config_yaml(port, extra), port).await;
    let config = broker.dir.path("config.yaml");
    (broker, config)
}

fn binary(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_danmu-broker"));
    cmd.arg("--config").arg(config).env("RUST_LOG", "warn");
    cmd
}

/// The lines of `reader`, as they come, on a channel.
fn lines_of(reader: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `danmu-broker listen` running in the background, its stdout and stderr read line by line.
struct Listening {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stderr line read so far, for failure messages.
    status: Vec<String>,
}

impl Listening {
    fn start(config: &Path, args: &[&str]) -> Self {
        let mut child = binary(config)
            .arg("listen")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn danmu-broker listen");
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        Self { child, stdout, stderr, status: Vec::new() }
    }

    /// Waits for a stderr line containing `needle`.
    fn status_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + LINE_WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.status.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no status line with {needle:?}; stderr so far:\n{}", self.status.join("\n"));
    }

    /// Waits for the next stdout line, which must be one JSON object, with `action`.
    fn event(&mut self, action: &str) -> Value {
        let deadline = Instant::now() + LINE_WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.stdout.recv_timeout(left) else { break };
            let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(event.is_object(), "{line}");
            if event["action"] == action {
                return event;
            }
        }
        let status: Vec<String> = self.stderr.try_iter().collect();
        panic!("no {action} event on stdout; stderr:\n{}\n{}", self.status.join("\n"), status.join("\n"));
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) with a pid we spawned and a valid signal number has no memory effects.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill -{signal} {}", self.child.id());
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pushes one chat message with the `push` command; answers its output.
fn push(config: &Path, game_sess: &str, content: &str, extra: &[&str]) -> Output {
    binary(config)
        .args(["push", "--game-sess", game_sess, "--content", content])
        .args(extra)
        .output()
        .expect("run danmu-broker push")
}

/// The answer `push` printed, after checking it succeeded.
fn pushed(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "push failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {stdout}"))
}

#[actix_rt::test]
async fn listen_prints_a_pushed_danmu_as_a_json_line() {
    let (broker, config) = broker("").await;
    // No --url: the address comes from the config, as for a person in the repository.
    let mut listen = Listening::start(&config, &["--channel", "gs-listen", "--user-id", "watcher"]);
    let entered = listen.status_line("entered gs-listen");
    assert!(entered.contains("as watcher") && entered.contains("last_seq 1"), "{entered}");

    let mut bigo = bigo_at(&format!("ws://{}", broker.addr), None).await;
    assert_eq!(bigo.login(ACCOUNT, PASSWORD, now_ms()).await["code"], 200);
    let ts = now_ms();
    let data = push_data("s-1", "gs-listen", 2, vec![msg_item("d-1", ts, "你好 👋")]);
    assert_eq!(bigo.push(&data).await["rescode"], 200);

    let msg = listen.event("send_topic_msg");
    assert_eq!((msg["content"].as_str(), msg["channel_name"].as_str()), (Some("你好 👋"), Some("gs-listen")));
    assert_eq!(
        (msg["user_id"].as_str(), msg["seq"].as_u64(), msg["ts"].as_i64()),
        (Some("viewer-1"), Some(2), Some(ts))
    );
    let status = listen.event("room_status");
    assert_eq!((status["status"].as_str(), status["seq"].as_u64()), (Some("game"), Some(3)));
}

#[actix_rt::test]
async fn listen_offers_permessage_deflate_and_prints_a_compressed_event_as_sent() {
    let (broker, config) = broker("").await;
    let mut listen = Listening::start(&config, &["--channel", "gs-zip", "--user-id", "watcher"]);
    listen.status_line("entered gs-zip");
    let mut bigo = bigo_at(&format!("ws://{}", broker.addr), None).await;
    assert_eq!(bigo.login(ACCOUNT, PASSWORD, now_ms()).await["code"], 200);
    // Past client.compression_min_bytes: the broker compresses it for a client that agreed.
    let long = "弹幕 danmu ".repeat(30);
    let data = push_data("s-zip", "gs-zip", 2, vec![msg_item("d-zip", now_ms(), &long)]);
    assert_eq!(bigo.push(&data).await["rescode"], 200);
    assert_eq!(listen.event("send_topic_msg")["content"].as_str(), Some(long.as_str()));
    let mut resp = awc::Client::new().get(format!("http://{}/metrics", broker.addr)).send().await.expect("GET");
    let metrics = String::from_utf8_lossy(&resp.body().await.expect("body")).into_owned();
    let compressed = common::ops::sample(&metrics, "danmu_client_bytes_out_total", "compressed=\"true\"");
    assert!(compressed.is_some_and(|bytes| bytes > 0.0), "listen's event went plain: {metrics}");
}

#[actix_rt::test]
async fn listen_stays_connected_by_pinging_and_recovers_what_it_missed_while_cut_off() {
    // A broker that drops a silent client after 1.5 s: the pings keep the listener in; a
    // stopped listener is dropped, and on waking reconnects and asks for what it missed.
    let (broker, config) = broker("client: { ping_interval_s: 1, idle_timeout_ms: 1500 }").await;
    let mut listen = Listening::start(&config, &["--channel", "gs-recover", "--user-id", "watcher"]);
    listen.status_line("entered gs-recover");
    let mut bigo = bigo_at(&format!("ws://{}", broker.addr), None).await;
    assert_eq!(bigo.login(ACCOUNT, PASSWORD, now_ms()).await["code"], 200);
    actix_rt::time::sleep(Duration::from_millis(3000)).await;
    let first = push_data("s-1", "gs-recover", 2, vec![msg_item("d-1", now_ms(), "before")]);
    assert_eq!(bigo.push(&first).await["rescode"], 200);
    assert_eq!(listen.event("send_topic_msg")["content"], "before", "still connected after twice the idle timeout");
    let seen = listen.event("room_status")["seq"].as_u64().expect("seq");

    listen.signal(libc::SIGSTOP);
    actix_rt::time::sleep(Duration::from_millis(2500)).await;
    let missed = push_data("s-2", "gs-recover", 2, vec![msg_item("d-2", now_ms(), "while away")]);
    assert_eq!(bigo.push(&missed).await["rescode"], 200);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    listen.signal(libc::SIGCONT);

    let line = listen.status_line("recovered:");
    assert!(line.contains("recovered: true") && line.contains(&format!("after seq {seen}")), "{line}");
    // The replay: the broker's note that the old connection left, then the missed message.
    let left = listen.event("exit_room");
    assert_eq!((left["user_id"].as_str(), left["seq"].as_u64()), (Some("watcher"), Some(seen + 1)));
    let replayed = listen.event("send_topic_msg");
    assert_eq!((replayed["content"].as_str(), replayed["seq"].as_u64()), (Some("while away"), Some(seen + 2)));
}

#[actix_rt::test]
async fn listen_outlives_a_broker_restart_and_says_the_room_started_over() {
    let (mut broker, config) = broker("").await;
    let port = broker.addr.port();
    let mut listen = Listening::start(&config, &["--channel", "gs-restart"]);
    let first = listen.status_line("entered gs-restart");
    broker.terminate();
    assert!(broker.wait_exit(Duration::from_secs(10)).await.is_some_and(|s| s.success()));
    // Told when to come back (server.reconnect_spread_ms, 5000 by default), it waits that long.
    let kicked = listen.status_line("kicked (shutdown)");
    let told: u64 = kicked
        .split("told to come back in ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(" ms"))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no retry_after_ms in {kicked:?}"));
    assert!(told <= 5_000, "{kicked}");
    let reconnecting = listen.status_line("reconnecting");
    let wait = format!("reconnecting in {:.1} s (retry_after_ms)", told as f64 / 1000.0);
    assert!(reconnecting.ends_with(&wait), "{reconnecting:?}, expected {wait:?}");

    let restarted = BrokerProcess::start(&config_yaml(port, ""), port).await;
    // The memory store lost the room: a new epoch, nothing to replay.
    let line = listen.status_line("recovered:");
    assert!(line.contains("recovered: false") && line.contains("a new epoch"), "first: {first}\nthen: {line}");
    let out = push(&config, "gs-restart", "after the restart", &[]);
    assert_eq!(pushed(&out)["rescode"], 200);
    assert_eq!(listen.event("send_topic_msg")["content"], "after the restart");
    drop(restarted);
}

#[actix_rt::test]
async fn push_twice_delivers_twice_and_a_repeated_seqid_once() {
    let (broker, config) = broker("").await;
    let mut client = app_client_at(&format!("ws://{}", broker.addr), "watcher", None).await;
    client.enter("gs-push").await;

    let (a, b) = (pushed(&push(&config, "gs-push", "hi", &[])), pushed(&push(&config, "gs-push", "hi", &[])));
    assert_eq!((a["rescode"].as_i64(), b["rescode"].as_i64()), (Some(200), Some(200)));
    assert_ne!(a["seqid"], b["seqid"], "each run makes its own seqid");
    let events = client.events("send_topic_msg", 2).await;
    assert!(events.iter().all(|e| e["content"] == "hi" && e["user_id"] == "v1" && e["nickname"] == "Bob"));
    assert!(events[0]["seq"].as_u64() < events[1]["seq"].as_u64());

    // The same seqid again is BIGO re-sending a push: answered 200, delivered once.
    let url = format!("ws://{}", broker.addr);
    for _ in 0..2 {
        let again = pushed(&push(&config, "gs-push", "once", &["--seqid", "s-fixed", "--url", &url]));
        assert_eq!((again["seqid"].as_str(), again["rescode"].as_i64()), (Some("s-fixed"), Some(200)));
    }
    let gift = pushed(&push(&config, "gs-push", "火箭", &["--type", "gift", "--count", "3"]));
    assert_eq!(gift["rescode"], 200);
    assert_eq!(client.events("send_topic_msg", 1).await[0]["content"], "once");
    let sent = client.events("send_gift", 1).await.remove(0);
    assert_eq!((sent["gift"]["name"].as_str(), sent["gift"]["num"].as_i64()), (Some("火箭"), Some(3)));

    // A refused push: the answer is printed and the exit status says so.
    let refused = push(&config, "", "no game_sess", &[]);
    assert_eq!(refused.status.code(), Some(1));
    let answer: Value = serde_json::from_slice(&refused.stdout).expect("the answer is printed");
    assert_eq!((answer["rescode"].as_i64(), answer["message"].as_str()), (Some(400), Some("missing game_sess")));
}

fn check_config(config: &Path, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = binary(config).arg("check-config").envs(env.iter().copied()).output().expect("run check-config");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_masks_secrets_and_names_a_bad_key() {
    let dir = TempDir::new("check-config");
    let config = dir.path("config.yaml");
    let secrets = "auth: { jwt_secret: jwt-s3cret }\n\
                   admin: { key: admin-s3cret }\n\
                   bigo: { accounts: [ { account: acc1, password: bigo-s3cret } ], api_token: api-s3cret }\n\
                   live: { push_key: push-s3cret, play_key: play-s3cret, callback_key: callback-s3cret }\n\
                   store: { redis_url: \"redis://app:redis-s3cret@cache:6379/0\" }\n";
    std::fs::write(&config, secrets).expect("write config");

    let (code, yaml, stderr) = check_config(&config, &[("DANMU__SERVER__PORT", "18999")]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!yaml.contains("s3cret") && !stderr.contains("s3cret"), "{yaml}{stderr}");
    assert!(yaml.starts_with("# danmu-broker check-config: valid; config file "), "{yaml}");
    assert!(yaml.contains("overridden by DANMU__SERVER__PORT"), "{yaml}");
    // The output is the effective configuration, readable as one.
    let effective = danmu_broker::config::from_yaml(&yaml).expect("the output reads back");
    assert_eq!(effective.server.port, 18999);
    assert_eq!((effective.auth.jwt_secret.as_str(), effective.bigo.accounts[0].account.as_str()), ("***", "acc1"));
    for secret in [
        &effective.admin.key,
        &effective.bigo.accounts[0].password,
        &effective.bigo.api_token,
        &effective.live.push_key,
        &effective.live.play_key,
        &effective.live.callback_key,
    ] {
        assert_eq!(secret, "***");
    }
    assert_eq!(effective.store.redis_url, "redis://app:***@cache:6379/0");

    std::fs::write(&config, format!("{secrets}client: {{ rate_per_s: 0 }}\n")).expect("write config");
    let (code, yaml, stderr) = check_config(&config, &[]);
    assert_eq!((code, yaml.as_str()), (Some(2), ""));
    // The key, the file it came from, and the rule.
    let named = format!("config key client.rate_per_s (in {}): must be at least 1", config.display());
    assert!(stderr.contains(&named), "{stderr}");

    std::fs::write(&config, secrets).expect("write config");
    let (code, _, stderr) = check_config(&config, &[("DANMU__ROOM__REORDER_WINDW_MS", "5")]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("unknown field `reorder_windw_ms`") && stderr.contains("room"), "{stderr}");
    // What start-up refuses, check-config refuses too: shipped secrets off loopback.
    let (code, _, stderr) = check_config(&dir.path("none.yaml"), &[("DANMU__SERVER__HOST", "0.0.0.0")]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("none.yaml: not found"), "a missing --config file is named: {stderr}");
    let defaults = dir.path("defaults.yaml");
    std::fs::write(&defaults, "{}\n").expect("write config");
    let (code, _, stderr) = check_config(&defaults, &[("DANMU__SERVER__HOST", "0.0.0.0")]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("server.host 0.0.0.0") && stderr.contains("auth.jwt_secret"), "{stderr}");
}
