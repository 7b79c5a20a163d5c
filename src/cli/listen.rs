//! `danmu-broker listen`: a real app client on the command line (docs/protocol.md 2). It mints its
//! own JWT with the configured `auth.jwt_secret` (as `danmu-broker token` does), asks
//! `GET /iapi/websocket/end_point` where to connect (2.1), connects and reads `connected`
//! (2.2), signs every frame (2.3), sends `ping` every `ping_interval` seconds so that the broker
//! never drops it as idle, enters the channel and prints each room event (2.4) as one JSON
//! line on stdout, exactly as the broker sent it. Status lines go to stderr. The frames, the
//! query and the reading of the broker's frames are `actors::protocol::app_client`'s, shared
//! with the load generator and the tests; this file is the I/O and the bookkeeping.
//!
//! A dropped connection (a broker restart, `kicked: shutdown`, an idle close, a network cut)
//! is opened again after a doubling back-off with jitter (each wait drawn between half and all
//! of it, so that the listeners of one broker do not come back together), or, after a
//! `kicked` that says `retry_after_ms`, after exactly that long (section 4: the broker already
//! spread its clients' waits), and the channel entered again with the last `seq` and `epoch`
//! seen (2.6): the missed events follow the ack, which says whether they all could
//! be (`recovered`). [`Position`] keeps that bookkeeping, apart from the I/O. What retrying
//! cannot mend ends the command: the broker refusing the token (another `auth.jwt_secret`), the
//! channel refusing the entry (1007), another connection of the same `--user-id` taking over.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use actors::protocol::app_client::{BrokerFrame, CommonParams, EndPointAnswer, Signer, END_POINT_PATH};
use actors::protocol::client::{ClientRequest, KickReason, RoomSnapshot};
use actors::protocol::{now_ms, sign};
use danmu_broker::auth;
use danmu_broker::config::Config;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use super::inflating_io::{self, Ws};

/// The `sid` of every connection: one listener process is one device.
const SID: &str = "cli";
/// Lifetime of each minted token; a new one is minted for every connection.
const TOKEN_TTL_S: u64 = 86_400;
/// How long `end_point`, the upgrade and the `connected` frame may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect back-off bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The command-line options of `danmu-broker listen`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListenOptions {
    /// The channel to enter (BIGO's danmu for a game_sess reach the channel of that name).
    #[arg(long)]
    pub channel: String,
    /// Recover from here: enter with this last_seq, the events after it are replayed
    /// (docs/protocol.md 2.6).
    #[arg(long)]
    pub last_seq: Option<u64>,
    /// The epoch --last-seq belongs to (an earlier ack's); without it, the room's current one.
    #[arg(long, requires = "last_seq")]
    pub epoch: Option<String>,
    /// The user to connect as [default: a fresh listener-XXXXXXXX]. A second connection of the
    /// same user replaces this one, which then ends.
    #[arg(long)]
    pub user_id: Option<String>,
    /// The broker's HTTP address, e.g. http://127.0.0.1:8080 [default: server.host and
    /// server.port of the config].
    #[arg(long)]
    pub url: Option<String>,
}

/// Where the listener is in the room's numbering, sent with every entry after the first
/// (docs/protocol.md 2.6). Pure bookkeeping: [`Position::on_ack`] and [`Position::on_event`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Position {
    /// The `last_seq` to enter with; None: enter fresh (no replay).
    last_seq: Option<u64>,
    epoch: Option<String>,
    /// The `seq` of this listener's own `enter_room`, the ack's `last_seq`: numbered, but only
    /// the other members receive it.
    own_enter: Option<u64>,
}

impl Position {
    /// The ack of `enter_room_report` said `last_seq` (this entry's own number) and `epoch`.
    /// A replay, if any, follows with the events between the position and that number; until
    /// it has come, the position stays where it was, so that a connection lost during the
    /// replay asks for it again.
    fn on_ack(&mut self, last_seq: u64, epoch: String) {
        let same_epoch = self.epoch.as_ref().is_none_or(|e| *e == epoch);
        self.last_seq = match self.last_seq {
            Some(from) if same_epoch && from.saturating_add(1) < last_seq => Some(from),
            // Entered fresh, nothing missed, or another epoch (which replays nothing): the
            // room's numbering from here on.
            _ => Some(last_seq),
        };
        self.epoch = Some(epoch);
        self.own_enter = Some(last_seq);
    }

    /// A room event numbered `seq` was printed.
    fn on_event(&mut self, seq: u64) {
        // The event just before this listener's own enter_room closes the replay: the
        // enter_room itself never comes.
        // The server's numbers: `seq` may be any u64, so no `seq + 1` that could overflow.
        let reached = match seq.checked_add(1) {
            Some(next) if Some(next) == self.own_enter => next,
            _ => seq,
        };
        self.last_seq = Some(self.last_seq.map_or(reached, |at| at.max(reached)));
    }
}

/// The `seq` of a room event (absent for a `ptp` gift or a `hang_up`).
#[derive(Deserialize)]
struct Numbered {
    #[serde(default)]
    seq: Option<u64>,
}

/// How one connection ended.
enum Ended {
    /// Worth another try; `entered` when it got as far as the room (the back-off starts over);
    /// `retry_after` when the broker said when to come back.
    Lost { reason: String, entered: bool, retry_after: Option<Duration> },
    /// Trying again cannot help.
    Fatal(String),
    /// Nobody reads stdout any more (`| head`): done.
    StdoutClosed,
}

fn lost(reason: impl Into<String>) -> Ended {
    Ended::Lost { reason: reason.into(), entered: false, retry_after: None }
}

/// How long to wait before the next connection: what the broker said (`retry_after`), else
/// `backoff` with jitter, drawn uniformly between half of it and all of it.
fn reconnect_wait(retry_after: Option<Duration>, backoff: Duration) -> Duration {
    retry_after.unwrap_or_else(|| {
        let half = backoff.as_millis() as u64 / 2;
        Duration::from_millis(half + rand::random_range(0..=half))
    })
}

struct Listener {
    opts: ListenOptions,
    user_id: String,
    jwt_secret: String,
    base: String,
}

/// Runs until stopped (Ctrl-C), or until something retrying cannot mend (exit status 1).
pub async fn run(config: &Config, opts: ListenOptions) -> ExitCode {
    let user_id = opts.user_id.clone().unwrap_or_else(|| format!("listener-{}", &sign::random_token()[..8]));
    let base = super::http_base(opts.url.as_deref().unwrap_or(&config.http_base_url()));
    let mut position = Position { last_seq: opts.last_seq, epoch: opts.epoch.clone(), own_enter: None };
    let listener = Listener { opts, user_id, jwt_secret: config.auth.jwt_secret.clone(), base };
    let mut backoff = BACKOFF_MIN;
    loop {
        match listener.session(&mut position).await {
            Ended::Lost { reason, entered, retry_after } => {
                if entered {
                    backoff = BACKOFF_MIN;
                }
                let wait = reconnect_wait(retry_after, backoff);
                let told = if retry_after.is_some() { " (retry_after_ms)" } else { "" };
                eprintln!("listen: {reason}; reconnecting in {:.1} s{told}", wait.as_secs_f64());
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Ended::Fatal(reason) => {
                eprintln!("listen: {reason}");
                return ExitCode::FAILURE;
            }
            Ended::StdoutClosed => return ExitCode::SUCCESS,
        }
    }
}

impl Listener {
    /// One connection: `end_point`, upgrade, `connected`, enter, then events until it ends.
    async fn session(&self, position: &mut Position) -> Ended {
        let token = auth::issue(&self.jwt_secret, &auth::claims_for(&self.user_id, None, TOKEN_TTL_S));
        let params = CommonParams { user_id: &self.user_id, sid: SID, timestamp: now_ms(), token: &token };
        let answer = match self.end_point(&params.query()).await {
            Ok(answer) => answer,
            Err(ended) => return ended,
        };
        let (mut sink, mut stream) = match connect(&answer.end_point, &params.upgrade_query(false)).await {
            Ok(ws) => ws.split(),
            Err(ended) => return ended,
        };
        let (online_token, ping_interval) = match connected(&mut stream).await {
            Ok((token, interval)) => (token, interval.or(answer.ping_interval)),
            Err(ended) => return ended,
        };
        let signer = Signer { online_token: &online_token, sid: SID };
        let asked = Asked { last_seq: position.last_seq, epoch: position.last_seq.and(position.epoch.clone()) };
        let enter = signer.request(&asked.entry(&self.opts.channel), now_ms());
        if let Err(e) = sink.send(Message::Text(enter.into())).await {
            return lost(format!("connection lost before entering: {e}"));
        }
        let ping_every = Duration::from_secs(ping_interval.unwrap_or(15).max(1));
        self.read_events(&mut sink, &mut stream, signer, ping_every, asked, position).await
    }

    /// `GET {base}/iapi/websocket/end_point`; an answer other than 2xx and 503 is fatal.
    async fn end_point(&self, query: &str) -> Result<EndPointAnswer, Ended> {
        let shown = format!("{}{END_POINT_PATH}", self.base);
        let url = format!("{shown}?{query}");
        let client = awc::Client::builder().timeout(STEP_TIMEOUT).finish();
        let mut response = client
            .get(&url)
            .send()
            .await
            .map_err(|e| lost(format!("cannot reach {shown}: {e} (is the broker running? see --url)")))?;
        let status = response.status();
        let body = response.body().limit(64 * 1024).await.map_err(|e| lost(format!("{shown}: {e}")))?;
        let answer: Option<EndPointAnswer> = serde_json::from_slice(&body).ok();
        match answer {
            Some(answer) if status.is_success() && answer.url().is_some() => Ok(answer),
            Some(answer) if status.is_client_error() => {
                Err(Ended::Fatal(refusal(&shown, status.as_u16(), answer.error_code, &answer.error_reason)))
            }
            _ if status.is_client_error() => Err(Ended::Fatal(format!("{shown} answered HTTP {status}"))),
            _ => Err(lost(format!("{shown} answered HTTP {status}: {}", String::from_utf8_lossy(&body)))),
        }
    }

    /// Reads until the connection ends, pinging every `ping_every`.
    async fn read_events(
        &self,
        sink: &mut SplitSink<Ws, Message>,
        stream: &mut SplitStream<Ws>,
        signer: Signer<'_>,
        ping_every: Duration,
        asked: Asked,
        position: &mut Position,
    ) -> Ended {
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        // The broker answers every ping: this much silence means the connection is gone
        // without a word (a cut network, a stopped machine).
        let silence_limit = ping_every * 2 + STEP_TIMEOUT;
        let mut last_heard = Instant::now();
        let mut entered = false;
        // Set by a `kicked` frame that says when to come back; the close follows it.
        let mut retry_after = None;
        let ended =
            |reason: String, entered: bool, retry_after: Option<Duration>| Ended::Lost { reason, entered, retry_after };
        loop {
            tokio::select! {
                msg = stream.next() => {
                    last_heard = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(text))) => {
                            match self.on_text(&text, &asked, position, &mut entered) {
                                Some(Next::End(end)) => return end,
                                Some(Next::RetryAfter(wait)) => retry_after = Some(wait),
                                None => {}
                            }
                        }
                        Some(Ok(Message::Close(close))) => {
                            let why = close.map_or("no close frame".into(), |c| format!("{} {}", c.code, c.reason));
                            return ended(format!("the broker closed the connection ({why})"), entered, retry_after);
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return ended(format!("connection lost: {e}"), entered, retry_after),
                        None => return ended("connection lost".into(), entered, retry_after),
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > silence_limit {
                        let silent = last_heard.elapsed().as_secs();
                        return ended(format!("nothing from the broker for {silent} s"), entered, None);
                    }
                    let frame = signer.request(&ClientRequest::Ping, now_ms());
                    if let Err(e) = sink.send(Message::Text(frame.into())).await {
                        return ended(format!("connection lost: {e}"), entered, retry_after);
                    }
                }
            }
        }
    }

    /// One text frame: a room event is printed, the ack of the entry reported; answers how the
    /// connection ends when the frame ends it, or when to come back once it ends.
    fn on_text(&self, text: &str, asked: &Asked, position: &mut Position, entered: &mut bool) -> Option<Next> {
        match BrokerFrame::parse(text) {
            Ok(BrokerFrame::RoomEvent) => {
                if let Ok(Numbered { seq: Some(seq) }) = serde_json::from_str(text) {
                    position.on_event(seq);
                }
                let mut out = std::io::stdout().lock();
                if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
                    return Some(Next::End(Ended::StdoutClosed));
                }
            }
            Ok(BrokerFrame::Ack { for_action, detail }) if for_action == "enter_room_report" => {
                *entered = true;
                let (last_seq, epoch) = (detail.last_seq.unwrap_or(0), detail.epoch.unwrap_or_default());
                self.say_entered(asked, last_seq, &epoch, detail.recovered, detail.room.as_ref());
                position.on_ack(last_seq, epoch);
            }
            Ok(BrokerFrame::Error { for_action, error_code, error_reason }) if for_action == "enter_room_report" => {
                let channel = &self.opts.channel;
                return Some(Next::End(Ended::Fatal(format!(
                    "entering {channel} refused with {error_code}: {error_reason}"
                ))));
            }
            Ok(BrokerFrame::Error { for_action, error_code, error_reason }) => {
                eprintln!("listen: {for_action} refused with {error_code}: {error_reason}");
            }
            Ok(BrokerFrame::Kicked { reason: KickReason::Replaced, .. }) => {
                let user_id = &self.user_id;
                return Some(Next::End(Ended::Fatal(format!(
                    "another connection of user_id {user_id} (sid {SID}) replaced this one"
                ))));
            }
            Ok(BrokerFrame::Kicked { reason, retry_after_ms }) => {
                let when = retry_after_ms.map_or(String::new(), |ms| format!(", told to come back in {ms} ms"));
                eprintln!("listen: kicked ({}){when}", reason.as_str());
                return retry_after_ms.map(|ms| Next::RetryAfter(Duration::from_millis(ms)));
            }
            Ok(BrokerFrame::Pong {} | BrokerFrame::Ack { .. } | BrokerFrame::Connected { .. }) => {}
            Err(_) => eprintln!("listen: a frame that is not a JSON object: {text}"),
        }
        None
    }

    /// The status line of an entry: where the listener stands, and on a recovery whether every
    /// missed event could be replayed.
    fn say_entered(
        &self,
        asked: &Asked,
        last_seq: u64,
        epoch: &str,
        recovered: Option<bool>,
        room: Option<&RoomSnapshot>,
    ) {
        let channel = &self.opts.channel;
        let room = room.map_or(String::new(), |r| {
            let status = r.status.map_or(String::new(), |s| format!(", status {s}"));
            format!("{} member(s){status}, ", r.members)
        });
        let head = format!("listen: entered {channel} as {} ({room}last_seq {last_seq}, epoch {epoch})", self.user_id);
        let Some(from) = asked.last_seq else {
            eprintln!("{head}");
            return;
        };
        match recovered {
            Some(true) => eprintln!("{head}: recovered: true, the events after seq {from} follow"),
            Some(false) if asked.epoch.as_deref().is_some_and(|old| old != epoch) => {
                let old = asked.epoch.as_deref().unwrap_or_default();
                eprintln!(
                    "{head}: recovered: false, a new epoch (was {old}): the room started over, older events are gone"
                );
            }
            Some(false) => {
                eprintln!("{head}: recovered: false, history lacks some events after seq {from}: what it has follows");
            }
            None => eprintln!("{head}"),
        }
    }
}

/// What a frame means for the connection: it ends it, or it says when to come back once the
/// broker closes it.
enum Next {
    End(Ended),
    RetryAfter(Duration),
}

/// The position an entry asked to recover from.
#[derive(Debug, PartialEq)]
struct Asked {
    last_seq: Option<u64>,
    epoch: Option<String>,
}

impl Asked {
    /// The `enter_room_report` of `channel` from this position: a fresh one names neither
    /// `last_seq` nor `epoch`.
    fn entry(&self, channel: &str) -> ClientRequest {
        ClientRequest::EnterRoom {
            channel_name: channel.to_string(),
            // The broker reads `last_seq` as an i64: a number beyond it, beyond any room's
            // numbering, is sent as the largest it reads (as it would read it anyway).
            last_seq: self.last_seq.map(|seq| i64::try_from(seq).unwrap_or(i64::MAX)),
            epoch: self.epoch.clone(),
        }
    }
}

/// An `end_point` refusal in words, with the likely cause of the common one.
fn refusal(url: &str, status: u16, code: i64, reason: &str) -> String {
    let hint = if code == 1003 {
        " (the token is signed with auth.jwt_secret of this command's config: is it the broker's? see --config)"
    } else {
        ""
    };
    format!("{url} refused with HTTP {status}, error_code {code}: {reason}{hint}")
}

/// Opens the WebSocket at `end_point`, offering permessage-deflate (docs/protocol.md 2.8: room
/// events come compressed, `inflating_io` reads them); a refused upgrade other than 503
/// (draining) is fatal.
async fn connect(end_point: &str, query: &str) -> Result<Ws, Ended> {
    let url = format!("{end_point}?{query}");
    let attempt = tokio::time::timeout(STEP_TIMEOUT, inflating_io::connect(&url))
        .await
        .map_err(|_| lost(format!("{end_point}: no answer within {} s", STEP_TIMEOUT.as_secs())))?;
    match attempt {
        Ok((ws, _, agreed)) => {
            if !agreed {
                eprintln!("listen: {end_point} does not compress (client.compression off)");
            }
            Ok(ws)
        }
        Err(tungstenite::Error::Http(response)) if response.status().is_client_error() => {
            let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            Err(Ended::Fatal(format!("{end_point} refused the connection: HTTP {} {body}", response.status())))
        }
        Err(e) => Err(lost(format!("cannot connect to {end_point}: {e}"))),
    }
}

/// Waits for `connected`: its `online_token` and `ping_interval`.
async fn connected(stream: &mut SplitStream<Ws>) -> Result<(String, Option<u64>), Ended> {
    let first = tokio::time::timeout(STEP_TIMEOUT, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => return Ok(text),
                Some(Ok(Message::Close(close))) => return Err(lost(format!("closed before connected: {close:?}"))),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(lost(format!("connection lost before connected: {e}"))),
                None => return Err(lost("connection lost before connected")),
            }
        }
    })
    .await
    .map_err(|_| lost(format!("no connected frame within {} s", STEP_TIMEOUT.as_secs())))??;
    match BrokerFrame::parse(&first) {
        Ok(BrokerFrame::Connected { online_token, ping_interval }) => Ok((online_token, ping_interval)),
        _ => Err(lost(format!("expected connected, got {first}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(last_seq: Option<u64>, epoch: Option<&str>) -> Position {
        Position { last_seq, epoch: epoch.map(str::to_string), own_enter: None }
    }

    #[test]
    fn a_fresh_entry_starts_at_its_own_enter_room() {
        let mut p = at(None, None);
        p.on_ack(5, "e1".into());
        assert_eq!((p.last_seq, p.epoch.as_deref()), (Some(5), Some("e1")));
        p.on_event(6);
        p.on_event(7);
        assert_eq!(p.last_seq, Some(7));
    }

    #[test]
    fn a_recovery_keeps_its_position_until_the_replay_reaches_the_own_enter_room() {
        let mut p = at(Some(7), Some("e1"));
        p.on_ack(11, "e1".into());
        assert_eq!(p.last_seq, Some(7), "the replay of 8..=10 has not come yet");
        p.on_event(8);
        p.on_event(9);
        assert_eq!(p.last_seq, Some(9));
        p.on_event(10);
        assert_eq!(p.last_seq, Some(11), "seq 11 is this listener's own enter_room, never received");
        p.on_event(12);
        assert_eq!(p.last_seq, Some(12));
    }

    #[test]
    fn nothing_missed_or_another_epoch_moves_straight_to_the_ack() {
        let mut p = at(Some(7), Some("e1"));
        p.on_ack(8, "e1".into());
        assert_eq!(p.last_seq, Some(8));
        let mut p = at(Some(700), Some("e1"));
        p.on_ack(3, "e2".into());
        assert_eq!((p.last_seq, p.epoch.as_deref()), (Some(3), Some("e2")), "another epoch replays nothing");
        let mut p = at(Some(700), None);
        p.on_ack(3, "e2".into());
        assert_eq!(p.last_seq, Some(3), "a last_seq beyond the room's newest replays nothing");
    }

    #[test]
    fn a_server_numbering_at_the_end_of_u64_moves_the_position_without_overflow() {
        let mut p = at(Some(u64::MAX), Some("e1"));
        p.on_ack(u64::MAX, "e1".into());
        assert_eq!(p.last_seq, Some(u64::MAX));
        p.on_event(u64::MAX);
        assert_eq!(p.last_seq, Some(u64::MAX));
    }

    #[test]
    fn a_fresh_entry_names_no_position_and_a_recovery_names_both() {
        let fresh = Asked { last_seq: None, epoch: None }.entry("gs1");
        assert!(
            matches!(fresh, ClientRequest::EnterRoom { last_seq: None, epoch: None, ref channel_name } if channel_name == "gs1")
        );
        let back = Asked { last_seq: Some(7), epoch: Some("e1".into()) }.entry("gs1");
        assert!(matches!(back, ClientRequest::EnterRoom { last_seq: Some(7), epoch: Some(ref e), .. } if e == "e1"));
        let far = Asked { last_seq: Some(u64::MAX), epoch: None }.entry("gs1");
        assert!(matches!(far, ClientRequest::EnterRoom { last_seq: Some(i64::MAX), .. }));
    }

    #[test]
    fn the_wait_is_what_the_broker_said_else_the_back_off_with_jitter() {
        let told = Duration::from_millis(1234);
        assert_eq!(reconnect_wait(Some(told), BACKOFF_MAX), told);
        let waits: Vec<Duration> = (0..200).map(|_| reconnect_wait(None, Duration::from_secs(4))).collect();
        assert!(waits.iter().all(|w| (Duration::from_secs(2)..=Duration::from_secs(4)).contains(w)), "{waits:?}");
        assert!(waits.iter().any(|w| *w != waits[0]), "jittered: {waits:?}");
    }
}
