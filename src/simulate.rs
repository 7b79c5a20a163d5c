//! `danmu-broker simulate`: a stand-in for the BIGO platform (PROTOCOL.md 1 and 6), for demos
//! and for trying a broker by hand.
//!
//! It connects to a broker's BIGO ingress the way the platform does: `platformLogin` with the
//! first `bigo.accounts` entry of the configuration, a WebSocket ping every 5 s, then signed
//! `dataReception` pushes (`data` as a JSON string) for one `game_sess` at a steady rate,
//! reading every `dataReceptionResp`. The pushes carry a mix of `msg`, `heart` and `gift` items
//! from many viewers, Chinese and emoji included.
//!
//! Knobs mimic what the real platform does to a broker: `--shuffle-ms` sends pushes out of
//! `ts` order, `--retry-pct` re-sends acknowledged pushes (same `seqid`, as when an ack is
//! lost), `--drop-pct` loses pushes on the way, `--close` ends with status 3. Pushes answered
//! 503 are retried, and a lost connection is re-opened (new login) with every unacknowledged
//! push sent again, as section 1.4 asks of the platform.
//!
//! The pure parts (the danmu [`Generator`], the [`Summary`]) are plain types with unit tests;
//! the frames and their signatures come from `actors::protocol::bigo_client`, the platform's
//! side written once. [`run`] is the one async loop that owns the connection, the send queue
//! and the counters. It runs on any tokio runtime (the binary uses actix_rt's).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use crate::config::Config;
use actors::protocol::bigo::{URI_DATA_RESP, URI_ERROR, URI_LOGIN_RESP};
use actors::protocol::bigo_client::{self, Answer, AnswerError};
use actors::protocol::now_ms;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

/// PROTOCOL.md 1.3: the platform pings every 5 s.
const PING_EVERY: Duration = Duration::from_secs(5);
/// How long to wait for the login answer.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);
/// After the end, how long to wait for outstanding acks before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// A push answered 503 is sent again after this long.
const RETRY_503_AFTER: Duration = Duration::from_millis(500);
/// ... at most this many times.
const MAX_503_RETRIES: u32 = 5;
/// A `--retry-pct` re-send follows the ack after this long.
const DUPLICATE_AFTER: Duration = Duration::from_millis(50);
/// Reconnect backoff bounds.
const RECONNECT_MIN: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// The command-line options of `danmu-broker simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Game session to push danmu for; they reach the channel of the same name.
    #[arg(long)]
    pub game_sess: String,
    /// BIGO ingress URL [default: ws://{server.host}:{server.port}{bigo.path} of the config].
    #[arg(long)]
    pub url: Option<String>,
    /// Pushes per second (the default fills the demo page's stage without crowding it).
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Most danmu items in one push (each carries 1 to N).
    #[arg(long, default_value_t = 3)]
    pub items: usize,
    /// How many distinct viewers send the danmu.
    #[arg(long, default_value_t = 120)]
    pub viewers: u32,
    /// `game_id` of every push.
    #[arg(long, default_value = "10000")]
    pub game_id: String,
    /// The anchor's openid (the `danmu_data` entry; receiver of the gifts).
    #[arg(long, default_value = "anchor1")]
    pub openid: String,
    /// Hold each push a random 0..MS before sending it, so pushes leave out of ts order within
    /// that window (the broker's room.reorder_window_ms puts them back in order).
    #[arg(long, default_value_t = 0)]
    pub shuffle_ms: u64,
    /// Percent of pushes sent a second time after their ack (same seqid, retry_cnt 1), as the
    /// platform does when an ack is lost; the broker must deliver them once.
    #[arg(long, default_value_t = 0.0)]
    pub retry_pct: f64,
    /// Percent of pushes lost on the way: made, never sent (pull compensation's job).
    #[arg(long, default_value_t = 0.0)]
    pub drop_pct: f64,
    /// Stop after this many seconds [default: run until Ctrl-C].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Stop after this many pushes (dropped ones included).
    #[arg(long)]
    pub count: Option<u64>,
    /// End with a status 3 push: the live room closed.
    #[arg(long)]
    pub close: bool,
    /// No live progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("{0}")]
    BadOption(String),
    #[error("config: bigo.accounts is empty, nothing to log in with")]
    NoAccount,
    #[error("cannot connect to {url}: {reason} (is the broker running? see --url)")]
    Connect { url: String, reason: String },
    #[error("platformLogin refused: {0}")]
    LoginRefused(String),
    #[error("platformLogin: {0}")]
    LoginFailed(String),
}

impl Options {
    fn check(&self) -> Result<(), SimulateError> {
        let bad = |m: &str| Err(SimulateError::BadOption(m.to_string()));
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return bad("--rate must be above 0");
        }
        if self.items == 0 {
            return bad("--items must be at least 1");
        }
        if self.viewers == 0 {
            return bad("--viewers must be at least 1");
        }
        if !(0.0..=100.0).contains(&self.retry_pct) || !(0.0..=100.0).contains(&self.drop_pct) {
            return bad("--retry-pct and --drop-pct are percentages, 0 to 100");
        }
        if self.duration.is_some_and(|d| !(d.is_finite() && d >= 0.0)) {
            return bad("--duration must be 0 or more seconds");
        }
        if self.game_sess.trim().is_empty() {
            return bad("--game-sess must not be empty");
        }
        Ok(())
    }
}

/// The default ingress URL of a configuration: `ws://{server.host}:{server.port}{bigo.path}`
/// (`wss://` when the broker terminates TLS itself; a wildcard bind address means this host).
pub fn default_url(config: &Config) -> String {
    let host = match config.server.host.as_str() {
        "0.0.0.0" | "" => "127.0.0.1".to_string(),
        "::" | "[::]" => "[::1]".to_string(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    };
    let scheme = if config.server.tls.is_some() { "wss" } else { "ws" };
    format!("{scheme}://{host}:{}{}", config.server.port, config.bigo.path)
}

// ------------------------------------------------------------------------------------------
// The danmu generator (pure).

/// Viewer nicknames: the first viewers take these as they are ...
const NICKNAMES: &[&str] = &[
    "小明",
    "阿狸🦊",
    "星辰大海",
    "奶茶不加糖",
    "月亮不睡我不睡",
    "吃瓜群众🍉",
    "Lucky七",
    "北京老李",
    "Mia",
    "熬夜冠军",
    "Kevin",
    "云朵☁️",
];
/// ... the others are made of an adjective and a noun (10 x 12 more distinct names) ...
const NICK_ADJECTIVES: &[&str] =
    &["快乐的", "爱笑的", "安静的", "勇敢的", "迷路的", "熬夜的", "会飞的", "不吃香菜的", "追风的", "路过的"];
const NICK_NOUNS: &[&str] =
    &["小熊🐻", "柠檬🍋", "兔子🐰", "星星⭐", "咸鱼", "猫咪🐱", "小鹿", "企鹅🐧", "橘子🍊", "少年", "汤圆", "海豚🐬"];

/// ... and past those, a name with a number, as on any big platform.
fn nickname(viewer: u32) -> String {
    let k = viewer as usize;
    if k < NICKNAMES.len() {
        return NICKNAMES[k].to_string();
    }
    let k = k - NICKNAMES.len();
    let (a, n) = (NICK_ADJECTIVES.len(), NICK_NOUNS.len());
    let name = format!("{}{}", NICK_ADJECTIVES[k % a], NICK_NOUNS[(k / a) % n]);
    match k / (a * n) {
        0 => name,
        round => format!("{name}{round}"),
    }
}

/// What viewers say.
const MESSAGES: &[&str] = &[
    "主播好厉害！",
    "666666",
    "来了来了 🎉",
    "这波操作可以 👍",
    "哈哈哈哈😂",
    "前方高能⚡⚡⚡",
    "第一次来，关注了❤️",
    "主播唱得太好听了🎤",
    "冲冲冲 🚀",
    "晚上好～🌙",
    "好看！",
    "加油加油💪",
    "爱了爱了😍",
    "笑死我了🤣",
    "求BGM🎵",
    "弹幕护体🛡️",
    "打卡✅",
    "这是什么神仙操作",
    "太强了吧 🔥🔥",
    "有人一起吗？",
    "GG",
    "hello from Berlin 👋",
    "稳住，我们能赢",
    "下一把带我一个🙋",
    "好家伙",
    "awsl",
    "泪目了😭",
    "主播今天状态不错",
    "刚下班，赶上了🏃",
    "点赞点赞👍👍",
];

/// (gift_id, gift_name, gift_level)
const GIFTS: &[(&str, &str, i64)] =
    &[("1", "玫瑰", 1), ("2", "棒棒糖", 1), ("3", "爱心", 2), ("4", "跑车", 3), ("5", "火箭", 4), ("6", "城堡", 5)];
const GIFT_COUNTS: &[i64] = &[1, 1, 1, 1, 5, 10, 66, 99];

/// The fields every danmu item carries (section 1.4).
#[derive(Debug, Clone, Serialize)]
struct Sender {
    user: String,
    nick_name: String,
    user_img: String,
    ts: String,
    data_seq: String,
}

/// One danmu item as the platform sends it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Item {
    Msg {
        #[serde(flatten)]
        from: Sender,
        content: String,
    },
    Heart {
        #[serde(flatten)]
        from: Sender,
        count: i64,
    },
    Gift {
        #[serde(flatten)]
        from: Sender,
        gift_id: String,
        gift_url: String,
        gift_level: i64,
        gift_count: i64,
        gift_name: String,
    },
}

#[derive(Debug, Serialize)]
struct AnchorBatch<'a> {
    openid: &'a str,
    datas: Vec<Item>,
}

/// The `data` object of `dataReception`.
#[derive(Debug, Serialize)]
struct PushData<'a> {
    seqid: &'a str,
    timestamp: i64,
    game_id: &'a str,
    game_sess: &'a str,
    status: i64,
    danmu_data: Vec<AnchorBatch<'a>>,
}

/// Items per type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCounts {
    pub msg: u64,
    pub heart: u64,
    pub gift: u64,
}

impl ItemCounts {
    pub fn total(&self) -> u64 {
        self.msg + self.heart + self.gift
    }

    fn add(&mut self, other: ItemCounts) {
        self.msg += other.msg;
        self.heart += other.heart;
        self.gift += other.gift;
    }
}

/// One push, ready to send (and to send again: a retry carries the same `data`).
#[derive(Debug, Clone)]
pub struct Push {
    pub seqid: String,
    /// The `data` JSON text, exactly as signed.
    pub data: String,
    pub items: ItemCounts,
    pub status: i64,
}

/// Makes realistic pushes for one game session. `seqid` and `data_seq` start with a random
/// run id, so a second run on the same `game_sess` is not taken for duplicates of the first.
pub struct Generator {
    rng: StdRng,
    run_id: String,
    next_seqid: u64,
    next_data_seq: u64,
    game_sess: String,
    game_id: String,
    openid: String,
    viewers: u32,
    max_items: usize,
    /// Items of one push are spread over this many ms before it (the platform batches).
    spread_ms: i64,
}

impl Generator {
    pub fn new(opts: &Options, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let run_id = format!("{:08x}", rng.random::<u32>());
        Self {
            rng,
            run_id,
            next_seqid: 1,
            next_data_seq: 1,
            game_sess: opts.game_sess.clone(),
            game_id: opts.game_id.clone(),
            openid: opts.openid.clone(),
            viewers: opts.viewers.max(1),
            max_items: opts.items.max(1),
            spread_ms: ((1000.0 / opts.rate.max(0.001)) as i64).clamp(1, 1000),
        }
    }

    /// A status 2 (game mounted) push of 1..=max_items items made up to now.
    pub fn push(&mut self, now: i64) -> Push {
        let n = self.rng.random_range(1..=self.max_items);
        let mut ts: Vec<i64> = (0..n).map(|_| now - self.rng.random_range(0..self.spread_ms)).collect();
        ts.sort_unstable();
        let mut counts = ItemCounts::default();
        let items: Vec<Item> = ts.into_iter().map(|t| self.item(t, &mut counts)).collect();
        self.build(now, 2, items, counts)
    }

    /// The last push: status 3, the live room closed, no items.
    pub fn closing_push(&mut self, now: i64) -> Push {
        self.build(now, 3, Vec::new(), ItemCounts::default())
    }

    fn build(&mut self, now: i64, status: i64, items: Vec<Item>, counts: ItemCounts) -> Push {
        let seqid = format!("{}-{}", self.run_id, self.next_seqid);
        self.next_seqid += 1;
        let data = PushData {
            seqid: &seqid,
            timestamp: now,
            game_id: &self.game_id,
            game_sess: &self.game_sess,
            status,
            danmu_data: vec![AnchorBatch { openid: &self.openid, datas: items }],
        };
        // Plain structs of strings and integers always serialise.
        let data = serde_json::to_string(&data).unwrap_or_default();
        Push { seqid, data, items: counts, status }
    }

    fn item(&mut self, ts: i64, counts: &mut ItemCounts) -> Item {
        let viewer = self.rng.random_range(0..self.viewers);
        let nick_name = nickname(viewer);
        let user = format!("v{}", 10_000 + viewer);
        let from = Sender {
            user_img: format!("https://img.example.com/avatar/{user}.png"),
            user,
            nick_name,
            ts: ts.to_string(),
            data_seq: format!("{}-{}", self.run_id, self.next_data_seq),
        };
        self.next_data_seq += 1;
        let roll = self.rng.random_range(0..100);
        if roll < 70 {
            counts.msg += 1;
            let content = MESSAGES.choose(&mut self.rng).copied().unwrap_or("666");
            Item::Msg { from, content: content.to_string() }
        } else if roll < 90 {
            counts.heart += 1;
            let count = *[1, 1, 1, 2, 3, 5, 10].choose(&mut self.rng).unwrap_or(&1);
            Item::Heart { from, count }
        } else {
            counts.gift += 1;
            let (id, name, level) = *GIFTS.choose(&mut self.rng).unwrap_or(&GIFTS[0]);
            let gift_count = *GIFT_COUNTS.choose(&mut self.rng).unwrap_or(&1);
            Item::Gift {
                from,
                gift_id: id.to_string(),
                gift_url: format!("https://img.example.com/gift/{id}.png"),
                gift_level: level,
                gift_count,
                gift_name: name.to_string(),
            }
        }
    }

    /// A yes/no with `pct` percent chance (the drop and retry knobs).
    pub fn chance(&mut self, pct: f64) -> bool {
        pct > 0.0 && self.rng.random_range(0.0..100.0) < pct
    }

    /// A random delay of 0..=max_ms.
    pub fn delay(&mut self, max_ms: u64) -> Duration {
        if max_ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.rng.random_range(0..=max_ms))
    }
}

// ------------------------------------------------------------------------------------------
// The summary.

/// What a run did; printed at the end (text, or JSON with `--json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub game_sess: String,
    pub url: String,
    pub elapsed_s: f64,
    /// Pushes made (dropped ones included; the status 3 push not).
    pub pushes: u64,
    /// Pushes sent at least once.
    pub pushes_sent: u64,
    /// Pushes lost on purpose (`--drop-pct`): never sent.
    pub dropped: u64,
    /// `dataReception` frames written (first sends and retries).
    pub frames_sent: u64,
    /// Frames that were a re-send of a seqid (`--retry-pct`, 503, reconnect).
    pub retries: u64,
    /// `dataReceptionResp` frames read.
    pub acked: u64,
    /// Pushes still without a final answer at the end.
    pub unacked: u64,
    /// Answers per rescode (`errorResp` frames count under "errorResp").
    pub rescodes: BTreeMap<String, u64>,
    /// Items of the pushes sent.
    pub items: ItemCounts,
    /// Items of the dropped pushes.
    pub items_dropped: ItemCounts,
    pub reconnects: u64,
    /// The status 3 push was answered 200.
    pub closed: bool,
}

impl Summary {
    fn rescodes_text(&self) -> String {
        if self.rescodes.is_empty() {
            return "none".into();
        }
        self.rescodes.iter().map(|(code, n)| format!("{code}:{n}")).collect::<Vec<_>>().join(" ")
    }

    /// One progress line (no newline).
    pub fn progress_line(&self) -> String {
        format!(
            "simulate {}: {:>6.1}s  pushes {}  sent {}  acked {}  retries {}  dropped {}  pending {}  rescodes {}",
            self.game_sess,
            self.elapsed_s,
            self.pushes,
            self.frames_sent,
            self.acked,
            self.retries,
            self.dropped,
            self.unacked,
            self.rescodes_text()
        )
    }

    /// The human-readable summary.
    pub fn text(&self) -> String {
        let mut out = format!("simulate: game_sess {} on {}, {:.1} s\n", self.game_sess, self.url, self.elapsed_s);
        out += &format!(
            "  pushes  {} made: {} sent, {} dropped (never sent); {} frames written, {} of them retries\n",
            self.pushes, self.pushes_sent, self.dropped, self.frames_sent, self.retries
        );
        out += &format!(
            "  acks    {} read, {} pushes unanswered; rescodes {}\n",
            self.acked,
            self.unacked,
            self.rescodes_text()
        );
        out += &format!(
            "  items   {} sent: {} msg, {} heart, {} gift ({} more in dropped pushes)\n",
            self.items.total(),
            self.items.msg,
            self.items.heart,
            self.items.gift,
            self.items_dropped.total()
        );
        if self.reconnects > 0 {
            out += &format!("  reconnects {}\n", self.reconnects);
        }
        if self.closed {
            out += "  closed  status 3 sent and acknowledged\n";
        }
        out
    }
}

// ------------------------------------------------------------------------------------------
// The run loop.

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A logged-in connection.
struct Link {
    sink: SplitSink<Ws, Message>,
    stream: SplitStream<Ws>,
    access_token: String,
}

/// Where to connect and as whom.
struct Target {
    url: String,
    account: String,
    password: String,
    platform_abbr: String,
}

impl Target {
    async fn open(&self) -> Result<Link, SimulateError> {
        let connect_err = |reason: String| SimulateError::Connect { url: self.url.clone(), reason };
        let (ws, _) = connect_async(self.url.as_str()).await.map_err(|e| connect_err(e.to_string()))?;
        if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
            // Small frames at a steady pace: do not let Nagle hold them back.
            let _ = tcp.set_nodelay(true);
        }
        let (mut sink, mut stream) = ws.split();
        let frame = bigo_client::login_request(&self.account, &self.password, &self.platform_abbr, now_ms());
        sink.send(Message::Text(frame.into())).await.map_err(|e| connect_err(e.to_string()))?;
        let answer = tokio::time::timeout(LOGIN_TIMEOUT, async {
            while let Some(msg) = stream.next().await {
                let msg = msg.map_err(|e| SimulateError::LoginFailed(e.to_string()))?;
                match msg {
                    Message::Text(text) => match bigo_client::parse_answer(&text) {
                        Ok(Answer::Login(answer)) => return Ok(answer),
                        Ok(_) => {}
                        Err(AnswerError::NotAFrame) => {
                            return Err(SimulateError::LoginFailed(format!("not JSON: {text}")));
                        }
                        Err(AnswerError::BadData { uri }) if uri == URI_LOGIN_RESP => {
                            return Err(SimulateError::LoginFailed(format!("unreadable answer: {text}")));
                        }
                        Err(AnswerError::BadData { .. }) => {}
                    },
                    Message::Close(close) => {
                        return Err(SimulateError::LoginFailed(format!("connection closed: {close:?}")));
                    }
                    _ => {}
                }
            }
            Err(SimulateError::LoginFailed("connection closed".into()))
        })
        .await
        .map_err(|_| SimulateError::LoginFailed("no answer within 5 s".into()))??;
        match answer.accepted_token() {
            Some(access_token) => Ok(Link { sink, stream, access_token: access_token.to_string() }),
            None => Err(SimulateError::LoginRefused(format!("code {}: {}", answer.code, answer.message))),
        }
    }
}

/// A push waiting in the send queue or for its answer.
struct InFlight {
    push: Push,
    /// `retry_cnt` of its next send.
    next_retry_cnt: u32,
    sent_once: bool,
    /// Send it once more after a 200 (`--retry-pct`).
    duplicate: bool,
    retries_503: u32,
}

/// The loop's state: the queue of pushes due at an instant, the pushes waiting for an answer,
/// and the counters.
struct Run {
    opts: Options,
    target: Target,
    generator: Generator,
    summary: Summary,
    started: Instant,
    /// seqid -> push, for every push made and not yet finally answered.
    in_flight: HashMap<String, InFlight>,
    /// (due, order, seqid): pushes to send, earliest first.
    queue: BinaryHeap<Reverse<(Instant, u64, String)>>,
    queue_order: u64,
    /// seqids sent and not yet answered.
    awaiting: HashMap<String, Instant>,
    closing_seqid: Option<String>,
}

impl Run {
    fn enqueue(&mut self, seqid: String, due: Instant) {
        self.queue_order += 1;
        self.queue.push(Reverse((due, self.queue_order, seqid)));
    }

    fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((due, _, _))| *due)
    }

    /// Makes the pushes due by now at `--rate` (several per tick at high rates).
    fn generate_due(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let mut due = (elapsed * self.opts.rate).floor() as u64 + 1;
        if let Some(count) = self.opts.count {
            due = due.min(count);
        }
        while self.summary.pushes < due {
            let push = self.generator.push(now_ms());
            self.summary.pushes += 1;
            if self.generator.chance(self.opts.drop_pct) {
                self.summary.dropped += 1;
                self.summary.items_dropped.add(push.items);
                continue;
            }
            let duplicate = self.generator.chance(self.opts.retry_pct);
            let delay = self.generator.delay(self.opts.shuffle_ms);
            let seqid = push.seqid.clone();
            self.in_flight.insert(
                seqid.clone(),
                InFlight { push, next_retry_cnt: 0, sent_once: false, duplicate, retries_503: 0 },
            );
            self.enqueue(seqid, now + delay);
        }
    }

    fn generation_done(&self, now: Instant) -> bool {
        let by_count = self.opts.count.is_some_and(|c| self.summary.pushes >= c);
        let by_time = self.opts.duration.is_some_and(|d| now.duration_since(self.started).as_secs_f64() >= d);
        by_count || by_time
    }

    /// Writes every push due by `now`; answers false when the connection failed.
    async fn send_due(&mut self, link: &mut Link, now: Instant) -> bool {
        let mut wrote = false;
        while let Some(Reverse((due, _, _))) = self.queue.peek() {
            if *due > now {
                break;
            }
            let Some(Reverse((_, _, seqid))) = self.queue.pop() else { break };
            let Some(entry) = self.in_flight.get_mut(&seqid) else { continue };
            let text = bigo_client::data_reception_request(
                &entry.push.data,
                &link.access_token,
                &self.target.platform_abbr,
                entry.next_retry_cnt,
                now_ms(),
            );
            if entry.next_retry_cnt > 0 {
                self.summary.retries += 1;
            }
            if !entry.sent_once {
                entry.sent_once = true;
                // The status 3 push is not one of the `pushes` made at `--rate`.
                if self.closing_seqid.as_deref() != Some(seqid.as_str()) {
                    self.summary.pushes_sent += 1;
                    self.summary.items.add(entry.push.items);
                }
            }
            entry.next_retry_cnt += 1;
            self.summary.frames_sent += 1;
            self.awaiting.insert(seqid, now);
            // Feed now, flush once for the whole batch.
            if link.sink.feed(Message::Text(text.into())).await.is_err() {
                return false;
            }
            wrote = true;
        }
        !wrote || link.sink.flush().await.is_ok()
    }

    /// Handles one text frame from the broker; answers true when it asks to log in again.
    fn on_text(&mut self, text: &str, now: Instant) -> bool {
        let answer = match bigo_client::parse_answer(text) {
            Ok(Answer::Data(answer)) => answer,
            Ok(Answer::Error(error)) => {
                *self.summary.rescodes.entry("errorResp".into()).or_default() += 1;
                eprintln!("\nsimulate: errorResp {}: {}", error.code, error.message);
                return false;
            }
            Err(AnswerError::BadData { uri }) if uri == URI_ERROR => {
                *self.summary.rescodes.entry("errorResp".into()).or_default() += 1;
                eprintln!("\nsimulate: errorResp 0: ");
                return false;
            }
            Ok(Answer::Login(_) | Answer::Other(_)) => return false,
            Err(AnswerError::NotAFrame) => {
                eprintln!("\nsimulate: a frame that is not JSON: {text}");
                return false;
            }
            Err(AnswerError::BadData { uri }) => {
                if uri == URI_DATA_RESP {
                    eprintln!("\nsimulate: unreadable dataReceptionResp: {text}");
                }
                return false;
            }
        };
        self.summary.acked += 1;
        *self.summary.rescodes.entry(answer.rescode.to_string()).or_default() += 1;
        self.awaiting.remove(&answer.seqid);
        let Some(entry) = self.in_flight.get_mut(&answer.seqid) else { return false };
        match answer.rescode {
            200 => {
                if entry.duplicate {
                    entry.duplicate = false;
                    let seqid = answer.seqid.clone();
                    self.enqueue(seqid, now + DUPLICATE_AFTER);
                } else {
                    if self.closing_seqid.as_deref() == Some(answer.seqid.as_str()) {
                        self.summary.closed = true;
                    }
                    self.in_flight.remove(&answer.seqid);
                }
            }
            503 if entry.retries_503 < MAX_503_RETRIES => {
                entry.retries_503 += 1;
                let seqid = answer.seqid.clone();
                self.enqueue(seqid, now + RETRY_503_AFTER);
            }
            401 => {
                // Section 1.4: "log in again": the link is re-opened with a new login, and this
                // push waits in the queue for it.
                eprintln!("\nsimulate: seqid {} answered 401 ({}): logging in again", answer.seqid, answer.message);
                self.enqueue(answer.seqid, now);
                return true;
            }
            code => {
                eprintln!("\nsimulate: seqid {} answered {code}: {}", answer.seqid, answer.message);
                self.in_flight.remove(&answer.seqid);
            }
        }
        false
    }

    /// After a lost connection: everything sent and unanswered goes out again (same seqid).
    fn requeue_unanswered(&mut self, now: Instant) {
        let seqids: Vec<String> = self.awaiting.drain().map(|(s, _)| s).collect();
        for seqid in seqids {
            if self.in_flight.contains_key(&seqid) {
                self.enqueue(seqid, now);
            }
        }
    }

    fn progress(&mut self, tty: bool) {
        self.summary.elapsed_s = self.started.elapsed().as_secs_f64();
        self.summary.unacked = self.in_flight.len() as u64;
        let line = self.summary.progress_line();
        let mut err = std::io::stderr().lock();
        // On a terminal the line rewrites itself; in a log it is one line per second.
        let _ = if tty { write!(err, "\r{line}\x1b[K") } else { writeln!(err, "{line}") };
        let _ = err.flush();
    }
}

/// Runs the simulator until `--duration`/`--count` or Ctrl-C, then waits for outstanding acks
/// (up to 5 s), and answers the summary. Fails when the first connection or a login fails.
pub async fn run(config: &Config, opts: Options) -> Result<Summary, SimulateError> {
    opts.check()?;
    let account = config.bigo.accounts.first().ok_or(SimulateError::NoAccount)?;
    let target = Target {
        url: opts.url.clone().unwrap_or_else(|| default_url(config)),
        account: account.account.clone(),
        password: account.password.clone(),
        platform_abbr: config.bigo.platform_abbr.clone(),
    };
    let mut link = Some(target.open().await?);
    let tty = std::io::stderr().is_terminal();
    if !opts.quiet {
        eprintln!(
            "simulate: logged in to {} as {}; pushing game_sess {} at {}/s{}",
            target.url,
            target.account,
            opts.game_sess,
            opts.rate,
            if opts.duration.is_none() && opts.count.is_none() { " (Ctrl-C to stop)" } else { "" }
        );
    }
    let started = Instant::now();
    let mut run = Run {
        generator: Generator::new(&opts, rand::random()),
        summary: Summary { game_sess: opts.game_sess.clone(), url: target.url.clone(), ..Default::default() },
        opts,
        target,
        started,
        in_flight: HashMap::new(),
        queue: BinaryHeap::new(),
        queue_order: 0,
        awaiting: HashMap::new(),
        closing_seqid: None,
    };

    // Generate in ticks of at most 20 ms; at high rates one tick makes several pushes.
    let tick = Duration::from_secs_f64((1.0 / run.opts.rate).min(0.02));
    let mut gen_tick = tokio::time::interval(tick);
    gen_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ping = tokio::time::interval_at(started + PING_EVERY, PING_EVERY);
    let mut progress = tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);

    let mut generating = true;
    let mut drain_deadline: Option<Instant> = None;
    let mut reconnect_at: Option<Instant> = None;
    let mut backoff = RECONNECT_MIN;
    let far = || Instant::now() + Duration::from_secs(3600);

    loop {
        let now = Instant::now();
        if generating && run.generation_done(now) {
            generating = false;
        }
        if !generating && drain_deadline.is_none() {
            drain_deadline = Some(now + DRAIN_TIMEOUT);
            if run.opts.close {
                let push = run.generator.closing_push(now_ms());
                let seqid = push.seqid.clone();
                run.closing_seqid = Some(seqid.clone());
                run.in_flight.insert(
                    seqid.clone(),
                    InFlight { push, next_retry_cnt: 0, sent_once: false, duplicate: false, retries_503: 0 },
                );
                // After every held push (`--shuffle-ms`): status 3 is the last word.
                let after = run.queue.iter().map(|Reverse((due, _, _))| *due).max().unwrap_or(now).max(now);
                run.enqueue(seqid, after);
            }
        }
        if !generating && run.in_flight.is_empty() {
            break;
        }
        if drain_deadline.is_some_and(|d| now >= d) {
            break;
        }

        let send_at = if link.is_some() { run.next_due().unwrap_or_else(far) } else { far() };
        let lost = tokio::select! {
            msg = async {
                match link.as_mut() {
                    Some(l) => l.stream.next().await,
                    None => std::future::pending().await,
                }
            } => match msg {
                Some(Ok(Message::Text(text))) => run.on_text(&text, Instant::now()),
                Some(Ok(Message::Close(close))) => {
                    eprintln!("\nsimulate: the broker closed the connection: {close:?}");
                    true
                }
                Some(Ok(_)) => false,
                Some(Err(e)) => {
                    eprintln!("\nsimulate: connection error: {e}");
                    true
                }
                None => true,
            },
            _ = gen_tick.tick(), if generating => {
                run.generate_due(Instant::now());
                false
            }
            _ = tokio::time::sleep_until(send_at), if link.is_some() && !run.queue.is_empty() => {
                match link.as_mut() {
                    Some(l) => !run.send_due(l, Instant::now()).await,
                    None => false,
                }
            }
            _ = ping.tick() => {
                match link.as_mut() {
                    Some(l) => l.sink.send(Message::Ping(now_ms().to_string().into_bytes().into())).await.is_err(),
                    None => false,
                }
            }
            _ = progress.tick(), if !run.opts.quiet => {
                run.progress(tty);
                false
            }
            _ = tokio::time::sleep_until(reconnect_at.unwrap_or_else(far)), if link.is_none() => {
                match run.target.open().await {
                    Ok(l) => {
                        run.summary.reconnects += 1;
                        eprintln!("\nsimulate: reconnected and logged in again");
                        link = Some(l);
                        reconnect_at = None;
                        backoff = RECONNECT_MIN;
                        run.requeue_unanswered(Instant::now());
                    }
                    Err(e @ SimulateError::LoginRefused(_)) => return Err(e),
                    Err(e) => {
                        eprintln!("\nsimulate: {e}; trying again in {} ms", backoff.as_millis());
                        reconnect_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(RECONNECT_MAX);
                    }
                }
                false
            }
            _ = &mut ctrl_c, if generating => {
                generating = false;
                false
            }
        };
        if lost && link.is_some() {
            // Dropping the link closes the socket; pushes sent on it and unanswered go again.
            link = None;
            run.requeue_unanswered(Instant::now());
            reconnect_at = Some(Instant::now() + backoff);
        }
    }

    if let Some(mut l) = link {
        let _ = l.sink.send(Message::Close(None)).await;
    }
    run.summary.elapsed_s = run.started.elapsed().as_secs_f64();
    run.summary.unacked = run.in_flight.len() as u64;
    if !run.opts.quiet {
        run.progress(tty);
        eprintln!();
    }
    Ok(run.summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::protocol::bigo::DataReception;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        opts: Options,
    }

    fn opts(args: &[&str]) -> Options {
        let mut argv = vec!["simulate"];
        argv.extend_from_slice(args);
        Cli::parse_from(argv).opts
    }

    #[test]
    fn pushes_parse_as_data_reception_with_unique_seqids_and_data_seqs() {
        let o = opts(&["--game-sess", "g1", "--items", "4"]);
        let mut g = Generator::new(&o, 7);
        let mut seqids = std::collections::HashSet::new();
        let mut data_seqs = std::collections::HashSet::new();
        let mut counted = ItemCounts::default();
        for i in 0..200 {
            let push = g.push(1_700_000_000_000 + i * 200);
            let data: DataReception = serde_json::from_str(&push.data).unwrap();
            assert_eq!((data.game_sess.as_str(), data.game_id.as_str(), data.status), ("g1", "10000", Some(2)));
            assert!(seqids.insert(data.seqid.clone()));
            assert_eq!(data.seqid, push.seqid);
            let items = data.items();
            assert!((1..=4).contains(&items.len()));
            assert!(items.windows(2).all(|w| w[0].ts <= w[1].ts), "items of a push are in ts order");
            for item in &items {
                assert!(data_seqs.insert(item.data_seq.clone()));
                assert!(!item.user.is_empty() && !item.nick_name.is_empty());
                assert_eq!(item.openid, "anchor1");
            }
            counted.add(push.items);
        }
        assert_eq!(counted.total(), data_seqs.len() as u64);
        assert!(counted.msg > counted.heart && counted.heart > 0 && counted.gift > 0, "a mix: {counted:?}");
    }

    #[test]
    fn items_carry_the_fields_of_their_type() {
        let o = opts(&["--game-sess", "g1", "--items", "5"]);
        let mut g = Generator::new(&o, 11);
        let mut seen = (false, false, false);
        for _ in 0..100 {
            let data: serde_json::Value = serde_json::from_str(&g.push(1).data).unwrap();
            for item in data["danmu_data"][0]["datas"].as_array().unwrap() {
                assert!(item["ts"].is_string() && item["data_seq"].is_string());
                match item["type"].as_str().unwrap() {
                    "msg" => seen.0 |= item["content"].as_str().is_some_and(|c| !c.is_empty()),
                    "heart" => seen.1 |= item["count"].as_i64().is_some_and(|c| c >= 1),
                    "gift" => {
                        seen.2 |= ["gift_id", "gift_url", "gift_name"].iter().all(|k| item[*k].is_string())
                            && item["gift_count"].is_i64()
                            && item["gift_level"].is_i64()
                    }
                    other => panic!("unexpected type {other}"),
                }
            }
        }
        assert_eq!(seen, (true, true, true));
    }

    #[test]
    fn every_viewer_has_a_distinct_nickname() {
        let names: std::collections::HashSet<String> = (0..1000).map(nickname).collect();
        assert_eq!(names.len(), 1000);
    }

    #[test]
    fn two_runs_on_one_game_sess_use_different_seqids() {
        let o = opts(&["--game-sess", "g1"]);
        let (a, b) = (Generator::new(&o, 1).push(5), Generator::new(&o, 2).push(5));
        assert_ne!(a.seqid, b.seqid);
    }

    #[test]
    fn closing_push_has_status_3_and_no_items() {
        let o = opts(&["--game-sess", "g1"]);
        let data: DataReception = serde_json::from_str(&Generator::new(&o, 3).closing_push(9).data).unwrap();
        assert_eq!(data.status, Some(3));
        assert!(data.items().is_empty());
    }

    #[test]
    fn default_url_is_built_from_server_and_bigo_path() {
        let mut c = Config::default();
        assert_eq!(default_url(&c), "ws://127.0.0.1:8080/bigo/ws");
        c.server.host = "0.0.0.0".into();
        c.server.port = 9000;
        c.bigo.path = "/in".into();
        assert_eq!(default_url(&c), "ws://127.0.0.1:9000/in");
    }

    #[test]
    fn bad_options_are_refused_with_the_option_named() {
        for args in [
            &["--game-sess", "g", "--rate", "0"][..],
            &["--game-sess", "g", "--items", "0"],
            &["--game-sess", "g", "--drop-pct", "101"],
            &["--game-sess", " "],
        ] {
            let err = opts(args).check().unwrap_err().to_string();
            assert!(err.starts_with("--"), "{err}");
        }
    }
}
