//! `BigoSession`: one BIGO WebSocket connection (docs/protocol.md section 1).
//!
//! It logs the platform in (`platformLogin`), answers pings, closes itself after
//! `bigo.idle_timeout_ms` of silence, and hands each `dataReception` to the room that its
//! `game_sess` routes to, straight into the room's mailbox (`crate::ingress::ingest`): the pushes of one
//! connection reach the room in the order they arrived. The 200 goes out only after the room
//! has taken the push; a full room answers 503. Checks run in the order of section 1.4: token
//! (401), sign (403), data (400); they are the pure [`check_data`] and [`check_login`]. With
//! pull compensation on, every routed push also tells the registry about its `game_sess`
//! ([`GameSessSeen`]) so that the session's puller runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use log::{debug, info, warn};
use serde_json::Value;

use crate::config::{BigoAccount, BigoConfig};
use crate::ingress::ingest::{self, Offer, RouteChanged, Routes};
use crate::ingress::puller::GameSessSeen;
use crate::metrics::{Kind, Metrics};
use crate::protocol::bigo::{
    self, BigoStatus, DataReception, DataResult, ErrorResult, LoginData, LoginResult, Request, Response,
};
use crate::protocol::{bigo_client, clock, lenient, now_ms, sign};
use crate::registry::{BigoClosed, BigoOpened, CloseBigo, Registry};
use crate::room::{IngestOutcome, Push, RoomHandle, SessionId};
use crate::ws_frames::Reassembler;

pub struct BigoSession {
    id: SessionId,
    config: Arc<BigoConfig>,
    registry: Addr<Registry>,
    /// The rooms of the `game_sess`es this connection pushed for.
    routes: Routes,
    metrics: Arc<Metrics>,
    peer: String,
    access_token: Option<String>,
    account: String,
    login_failures: u32,
    last_seen: Instant,
    frames: Reassembler,
    /// Why the connection ended, for the "disconnected" log line.
    close_reason: Option<String>,
}

/// A `dataReception` refused before it reached a room: its rescode (section 1.4), the metric
/// label, and the message sent back.
#[derive(Debug, PartialEq)]
pub struct Rejection {
    pub rescode: u16,
    pub reason: &'static str,
    pub message: String,
}

impl Rejection {
    fn new(rescode: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { rescode, reason, message: message.into() }
    }
}

impl BigoSession {
    pub fn new(config: Arc<BigoConfig>, registry: Addr<Registry>, metrics: Arc<Metrics>, peer: String) -> Self {
        let frames = Reassembler::new(config.max_frame_bytes);
        Self {
            id: rand::random(),
            config,
            routes: Routes::new(registry.clone().recipient()),
            registry,
            metrics,
            peer,
            access_token: None,
            account: String::new(),
            login_failures: 0,
            last_seen: Instant::now(),
            frames,
            close_reason: None,
        }
    }

    fn respond(ctx: &mut ws::WebsocketContext<Self>, metrics: &Metrics, uri: &str, req: &RequestMeta, data: String) {
        let now = now_ms();
        let up_cost = up_cost(&req.send_time, now);
        let frame =
            Response { uri, retry_cnt: &req.retry_cnt, send_time: &req.send_time, resp_time: now, up_cost, data };
        // Plain strings and numbers: serialising cannot fail.
        ctx.text(serde_json::to_string(&frame).unwrap_or_default());
        metrics.frames_out(Kind::Bigo, 1);
    }

    fn error_resp(&self, ctx: &mut ws::WebsocketContext<Self>, req: &RequestMeta, message: &str) {
        warn!("bigo {}: errorResp: {message}", self.peer);
        self.metrics.rejected(Kind::Bigo, "bad_frame");
        let data = to_json(&ErrorResult { code: 400, message });
        Self::respond(ctx, &self.metrics, bigo::URI_ERROR, req, data);
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        self.metrics.frame_in(Kind::Bigo);
        let req: Request = match serde_json::from_str(text) {
            Ok(req) => req,
            Err(e) => return self.error_resp(ctx, &RequestMeta::default(), &format!("malformed JSON: {e}")),
        };
        let meta = RequestMeta { retry_cnt: req.retry_cnt.clone(), send_time: req.send_time.clone() };
        match req.uri.as_deref() {
            None => self.error_resp(ctx, &meta, "missing uri"),
            Some(bigo::URI_LOGIN) => self.login(&req, &meta, ctx),
            Some(bigo::URI_DATA) => self.data_reception(&req, meta, ctx),
            Some(other) => self.error_resp(ctx, &meta, &format!("unknown uri {other:?}")),
        }
    }

    fn login(&mut self, req: &Request, meta: &RequestMeta, ctx: &mut ws::WebsocketContext<Self>) {
        let outcome = check_login(&self.config, req, now_ms()).map(|account| {
            self.account = account.account.clone();
            sign::random_token()
        });
        let data = match &outcome {
            Ok(token) => to_json(&LoginResult { code: 200, access_token: Some(token), message: "" }),
            Err(message) => to_json(&LoginResult { code: 400, access_token: None, message }),
        };
        Self::respond(ctx, &self.metrics, bigo::URI_LOGIN_RESP, meta, data);
        match outcome {
            Ok(token) => {
                info!("bigo {}: account {} logged in", self.peer, self.account);
                self.access_token = Some(token);
            }
            Err(message) => {
                self.login_failures += 1;
                self.metrics.rejected(Kind::Bigo, "login_failed");
                // The account the platform named (known or not), so that an operator can
                // tell which of its accounts is misconfigured.
                let account = req
                    .data_text()
                    .and_then(|text| serde_json::from_str::<LoginData>(&text).ok())
                    .map(|data| data.account)
                    .unwrap_or_default();
                warn!(
                    "bigo {}: login failed ({message}) for account {account:?}: {}, {} failure(s)",
                    self.peer,
                    bigo_client::failed_login_check(message),
                    self.login_failures
                );
                if self.login_failures >= self.config.max_login_failures {
                    warn!("bigo {}: too many login failures, closing", self.peer);
                    self.close_reason = Some("too many login failures".into());
                    ctx.close(Some(CloseReason {
                        code: CloseCode::Policy,
                        description: Some("too many login failures".into()),
                    }));
                    ctx.stop();
                }
            }
        }
    }

    fn data_reception(&mut self, req: &Request, meta: RequestMeta, ctx: &mut ws::WebsocketContext<Self>) {
        let data_text = req.data_text();
        match check_data(&self.config, self.access_token.as_deref(), req, data_text.as_deref()) {
            Err(rejection) => {
                let field = |name| data_text.as_deref().map(|text| field_of(text, name)).unwrap_or_default();
                self.reject(ctx, &meta, &field("seqid"), &field("game_sess"), rejection);
            }
            Ok(data) => self.forward(data, meta, ctx),
        }
    }

    fn reject(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        meta: &RequestMeta,
        seqid: &str,
        game_sess: &str,
        r: Rejection,
    ) {
        warn!(
            "bigo {}: dataReception game_sess {:?} seqid {:?} rejected with {}: {}",
            self.peer, game_sess, seqid, r.rescode, r.message
        );
        self.metrics.rejected(Kind::Bigo, r.reason);
        let data = to_json(&DataResult { seqid, rescode: r.rescode, message: &r.message });
        Self::respond(ctx, &self.metrics, bigo::URI_DATA_RESP, meta, data);
    }

    /// Hands the push to its room and answers once the room has taken it (or refused it).
    /// The push enters the room's mailbox before this returns (or, on the first push of a
    /// `game_sess`, before the next frame is read), so pushes reach the room in the order
    /// they arrived on this connection.
    fn forward(&mut self, data: DataReception, meta: RequestMeta, ctx: &mut ws::WebsocketContext<Self>) {
        if self.config.pull.enabled {
            // The session's puller learns its anchors and status 3 from the pushes (section 1.5).
            self.registry.do_send(GameSessSeen {
                game_sess: data.game_sess.clone(),
                game_id: data.game_id.clone(),
                openids: data.openids().map(str::to_string).collect(),
                timestamp: data.timestamp.unwrap_or_else(now_ms),
                closed: data.status == Some(3),
            });
        }
        let push = Push {
            timestamp: data.timestamp.unwrap_or_else(now_ms),
            status: data.status.and_then(BigoStatus::from_code),
            items: data.items(),
            game_sess: data.game_sess,
            seqid: data.seqid,
        };
        match self.routes.cached(&push.game_sess) {
            Some(room) => self.offer(&room, push, meta, true, ctx),
            None => self.route_then_offer(push, meta, ctx),
        }
    }

    /// Asks for the room of an unknown `game_sess`, reading no further frame until it is known.
    fn route_then_offer(&mut self, push: Push, meta: RequestMeta, ctx: &mut ws::WebsocketContext<Self>) {
        let look_up = self.routes.look_up(&push.game_sess);
        ctx.wait(look_up.into_actor(self).map(move |room, act, ctx| match room {
            Some(room) => {
                act.routes.remember(push.game_sess.clone(), room.clone());
                act.offer(&room, push, meta, false, ctx);
            }
            None => act.answer(ctx, &meta, &push.game_sess, &push.seqid, None),
        }));
    }

    /// Puts the push into the room's mailbox now and answers BIGO when the room has taken it.
    /// A room that has stopped is routed again once (`reroute`).
    fn offer(
        &mut self,
        room: &RoomHandle,
        push: Push,
        meta: RequestMeta,
        reroute: bool,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let (game_sess, seqid) = (push.game_sess.clone(), push.seqid.clone());
        match ingest::offer(room, push) {
            Offer::Sent(taken) => {
                let taken = async move { taken.await.ok() };
                ctx.spawn(taken.into_actor(self).map(move |outcome, act, ctx| {
                    act.answer(ctx, &meta, &game_sess, &seqid, outcome);
                }));
            }
            Offer::Full => self.answer(ctx, &meta, &game_sess, &seqid, Some(IngestOutcome::Full)),
            Offer::Gone(push) if reroute => {
                self.routes.forget(&game_sess);
                self.route_then_offer(push, meta, ctx);
            }
            Offer::Gone(_) => self.answer(ctx, &meta, &game_sess, &seqid, None),
        }
    }

    /// The `dataReceptionResp` for a push a room took, refused, or never got (`None`).
    fn answer(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        meta: &RequestMeta,
        game_sess: &str,
        seqid: &str,
        outcome: Option<IngestOutcome>,
    ) {
        let (rescode, message) = match outcome {
            Some(IngestOutcome::Accepted { new_items }) => {
                debug!("bigo {}: game_sess {game_sess} seqid {seqid} taken ({new_items} new items)", self.peer);
                (200, "")
            }
            Some(IngestOutcome::DuplicateSeqid) => (200, ""),
            Some(IngestOutcome::Full) => (503, "room queue full, retry later"),
            None => (503, "room unavailable, retry later"),
        };
        if rescode != 200 {
            return self.reject(ctx, meta, seqid, game_sess, Rejection::new(rescode, "room_full", message));
        }
        let data = to_json(&DataResult { seqid, rescode, message });
        Self::respond(ctx, &self.metrics, bigo::URI_DATA_RESP, meta, data);
    }

    fn on_close_or_error(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: CloseCode, why: &str) {
        self.close_reason.get_or_insert_with(|| why.to_string());
        ctx.close(Some(CloseReason { code, description: Some(why.to_string()) }));
        ctx.stop();
    }
}

/// Section 1.1: an answer's `up_cost`, receive time (`now_ms`) − the request's `send_time`;
/// 0 when `send_time` is missing or no time at all (`clock::plausible`), as `i64::MIN` is.
pub fn up_cost(send_time: &Value, now_ms: i64) -> i64 {
    lenient::as_i64(send_time).and_then(clock::plausible).map_or(0, |sent| now_ms.saturating_sub(sent))
}

/// Section 1.2: the account a `platformLogin` logs in, or the failure message. Checks run
/// account, sign, then timestamp (docs/decisions.md, "Client frames and sessions").
pub fn check_login<'c>(config: &'c BigoConfig, req: &Request, now_ms: i64) -> Result<&'c BigoAccount, &'static str> {
    let data: LoginData = req.data_text().and_then(|text| serde_json::from_str(&text).ok()).ok_or("data unparsable")?;
    let account = config.accounts.iter().find(|a| a.account == data.account).ok_or("account not found")?;
    let expected = sign::bigo_login(&account.password, &data.timestamp, &config.platform_abbr, &account.account);
    if !sign::matches(&data.sign, &expected) {
        return Err("sign is error.");
    }
    let timestamp: i64 = data.timestamp.parse().map_err(|_| "timestamp expired")?;
    if !clock::within(now_ms, timestamp, config.login_max_skew_ms) {
        return Err("timestamp expired");
    }
    Ok(account)
}

/// Section 1.4: a `dataReception` of a connection holding `access_token` (`None`: not logged
/// in), checked in the order token (401), sign (403), data (400).
pub fn check_data(
    config: &BigoConfig,
    access_token: Option<&str>,
    req: &Request,
    data_text: Option<&str>,
) -> Result<DataReception, Rejection> {
    let token = match (access_token, req.access_token.as_deref()) {
        (None, _) => return Err(Rejection::new(401, "not_logged_in", "not logged in")),
        (Some(ours), Some(theirs)) if sign::matches(theirs, ours) => ours,
        _ => return Err(Rejection::new(401, "bad_token", "access_token invalid")),
    };
    let data_text = data_text.ok_or_else(|| Rejection::new(400, "bad_data", "missing data"))?;
    if config.verify_message_sign {
        let expected = sign::bigo_message(data_text, token, &config.platform_abbr);
        if !req.sign.as_deref().is_some_and(|given| sign::matches(given, &expected)) {
            return Err(Rejection::new(403, "bad_sign", "sign is error."));
        }
    }
    let data: DataReception = serde_json::from_str(data_text)
        .map_err(|e| Rejection::new(400, "bad_data", format!("data unparsable: {e}")))?;
    if data.seqid.is_empty() {
        return Err(Rejection::new(400, "bad_data", "missing seqid"));
    }
    if data.game_sess.is_empty() {
        return Err(Rejection::new(400, "bad_data", "missing game_sess"));
    }
    Ok(data)
}

#[derive(Default)]
struct RequestMeta {
    retry_cnt: Value,
    send_time: Value,
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A field (`seqid`, `game_sess`) of a data text that may be otherwise broken, for echoing in
/// a rejection and naming in its log line.
fn field_of(data_text: &str, name: &str) -> String {
    serde_json::from_str::<Value>(data_text)
        .ok()
        .and_then(|v| v.get(name).and_then(lenient::text_of))
        .unwrap_or_default()
}

impl Actor for BigoSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!("bigo {}: connected", self.peer);
        self.metrics.connection_opened(Kind::Bigo);
        self.registry.do_send(BigoOpened {
            session: self.id,
            close: ctx.address().recipient(),
            route_changed: ctx.address().recipient(),
        });
        let idle = Duration::from_millis(self.config.idle_timeout_ms);
        ctx.run_interval(Duration::from_millis(500).min(idle), move |act, ctx| {
            if act.last_seen.elapsed() >= idle {
                act.on_close_or_error(ctx, CloseCode::Normal, "idle timeout");
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        let why = self.close_reason.as_deref().unwrap_or("connection lost");
        info!("bigo {} account {:?}: disconnected ({why})", self.peer, self.account);
        self.metrics.connection_closed(Kind::Bigo);
        self.registry.do_send(BigoClosed { session: self.id });
    }
}

impl Handler<CloseBigo> for BigoSession {
    type Result = ();

    /// Shutdown: close with 1012 (service restart) so that BIGO reconnects, to another node,
    /// and re-sends whatever it has no 200 for.
    fn handle(&mut self, _: CloseBigo, ctx: &mut Self::Context) {
        self.on_close_or_error(ctx, CloseCode::Restart, "shutdown");
    }
}

impl Handler<RouteChanged> for BigoSession {
    type Result = ();

    fn handle(&mut self, msg: RouteChanged, _ctx: &mut Self::Context) {
        self.routes.forget(&msg.game_sess);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for BigoSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        let msg = match msg {
            Ok(msg) => msg,
            Err(ws::ProtocolError::Overflow) => return self.on_close_or_error(ctx, CloseCode::Size, "frame too big"),
            Err(e) => return self.on_close_or_error(ctx, CloseCode::Protocol, &format!("protocol error: {e}")),
        };
        match self.frames.push(msg) {
            Ok(Some(crate::ws_frames::Frame::Text(text))) => self.on_text(&text, ctx),
            Ok(Some(crate::ws_frames::Frame::Ping(payload))) => ctx.pong(&payload),
            Ok(Some(crate::ws_frames::Frame::Close(reason))) => {
                self.close_reason.get_or_insert_with(|| "closed by BIGO".into());
                ctx.close(reason);
                ctx.stop();
            }
            Ok(None) => {}
            Err(crate::ws_frames::FrameError::TooBig) => self.on_close_or_error(ctx, CloseCode::Size, "frame too big"),
            Err(crate::ws_frames::FrameError::Binary) => {
                self.on_close_or_error(ctx, CloseCode::Unsupported, "binary frames are not supported")
            }
        }
    }
}
