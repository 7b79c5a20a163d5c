//! `ClientSession`: one app client WebSocket (PROTOCOL.md section 2).
//!
//! The HTTP layer has already checked the JWT; the session greets with `connected` and a fresh
//! `online_token`, checks every frame (the rate limit, then the pure [`check_frame`]: envelope
//! `online_token` 1003, `timestamp` 1010, `sign` 1002, then the action: 1009 / 1001), and
//! carries the actions to its room. A room is found through the registry once, on entering.
//!
//! Room events arrive through the room's broadcast ring as already-serialised [`Bundle`]s and
//! are written as they are (one frame per event, or the bundle's JSON array with `batch=1`).
//! If the ring laps this session it is too slow: it closes itself with 1013 (section 2.3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use log::{debug, info, warn};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use crate::config::ClientConfig;
use crate::metrics::{Kind, Metrics};
use crate::protocol::client::{AckDetail, ClientRequest, Direct, Envelope, ErrorCode, Profile};
use crate::protocol::{lenient, now_ms, sign};
use crate::rate::TokenBucket;
use crate::registry::{Registry, RoomFor};
use crate::room::{
    json_array, Action, ActionDone, Fanout, Join, JoinRequest, Joined, Leave, LeaveReason, MemberAction, Refused,
    RoomEvent, RoomHandle, SessionId, ToMember,
};
use crate::sessions::{Kick, MoveOut, SessionClosed, SessionIndex, SessionOpened, SetCurrentRoom};
use crate::ws_frames::{Frame, FrameError, Reassembler};

/// What the HTTP layer learnt at the upgrade.
pub struct ClientHello {
    pub profile: Profile,
    pub sid: String,
    pub batch: bool,
    pub peer: String,
}

struct CurrentRoom {
    channel_name: String,
    room: RoomHandle,
    stream: SpawnHandle,
}

pub struct ClientSession {
    id: SessionId,
    hello: ClientHello,
    online_token: String,
    config: Arc<ClientConfig>,
    registry: Addr<Registry>,
    sessions: Addr<SessionIndex>,
    metrics: Arc<Metrics>,
    room: Option<CurrentRoom>,
    last_seen: Instant,
    bucket: TokenBucket,
    /// When the last 1006 was sent: a flood gets one per second, not one per frame.
    last_rate_error: Option<Instant>,
    frames: Reassembler,
    /// Why the connection ended, for the "disconnected" log line; the first reason wins.
    close_reason: Option<&'static str>,
}

/// An authentic, parsed client frame.
#[derive(Debug)]
pub struct Checked {
    pub action: String,
    pub request: ClientRequest,
}

/// A refused frame: the code and the reason sent back.
#[derive(Debug)]
pub struct Refusal {
    pub action: String,
    pub code: ErrorCode,
    pub reason: String,
}

impl Refusal {
    fn new(action: &str, code: ErrorCode, reason: &str) -> Self {
        Self { action: action.to_string(), code, reason: reason.to_string() }
    }
}

/// The checks of PROTOCOL.md 2.3 after the rate limit, in order: JSON (1001), `online_token`
/// (1003), `timestamp` (1010), `sign` (1002), the action (1009), its fields (1001).
pub fn check_frame(text: &str, online_token: &str, config: &ClientConfig, now_ms: i64) -> Result<Checked, Refusal> {
    let envelope: Envelope = serde_json::from_str(text)
        .map_err(|e| Refusal::new("", ErrorCode::BadParameters, &format!("malformed frame: {e}")))?;
    let action = envelope.action.as_str();
    if !envelope.online_token.as_deref().is_some_and(|given| sign::matches(given, online_token)) {
        return Err(Refusal::new(action, ErrorCode::TokenInvalid, "online_token invalid"));
    }
    let timestamp = lenient::text_of(&envelope.timestamp).unwrap_or_default();
    let in_window = timestamp.parse::<i64>().is_ok_and(|ts| (now_ms - ts).abs() <= config.max_skew_ms);
    if !in_window {
        return Err(Refusal::new(action, ErrorCode::TimestampOutOfWindow, "timestamp out of window"));
    }
    let sid = envelope.sid.as_deref().unwrap_or_default();
    let expected = sign::client_frame(action, online_token, sid, &timestamp);
    if !envelope.sign.as_deref().is_some_and(|given| sign::matches(given, &expected)) {
        return Err(Refusal::new(action, ErrorCode::BadSign, "sign is error"));
    }
    if !ClientRequest::ACTIONS.contains(&action) {
        return Err(Refusal::new(action, ErrorCode::UnknownAction, &format!("unknown action {action:?}")));
    }
    let request: ClientRequest = serde_json::from_str(text)
        .map_err(|e| Refusal::new(action, ErrorCode::BadParameters, &format!("bad parameters: {e}")))?;
    Ok(Checked { action: envelope.action, request })
}

impl ClientSession {
    pub fn new(
        hello: ClientHello,
        config: Arc<ClientConfig>,
        registry: Addr<Registry>,
        sessions: Addr<SessionIndex>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let bucket = TokenBucket::new(config.rate_per_s);
        let frames = Reassembler::new(config.max_frame_bytes);
        Self {
            id: rand::random(),
            hello,
            online_token: sign::random_token(),
            config,
            registry,
            sessions,
            metrics,
            room: None,
            last_seen: Instant::now(),
            bucket,
            last_rate_error: None,
            frames,
            close_reason: None,
        }
    }

    fn user_id(&self) -> &str {
        &self.hello.profile.user_id
    }

    fn send_direct(&self, ctx: &mut ws::WebsocketContext<Self>, frame: &Direct) {
        ctx.text(frame.to_json());
        self.metrics.frames_out(Kind::Client, 1);
    }

    fn ack(&self, ctx: &mut ws::WebsocketContext<Self>, action: &str, detail: AckDetail) {
        self.send_direct(ctx, &Direct::Ack { for_action: action, error_code: 0, error_reason: "", detail });
    }

    fn refuse(&mut self, ctx: &mut ws::WebsocketContext<Self>, refusal: Refusal) {
        self.metrics.rejected(Kind::Client, refusal.code.reason());
        if refusal.code == ErrorCode::RateLimited {
            let recently = self.last_rate_error.is_some_and(|t| t.elapsed() < Duration::from_secs(1));
            if recently {
                return;
            }
            self.last_rate_error = Some(Instant::now());
        }
        warn!(
            "client {} user_id {}: {} refused with {}: {}",
            self.hello.peer,
            self.user_id(),
            refusal.action,
            refusal.code.code(),
            refusal.reason
        );
        self.send_direct(
            ctx,
            &Direct::Error {
                for_action: &refusal.action,
                error_code: refusal.code.code(),
                error_reason: &refusal.reason,
            },
        );
    }

    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: CloseCode, why: &'static str) {
        self.close_reason.get_or_insert(why);
        ctx.close(Some(CloseReason { code, description: Some(why.to_string()) }));
        ctx.stop();
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        self.metrics.frame_in(Kind::Client);
        let checked = if self.bucket.take() {
            check_frame(text, &self.online_token, &self.config, now_ms())
        } else {
            Err(Refusal::new("", ErrorCode::RateLimited, "too many frames, slow down"))
        };
        match checked {
            Ok(checked) => self.act(checked, ctx),
            Err(refusal) => self.refuse(ctx, refusal),
        }
    }

    fn act(&mut self, Checked { action, request }: Checked, ctx: &mut ws::WebsocketContext<Self>) {
        let refuse = |code, reason: &str| Refusal { action: action.clone(), code, reason: reason.to_string() };
        // Seed 001's reports carry no channel_name: absent means the room this connection is in.
        let here = |channel_name: String, room: &Option<CurrentRoom>| match room {
            Some(room) if channel_name.is_empty() => room.channel_name.clone(),
            _ => channel_name,
        };
        match request {
            ClientRequest::Ping => self.send_direct(ctx, &Direct::Pong { server_time: now_ms() }),
            ClientRequest::EnterRoom { channel_name, last_seq, epoch } => {
                if channel_name.is_empty() {
                    return self.refuse(ctx, refuse(ErrorCode::BadParameters, "channel_name is empty"));
                }
                let last_seq = last_seq.map(|s| s.max(0) as u64);
                self.enter(action, channel_name, last_seq, epoch, ctx);
            }
            ClientRequest::ExitRoom { user_id, channel_name } => {
                if !user_id.is_empty() && user_id != self.user_id() {
                    // Seed 001 section 2.4: the relay acknowledgement of another user's drop.
                    info!(
                        "client user_id {} relayed the exit of user_id {} in {}",
                        self.user_id(),
                        user_id,
                        channel_name
                    );
                    return self.ack(ctx, &action, AckDetail::default());
                }
                let channel_name = here(channel_name, &self.room);
                if let Err(code) = self.in_room(&channel_name) {
                    return self.refuse(ctx, refuse(code, "not in that room"));
                }
                self.leave(LeaveReason::Exit, ctx);
                self.ack(ctx, &action, AckDetail::default());
            }
            ClientRequest::SendTopicMsg { channel_name, content } => {
                if content.is_empty() || content.chars().count() > self.config.max_content_chars {
                    let reason = format!("content must be 1 to {} characters", self.config.max_content_chars);
                    return self.refuse(ctx, refuse(ErrorCode::BadParameters, &reason));
                }
                let channel_name = here(channel_name, &self.room);
                self.room_action(action, &channel_name, Action::Say { content }, ctx);
            }
            ClientRequest::SendGift { channel_name, notify_type, gift } => {
                let channel_name = here(channel_name, &self.room);
                self.room_action(action, &channel_name, Action::Gift { notify_type, gift }, ctx);
            }
            ClientRequest::Up { channel_name, seat_id } => {
                let channel_name = here(channel_name, &self.room);
                self.room_action(action, &channel_name, Action::Up { seat_id }, ctx);
            }
            ClientRequest::Down { channel_name } => {
                let channel_name = here(channel_name, &self.room);
                self.room_action(action, &channel_name, Action::Down, ctx);
            }
            ClientRequest::HangUp { receiver_id } => {
                let channel_name = self.room.as_ref().map(|r| r.channel_name.clone()).unwrap_or_default();
                self.room_action(action, &channel_name, Action::HangUp { receiver_id }, ctx);
            }
        }
    }

    fn in_room(&self, channel_name: &str) -> Result<&CurrentRoom, ErrorCode> {
        self.room.as_ref().filter(|r| r.channel_name == channel_name).ok_or(ErrorCode::NotInRoom)
    }

    /// Sends a member action to the room and answers `ack` or `error`; the session waits for
    /// the answer so that acks keep the order of the client's frames.
    fn room_action(&mut self, action: String, channel_name: &str, what: Action, ctx: &mut ws::WebsocketContext<Self>) {
        let room = match self.in_room(channel_name) {
            Ok(current) => current.room.act.clone(),
            Err(code) => {
                let reason = format!("not in room {channel_name:?}");
                return self.refuse(ctx, Refusal { action, code, reason });
            }
        };
        let msg = MemberAction { session: self.id, action: what };
        ctx.wait(room.send(msg).into_actor(self).map(move |answer, act, ctx| match answer {
            Ok(Ok(ActionDone { seq, room_seat })) => {
                act.ack(ctx, &action, AckDetail { seq, room_seat, ..Default::default() })
            }
            Ok(Err(Refused { code, reason })) => act.refuse(ctx, Refusal { action, code, reason: reason.to_string() }),
            Err(_) => {
                act.refuse(ctx, Refusal { action, code: ErrorCode::Unavailable, reason: "room is gone, retry".into() })
            }
        }));
    }

    /// Leaves the current room, if any: stops reading its events and tells it and the registry.
    fn leave(&mut self, reason: LeaveReason, ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(room) = self.room.take() {
            ctx.cancel_future(room.stream);
            // do_send: a leave must not be lost to a full mailbox (the seat would stay taken).
            room.room.leave.do_send(Leave { session: self.id, reason });
            self.sessions.do_send(SetCurrentRoom {
                user_id: self.user_id().to_string(),
                session: self.id,
                channel_name: None,
            });
        }
    }

    fn enter(
        &mut self,
        action: String,
        channel_name: String,
        last_seq: Option<u64>,
        epoch: Option<String>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        self.leave(LeaveReason::Switch, ctx);
        let registry = self.registry.clone();
        let request = JoinRequest { session: self.id, profile: self.hello.profile.clone(), last_seq, epoch };
        let join = Join { request, addr: ctx.address().recipient() };
        let name = channel_name.clone();
        let fut = async move {
            let room = registry.send(RoomFor { channel_name: name.clone() }).await.ok()?;
            match room.join.send(join).await {
                Ok(answer) => Some((room, answer)),
                // Stopped between look-up and join: the registry starts a fresh one.
                Err(_) => None,
            }
        };
        ctx.wait(fut.into_actor(self).map(move |answer, act, ctx| match answer {
            Some((room, Ok(joined))) => act.joined(action, channel_name, room, joined, ctx),
            Some((_, Err(Refused { code, reason }))) => {
                act.refuse(ctx, Refusal { action, code, reason: reason.to_string() })
            }
            None => act.refuse(
                ctx,
                Refusal { action, code: ErrorCode::Unavailable, reason: "room unavailable, retry".into() },
            ),
        }));
    }

    fn joined(
        &mut self,
        action: String,
        channel_name: String,
        room: RoomHandle,
        joined: Joined,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let Joined { events, snapshot, own_seq, replay, recovered } = joined;
        info!("client user_id {} entered {} (seq {}, epoch {})", self.user_id(), channel_name, own_seq, snapshot.epoch);
        let epoch = Some(snapshot.epoch.clone());
        self.ack(
            ctx,
            &action,
            AckDetail { room: Some(snapshot), last_seq: Some(own_seq), epoch, recovered, ..Default::default() },
        );
        if !replay.is_empty() {
            debug!("client user_id {}: replaying {} events of {}", self.user_id(), replay.len(), channel_name);
            if self.hello.batch {
                ctx.text(json_array(replay.iter()));
                self.metrics.frames_out(Kind::Client, 1);
            } else {
                for event in &replay {
                    ctx.text(event.json.clone());
                }
                self.metrics.frames_out(Kind::Client, replay.len() as u64);
            }
        }
        let stream = ctx.add_stream(BroadcastStream::new(events));
        self.sessions.do_send(SetCurrentRoom {
            user_id: self.user_id().to_string(),
            session: self.id,
            channel_name: Some(channel_name.clone()),
        });
        self.room = Some(CurrentRoom { channel_name, room, stream });
    }

    /// Writes one bundle of room events, skipping the ones meant for everybody but us.
    fn write_bundle(&mut self, bundle: &Fanout, ctx: &mut ws::WebsocketContext<Self>) {
        let mine = |e: &&RoomEvent| e.exclude != Some(self.id);
        if self.hello.batch {
            if bundle.events.iter().all(|e| e.exclude != Some(self.id)) {
                ctx.text(bundle.array.clone());
            } else if bundle.events.iter().any(|e| e.exclude != Some(self.id)) {
                ctx.text(json_array(bundle.events.iter().filter(mine)));
            } else {
                return;
            }
            self.metrics.frames_out(Kind::Client, 1);
        } else {
            let mut n = 0;
            for event in bundle.events.iter().filter(mine) {
                ctx.text(event.json.clone());
                n += 1;
            }
            self.metrics.frames_out(Kind::Client, n);
        }
    }
}

impl Actor for ClientSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Direct messages (ptp gifts, hang_up, kicks) queue here; room events use the ring.
        ctx.set_mailbox_capacity(256);
        self.metrics.connection_opened(Kind::Client);
        info!("client {} user_id {} sid {} connected", self.hello.peer, self.user_id(), self.hello.sid);
        self.sessions.do_send(SessionOpened {
            user_id: self.user_id().to_string(),
            sid: self.hello.sid.clone(),
            session: self.id,
            kick: ctx.address().recipient(),
            move_out: ctx.address().recipient(),
        });
        let connected = Direct::Connected {
            online_token: &self.online_token,
            ping_interval: self.config.ping_interval_s,
            server_time: now_ms(),
        };
        self.send_direct(ctx, &connected);
        let idle = Duration::from_millis(self.config.idle_timeout_ms);
        ctx.run_interval(Duration::from_millis(500).min(idle), move |act, ctx| {
            if act.last_seen.elapsed() >= idle {
                act.close(ctx, CloseCode::Normal, "idle timeout");
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        let why = self.close_reason.unwrap_or("connection lost");
        info!("client {} user_id {} sid {} disconnected ({why})", self.hello.peer, self.user_id(), self.hello.sid);
        self.leave(LeaveReason::Disconnect, ctx);
        self.sessions.do_send(SessionClosed {
            user_id: self.user_id().to_string(),
            sid: self.hello.sid.clone(),
            session: self.id,
        });
        self.metrics.connection_closed(Kind::Client);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for ClientSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        let frame = match msg {
            Ok(msg) => self.frames.push(msg),
            Err(ws::ProtocolError::Overflow) => Err(FrameError::TooBig),
            Err(e) => {
                debug!("client user_id {}: protocol error {e}", self.user_id());
                return self.close(ctx, CloseCode::Protocol, "protocol error");
            }
        };
        match frame {
            Ok(Some(Frame::Text(text))) => self.on_text(&text, ctx),
            Ok(Some(Frame::Ping(payload))) => ctx.pong(&payload),
            Ok(Some(Frame::Close(_))) => self.close(ctx, CloseCode::Normal, "closed by client"),
            Ok(None) => {}
            Err(FrameError::TooBig) => {
                let max = self.config.max_frame_bytes;
                let reason = format!("frame larger than {max} bytes");
                self.refuse(ctx, Refusal { action: String::new(), code: ErrorCode::FrameTooLarge, reason });
                self.close(ctx, CloseCode::Size, "frame too large");
            }
            Err(FrameError::Binary) => self.close(ctx, CloseCode::Unsupported, "binary frames are not supported"),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl StreamHandler<Result<Fanout, BroadcastStreamRecvError>> for ClientSession {
    fn handle(&mut self, item: Result<Fanout, BroadcastStreamRecvError>, ctx: &mut Self::Context) {
        match item {
            Ok(bundle) => self.write_bundle(&bundle, ctx),
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                warn!(
                    "client user_id {}: fell {} bundles behind in {}, disconnecting (1013)",
                    self.user_id(),
                    missed,
                    self.room.as_ref().map_or("", |r| r.channel_name.as_str())
                );
                self.metrics.slow_clients_disconnected.inc();
                self.close(ctx, CloseCode::Again, "too slow, reconnect with last_seq");
            }
        }
    }

    /// The room's ring closed (the room stopped): the session lives on.
    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl Handler<ToMember> for ClientSession {
    type Result = ();

    fn handle(&mut self, msg: ToMember, ctx: &mut Self::Context) {
        let ToMember::Frame(json) = msg;
        ctx.text(json);
        self.metrics.frames_out(Kind::Client, 1);
    }
}

impl Handler<MoveOut> for ClientSession {
    type Result = ();

    /// Another connection of this user joined `channel_name`: leave our room unless it is that
    /// one (the room sends us the `exit_room` about ourselves).
    fn handle(&mut self, msg: MoveOut, ctx: &mut Self::Context) {
        if self.room.as_ref().is_some_and(|r| r.channel_name != msg.channel_name) {
            info!("client user_id {}: moved out, another connection entered {}", self.user_id(), msg.channel_name);
            self.leave(LeaveReason::Moved, ctx);
        }
    }
}

impl Handler<Kick> for ClientSession {
    type Result = ();

    fn handle(&mut self, msg: Kick, ctx: &mut Self::Context) {
        let reason = msg.reason;
        info!("client user_id {}: kicked ({})", self.user_id(), reason.as_str());
        self.send_direct(ctx, &Direct::Kicked { reason });
        self.close(ctx, CloseCode::from(reason.close_code()), reason.as_str());
    }
}
