//! `danmu-broker push`: one danmu item pushed the way BIGO pushes it (docs/protocol.md 1): connect
//! to the BIGO ingress, `platformLogin` with the config's first `bigo.accounts` entry (the
//! simulator's [`Target`]), one signed `dataReception`, and its `dataReceptionResp` printed on
//! stdout as the broker wrote its `data` (`{"seqid","rescode","message"}`). The exit status is
//! 0 for `rescode` 200 and 1 for anything else.
//!
//! Each run makes a fresh `seqid` (and `data_seq`), so running it again delivers again; with
//! `--seqid` it re-sends that push, which a room that took it answers 200 and delivers nothing
//! (1.4, 2.6): the dedup can be watched by hand.

use std::process::ExitCode;
use std::time::Duration;

use actors::protocol::bigo_client::{self, Answer};
use actors::protocol::{now_ms, sign};
use danmu_broker::config::Config;
use danmu_simulator::{AnchorBatch, Item, PushData, Sender, Target};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// How long the answer may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the broker's close frame after ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The item type (docs/protocol.md 1.4) and the room event it becomes (2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ItemType {
    /// A chat message: send_topic_msg.
    Msg,
    /// Likes: like.
    Heart,
    /// A gift: send_gift.
    Gift,
}

/// The command-line options of `danmu-broker push`.
#[derive(Debug, Clone, clap::Args)]
pub struct PushOptions {
    /// The game session; its danmu reach the channel of the same name.
    #[arg(long)]
    pub game_sess: String,
    /// The chat message (--type msg, required there), or the gift's name (--type gift).
    #[arg(long)]
    pub content: Option<String>,
    /// The item's type.
    #[arg(long = "type", value_enum, default_value_t = ItemType::Msg)]
    pub item_type: ItemType,
    /// BIGO's id of the push [default: a fresh one each run]. Sending a seqid again that the
    /// room has taken is answered 200 and delivers nothing.
    #[arg(long)]
    pub seqid: Option<String>,
    /// The item's data_seq [default: {seqid}-1].
    #[arg(long)]
    pub data_seq: Option<String>,
    /// Likes in a heart, or gifts in a gift.
    #[arg(long, default_value_t = 1)]
    pub count: i64,
    /// The viewer who sent it (`user`).
    #[arg(long, default_value = "v1")]
    pub user: String,
    /// The viewer's nickname (`nick_name`).
    #[arg(long, default_value = "Bob")]
    pub nick_name: String,
    /// The anchor (`openid`; receiver of a gift).
    #[arg(long, default_value = "anchor1")]
    pub openid: String,
    /// The live room's status: 1 live, 2 a game mounted, 3 closed.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i64).range(1..=3))]
    pub status: i64,
    /// The BIGO ingress, e.g. ws://127.0.0.1:8080 (bigo.path is added when the URL has no
    /// path) [default: server.host, server.port and bigo.path of the config].
    #[arg(long)]
    pub url: Option<String>,
}

impl ItemType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Msg => "msg",
            Self::Heart => "heart",
            Self::Gift => "gift",
        }
    }
}

/// Pushes once; the exit status says whether the answer was 200 (a usage error is 2).
pub async fn run(config: &Config, opts: PushOptions) -> ExitCode {
    if opts.item_type == ItemType::Msg && opts.content.is_none() {
        eprintln!("push: --type msg needs --content TEXT");
        return ExitCode::from(2);
    }
    match push(config, opts).await {
        Ok(answer) => {
            // A struct of strings and integers always serialises.
            println!("{}", serde_json::to_string(&answer).unwrap_or_default());
            if answer.rescode == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("push: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The item of `opts`, sent at `ts`.
fn item(opts: &PushOptions, data_seq: String, ts: i64) -> Item {
    let from = Sender {
        user: opts.user.clone(),
        nick_name: opts.nick_name.clone(),
        user_img: String::new(),
        ts: ts.to_string(),
        data_seq,
    };
    match opts.item_type {
        ItemType::Msg => Item::Msg { from, content: opts.content.clone().unwrap_or_default() },
        ItemType::Heart => Item::Heart { from, count: opts.count },
        ItemType::Gift => Item::Gift {
            from,
            gift_id: "1".into(),
            gift_url: String::new(),
            gift_level: 1,
            gift_count: opts.count,
            gift_name: opts.content.clone().unwrap_or_else(|| "玫瑰".into()),
        },
    }
}

async fn push(config: &Config, opts: PushOptions) -> Result<bigo_client::DataAnswer, String> {
    let url = match &opts.url {
        Some(url) => super::with_default_path(url, &config.bigo.path),
        None => config.bigo_ingress_url(),
    };
    let seqid = opts.seqid.clone().unwrap_or_else(|| format!("cli-{}", &sign::random_token()[..12]));
    let data_seq = opts.data_seq.clone().unwrap_or_else(|| format!("{seqid}-1"));
    let now = now_ms();
    let item = item(&opts, data_seq.clone(), now);
    let data = PushData {
        seqid: &seqid,
        timestamp: now,
        game_id: "10000",
        game_sess: &opts.game_sess,
        status: opts.status,
        danmu_data: vec![AnchorBatch { openid: &opts.openid, datas: vec![item] }],
    }
    .to_text();

    let target = Target::from_config(&config.bigo, url).map_err(|e| e.to_string())?;
    let mut link = target.open().await.map_err(|e| e.to_string())?;
    eprintln!(
        "push: logged in to {} as {}; dataReception seqid {seqid} ({}, data_seq {data_seq}) for game_sess {}",
        target.url,
        target.account,
        opts.item_type.as_str(),
        opts.game_sess
    );
    let frame = bigo_client::data_reception_request(&data, &link.access_token, &target.platform_abbr, 0, now_ms());
    link.sink.send(Message::Text(frame.into())).await.map_err(|e| format!("sending: {e}"))?;
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
        while let Some(msg) = link.stream.next().await {
            match msg.map_err(|e| format!("connection lost: {e}"))? {
                Message::Text(text) => match bigo_client::parse_answer(&text) {
                    Ok(Answer::Data(answer)) if answer.seqid == seqid || answer.seqid.is_empty() => return Ok(answer),
                    Ok(Answer::Error(e)) => return Err(format!("errorResp {}: {}", e.code, e.message)),
                    _ => {}
                },
                Message::Close(close) => return Err(format!("the broker closed the connection: {close:?}")),
                _ => {}
            }
        }
        Err("connection lost before the answer".to_string())
    })
    .await
    .map_err(|_| format!("no dataReceptionResp within {} s", ANSWER_TIMEOUT.as_secs()))??;
    // Close as a WebSocket peer should: send the close frame, wait (briefly) for the broker's.
    let _ = link.sink.send(Message::Close(None)).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async { while let Some(Ok(_)) = link.stream.next().await {} }).await;
    Ok(answer)
}
