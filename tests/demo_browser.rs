//! The `/demo` page (docs/protocol.md 6) in a real headless Chromium against the real broker: two
//! users join one channel, watch BIGO danmu arrive in `ts` order, chat with each other and see
//! each other's seat; an anchor creates a room and takes it live from the page, and a viewer
//! finds it in the live-room list (docs/protocol.md 3), likes it and joins it from there; one URL
//! (`/demo?user_id=&nickname=&channel=`) logs in and joins by itself, and the room that
//! `simulate --live-room` makes is in the list with its danmu. And with `demo.enabled` off, the
//! page and `/demo/token` do not exist. The pages' WebSockets run with permessage-deflate, which
//! Chromium offers and the broker accepts (docs/protocol.md 2.8).

mod common;

use common::browser::{target_dir, Browser, Chromedriver};
use common::live::{stream_of, LiveBroker, PLAY_DOMAIN};
use common::*;
use danmu_broker::config::StoreKind;
use serde_json::{json, Value};

const CHANNEL: &str = "demo-room-1";

/// Opens the demo page and logs in as `user_id`, up to the client connection.
async fn log_in(browser: &Browser, base: &str, user_id: &str, nickname: &str) {
    browser.goto(&format!("{base}/demo")).await;
    browser.fill("#user-id", user_id).await;
    browser.fill("#nickname", nickname).await;
    browser.click("#login").await;
    browser.wait_until("the connection", "document.getElementById('conn-status').dataset.state === 'connected'").await;
}

/// Logs in as `user_id` on the demo page and joins [`CHANNEL`].
async fn log_in_and_join(browser: &Browser, base: &str, user_id: &str, nickname: &str) {
    log_in(browser, base, user_id, nickname).await;
    browser.fill("#channel", CHANNEL).await;
    browser.click("#join").await;
    let joined = format!(
        "Array.from(document.querySelectorAll('#chat-log li')).some(li => li.textContent === 'joined {CHANNEL}')"
    );
    browser.wait_until("the enter ack", &joined).await;
}

/// `[text, data-ts]` of the elements matching `css`.
async fn texts_and_ts(browser: &Browser, css: &str) -> Vec<(String, i64)> {
    let rows = browser
        .eval(&format!(
            "Array.from(document.querySelectorAll('{css}')).map(e => [e.textContent, Number(e.getAttribute('data-ts'))])"
        ))
        .await;
    rows.as_array()
        .expect("an array")
        .iter()
        .map(|r| (r[0].as_str().unwrap_or_default().to_string(), r[1].as_i64().unwrap_or_default()))
        .collect()
}

#[actix_rt::test]
async fn two_users_on_the_demo_page_see_danmu_in_ts_order_chat_and_see_each_others_seat() {
    let broker = TestBroker::start_with(|c| {
        c.demo.enabled = true;
        // Generous, so that the three pushes below surely fall in one reorder window.
        c.room.reorder_window_ms = 500;
    })
    .await;
    let base = format!("http://{}", broker.addr);
    let mut driver = Chromedriver::start().await;
    let alice = driver.browser().await;
    let bob = driver.browser().await;
    log_in_and_join(&alice, &base, "alice", "Alice").await;
    log_in_and_join(&bob, &base, "bob", "Bob").await;
    for b in [&alice, &bob] {
        b.wait_until("two members", "document.getElementById('member-count').textContent === '2'").await;
    }

    // Danmu through the real BIGO ingress, out of ts order across and within pushes.
    let mut bigo = broker.bigo_logged_in().await;
    let t = now_ms();
    let pushes = [
        vec![msg_item("d3", t + 30, "第三条 🎉"), msg_item("d1", t, "第一条 👋")],
        vec![msg_item("d5", t + 50, "第五条 🚀"), msg_item("d2", t + 10, "第二条 😀")],
        vec![msg_item("d4", t + 40, "第四条 🔥"), heart_item("d7", t + 70), gift_item("d6", t + 60)],
    ];
    for (i, items) in pushes.into_iter().enumerate() {
        let answer = bigo.push(&push_data(&format!("s{i}"), CHANNEL, 2, items)).await;
        assert_eq!(answer["rescode"], 200, "{answer}");
    }
    let expected: Vec<String> = ["第一条 👋", "第二条 😀", "第三条 🎉", "第四条 🔥", "第五条 🚀"]
        .iter()
        .map(|c| format!("Viewer: {c}"))
        .collect();

    for b in [&alice, &bob] {
        b.wait_until("five danmu in the chat log", "document.querySelectorAll('#chat-log li.danmu').length >= 5").await;
        for css in ["#chat-log li.danmu", "#stage .danmu"] {
            let shown = texts_and_ts(b, css).await;
            let texts: Vec<&String> = shown.iter().map(|(text, _)| text).collect();
            assert_eq!(texts, expected.iter().collect::<Vec<_>>(), "{css} in ts order");
            assert!(shown.windows(2).all(|w| w[0].1 < w[1].1), "{css} data-ts ascending: {shown:?}");
        }
        // The gift (danmu `gift` -> send_gift) and the like (`heart` -> like, count 5).
        let banner = b.wait_until("the gift banner", "document.getElementById('gift-banner').textContent").await;
        assert!(banner.as_str().is_some_and(|s| s.contains("Giver sent") && s.contains("3\u{d7} Rose")), "{banner}");
        b.wait_until("five likes", "document.getElementById('like-count').textContent === '5'").await;
    }
    // Chromium offered permessage-deflate and the page connected with batch=1 (the SDK's
    // default): the room's array of these danmu went to both pages compressed (docs/protocol.md 2.8).
    let metrics = broker.get_text("/metrics").await.1;
    let compressed = common::ops::sample(&metrics, "danmu_client_bytes_out_total", "compressed=\"true\"");
    assert!(compressed.is_some_and(|bytes| bytes > 0.0), "nothing went compressed: {metrics}");

    // Chat: Alice writes, Bob reads it (chromedriver types BMP characters only: no emoji here).
    alice.fill("#chat-input", "大家好 from Alice ♥").await;
    alice.click("#chat-send").await;
    let from_alice = "Array.from(document.querySelectorAll('#chat-log li.danmu')).some(li => li.textContent === 'Alice: 大家好 from Alice ♥')";
    bob.wait_until("Alice's message on Bob's page", from_alice).await;
    alice.wait_until("Alice's own message", from_alice).await;
    bob.fill("#chat-input", "Hi Alice, 欢迎!").await;
    bob.click("#chat-send").await;
    alice
        .wait_until(
            "Bob's message on Alice's page",
            "Array.from(document.querySelectorAll('#chat-log li.danmu')).some(li => li.textContent === 'Bob: Hi Alice, 欢迎!')",
        )
        .await;

    // Seats: Alice takes seat 3; Bob sees it taken by her, then takes seat 5.
    alice.click("#seats .seat[data-seat-id='3']").await;
    let seat3 = "(s => s && s.dataset.userId === 'alice' && s.textContent === 'Alice' && s.classList.contains('taken'))(document.querySelector(\"#seats .seat[data-seat-id='3']\"))";
    bob.wait_until("seat 3 taken by Alice on Bob's page", seat3).await;
    alice
        .wait_until(
            "seat 3 as Alice's own",
            "document.querySelector(\"#seats .seat[data-seat-id='3']\").classList.contains('mine')",
        )
        .await;
    bob.click("#seats .seat[data-seat-id='5']").await;
    alice
        .wait_until(
            "seat 5 taken by Bob on Alice's page",
            "document.querySelector(\"#seats .seat[data-seat-id='5']\").dataset.userId === 'bob'",
        )
        .await;
    // Alice's page may show the `up` before Bob's own does: wait for it on Bob's page too.
    bob.wait_until(
        "seat 5 as Bob's own",
        "document.querySelector(\"#seats .seat[data-seat-id='5']\").classList.contains('mine')",
    )
    .await;
    let free = bob.eval("document.querySelectorAll('#seats .seat.free').length").await;
    assert_eq!(free, json!(6), "8 seats, 2 taken");

    let shot = target_dir().join("demo-screenshot.png");
    alice.screenshot(&shot).await;
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real PNG at {}", shot.display());

    alice.close().await;
    bob.close().await;
}

/// The JavaScript expression for the live list's row of `room_id` (null when not listed).
fn row(room_id: &str) -> String {
    format!("document.querySelector(\"#room-list tr.room[data-room-id='{room_id}']\")")
}

/// What a row shows: title, viewers, likes and the play URL links (null when not listed).
fn row_contents(room_id: &str) -> String {
    format!(
        "(r => r && {{ title: r.querySelector('.room-title').textContent, \
           viewers: r.querySelector('.room-viewers').textContent, \
           likes: r.querySelector('.room-likes').textContent, \
           play_urls: Array.from(r.querySelectorAll('.play-url')).map(a => [a.textContent, a.getAttribute('href')]) }})({})",
        row(room_id)
    )
}

#[actix_rt::test]
async fn a_room_taken_live_on_the_page_is_listed_for_everyone_liked_and_joined_from_the_list() {
    let broker = LiveBroker::start_with(StoreKind::Memory, |c| c.demo.enabled = true).await;
    let base = format!("http://{}", broker.addr);
    let mut driver = Chromedriver::start().await;
    let anna = driver.browser().await;
    let ben = driver.browser().await;
    log_in(&anna, &base, "anna", "Anna").await;
    log_in(&ben, &base, "ben", "Ben").await;
    ben.wait_until("an empty live list", "document.querySelector('#room-list tr.empty-row')").await;

    // Anna creates a room and takes it live from the page.
    let title = "晚间直播 evening stream";
    anna.fill("#room-title", title).await;
    anna.click("#create-room").await;
    let room_id = anna.wait_until("the created room", "document.getElementById('my-room-id').textContent").await;
    let room_id = room_id.as_str().expect("a room id").to_string();
    let id: u64 = room_id.parse().expect("a numeric room id");
    let created = broker.room(id).await;
    assert_eq!((created["status"].as_str(), created["title"].as_str()), (Some("new"), Some(title)));
    assert_eq!(
        anna.eval(&format!(
            "document.getElementById('my-push-url').textContent.startsWith('rtmp://') && {} === null",
            row(&room_id)
        ))
        .await,
        json!(true),
        "a new room has a push URL and is not listed"
    );
    anna.click("#go-live").await;
    anna.wait_until("Anna's room in her live list", &row(&room_id)).await;
    broker.room_field_becomes(id, "status", json!("live")).await;
    let mine = anna
        .eval("[document.getElementById('my-room-status').textContent, document.getElementById('go-live').disabled]")
        .await;
    assert_eq!(mine, json!(["live", true]), "a live room cannot go live again");

    // The row shows the server's data: title, counters and the play URLs the server built.
    let server_urls = &broker.room(id).await["play_urls"];
    let stream = stream_of(id);
    assert_eq!(server_urls["rtmp"], json!(format!("rtmp://{PLAY_DOMAIN}/live/{stream}")), "{server_urls}");
    let play_links = ["rtmp", "flv", "hls"].map(|k| json!([k, server_urls[k]]));
    let expected = json!({"title": title, "viewers": "0", "likes": "0", "play_urls": play_links});
    assert_eq!(anna.eval(&row_contents(&room_id)).await, expected);

    // Ben's page was open before the room went live: the list refresh brings it.
    ben.wait_until("Anna's room in Ben's live list", &row(&room_id)).await;
    assert_eq!(ben.eval(&row_contents(&room_id)).await, expected);

    // Ben likes it from the list: the server counts it and the row shows it.
    ben.click(&format!("#room-list tr.room[data-room-id='{room_id}'] .room-like")).await;
    broker.room_field_becomes(id, "likes", json!(1)).await;
    ben.wait_until(
        "one like in Ben's row",
        &format!("{}.querySelector('.room-likes').textContent === '1'", row(&room_id)),
    )
    .await;

    // Ben joins it from the list: channel = room_id, and he is its one viewer.
    ben.click(&format!("#room-list tr.room[data-room-id='{room_id}'] .room-join")).await;
    ben.wait_until(
        "the enter ack",
        &format!(
            "Array.from(document.querySelectorAll('#chat-log li')).some(li => li.textContent === 'joined {room_id}')"
        ),
    )
    .await;
    assert_eq!(ben.eval("document.getElementById('channel').value").await, json!(room_id));
    assert_eq!(ben.eval("document.getElementById('room-status').textContent").await, json!("live"));
    ben.wait_until("Ben's row marked current", &format!("{}.classList.contains('current')", row(&room_id))).await;
    broker.room_field_becomes(id, "viewers", json!(1)).await;
    for b in [&ben, &anna] {
        b.wait_until(
            "one viewer in the row",
            &format!("{}.querySelector('.room-viewers').textContent === '1'", row(&room_id)),
        )
        .await;
    }
    // The like button beside the chat likes the room Ben is in.
    ben.click("#like").await;
    broker.room_field_becomes(id, "likes", json!(2)).await;
    ben.wait_until(
        "two likes in Ben's row",
        &format!("{}.querySelector('.room-likes').textContent === '2'", row(&room_id)),
    )
    .await;

    // Anna links a BIGO game_sess to her room on the page: its danmu reach Ben in the room.
    anna.fill("#game-sess", "gs-anna").await;
    anna.click("#link-game").await;
    broker.room_field_becomes(id, "game_sess", json!("gs-anna")).await;
    anna.wait_until(
        "the link in Anna's panel",
        "document.getElementById('my-room-status').textContent === 'live \u{b7} game_sess gs-anna'",
    )
    .await;
    let mut bigo = broker.bigo_logged_in().await;
    let answer = bigo.push(&push_data("a1", "gs-anna", 2, vec![msg_item("a1-1", now_ms(), "主播好 👋")])).await;
    assert_eq!(answer["rescode"], 200, "{answer}");
    ben.wait_until(
        "the game's danmu in Ben's room",
        "Array.from(document.querySelectorAll('#chat-log li.danmu')).some(li => li.textContent === 'Viewer: 主播好 👋')",
    )
    .await;

    // Anna reloads the page (her session is restored) and closes her room from there: it
    // leaves both lists, and Ben, inside it, is told.
    anna.goto(&format!("{base}/demo")).await;
    anna.wait_until(
        "Anna's room back in her panel",
        &format!("document.getElementById('my-room-id').textContent === '{room_id}'"),
    )
    .await;
    anna.click("#close-room").await;
    for b in [&anna, &ben] {
        b.wait_until("the room off the list", &format!("{} === null", row(&room_id))).await;
    }
    assert!(broker.listed(1, 20).await.is_empty());
    ben.wait_until(
        "the closed status on Ben's page",
        "document.getElementById('room-status').textContent === 'closed'",
    )
    .await;

    anna.close().await;
    ben.close().await;
}

#[actix_rt::test]
async fn demo_page_and_token_exist_only_when_demo_is_enabled() {
    let off = TestBroker::start().await;
    assert!(!off.config.demo.enabled, "demo is off by default");
    let resp = awc::Client::new()
        .post(off.http_url("/demo/token"))
        .send_json(&json!({"user_id": "u1", "nickname": "Ann"}))
        .await
        .expect("POST /demo/token");
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(off.get_text("/demo").await.0, 404);

    let on = TestBroker::start_with(|c| c.demo.enabled = true).await;
    let (status, page) = on.get_text("/demo").await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"chat-log\""));
    let mut resp = awc::Client::new()
        .post(on.http_url("/demo/token"))
        .send_json(&json!({"user_id": "u1", "nickname": "Ann"}))
        .await
        .expect("POST /demo/token");
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.expect("JSON");
    let token = body["token"].as_str().expect("token");
    let claims = danmu_broker::auth::verify(&on.config.auth.jwt_secret, token, Some("u1")).expect("a valid client JWT");
    assert_eq!(claims.nickname.as_deref(), Some("Ann"));
}

#[actix_rt::test]
async fn one_url_logs_in_and_joins_and_the_room_simulate_feeds_is_in_the_live_list() {
    let broker = TestBroker::start_with(|c| c.demo.enabled = true).await;
    let base = format!("http://{}", broker.addr);
    // The simulator's config: the broker's BIGO account and JWT secret.
    let config =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("demo-sim-{}.yaml", std::process::id()));
    let yaml = format!(
        "bigo: {{ platform_abbr: {ABBR}, accounts: [ {{ account: {ACCOUNT}, password: \"{PASSWORD}\" }} ] }}\n\
         auth: {{ jwt_secret: \"{SECRET}\" }}\n"
    );
    std::fs::write(&config, yaml).expect("write the simulator's config");
    let mut sim = std::process::Command::new(env!("CARGO_BIN_EXE_danmu-broker"));
    sim.arg("--config").arg(&config).arg("simulate").args(["--url", &broker.ws_url("/bigo/ws"), "--api-url", &base]);
    sim.args([
        "--game-sess",
        "demo-sim",
        "--rate",
        "8",
        "--duration",
        "20",
        "--lang",
        "en",
        "--live-room",
        "Simulated room",
        "--quiet",
    ]);
    sim.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut sim = sim.spawn().expect("run danmu-broker simulate");

    // The room it made: live, its game_sess linked.
    let token = broker.token("probe");
    let deadline = std::time::Instant::now() + WAIT;
    let room_id = loop {
        let mut resp =
            awc::Client::new().get(broker.http_url("/iapi/rooms")).bearer_auth(&token).send().await.expect("list");
        let list: Value = resp.json().await.expect("JSON");
        let found =
            list["rooms"].as_array().and_then(|rooms| rooms.iter().find(|r| r["title"] == "Simulated room").cloned());
        if let Some(room) = found {
            break room["room_id"].as_u64().expect("room_id").to_string();
        }
        assert!(std::time::Instant::now() < deadline, "the simulated room was never listed: {list}");
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
    };

    // One URL: logged in as dave and in the room, no click.
    let mut driver = Chromedriver::start().await;
    let dave = driver.browser().await;
    dave.goto(&format!("{base}/demo?user_id=dave&nickname=Dave&channel={room_id}")).await;
    dave.wait_until(
        "joined by itself",
        &format!(
            "Array.from(document.querySelectorAll('#chat-log li')).some(li => li.textContent === 'joined {room_id}')"
        ),
    )
    .await;
    assert_eq!(dave.eval("document.getElementById('me').textContent").await, json!("logged in as Dave (dave)"));
    // The live list shows the simulated room, marked as the one dave is in ...
    dave.wait_until("the simulated room in the list", &format!("{}.classList.contains('current')", row(&room_id)))
        .await;
    assert_eq!(
        dave.eval(&format!("{}.querySelector('.room-title').textContent", row(&room_id))).await,
        json!("Simulated room")
    );
    // ... and its danmu arrive, in Latin text (--lang en).
    dave.wait_until("three simulated danmu", "document.querySelectorAll('#chat-log li.danmu').length >= 3").await;
    let texts =
        dave.eval("Array.from(document.querySelectorAll('#chat-log li.danmu')).map(li => li.textContent)").await;
    assert!(texts.as_array().expect("texts").iter().all(|t| t.as_str().is_some_and(str::is_ascii)), "{texts}");

    let _ = sim.kill();
    let _ = sim.wait();
    let _ = std::fs::remove_file(config);
    dave.close().await;
}
