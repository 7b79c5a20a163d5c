//! `ClientSession`: one app client WebSocket (docs/protocol.md section 2).
//!
//! The HTTP layer has already checked the JWT; the session greets with `connected` and a fresh
//! `online_token`, checks every frame (the rate limit, then the pure [`check_frame`]: envelope
//! `online_token` 1003, `timestamp` 1010, `sign` 1002, then the action: 1009 / 1001), and
//! carries the actions to its room. A room is found through the registry once, on entering.
//!
//! Room events arrive through the room's fan-out ([`Feed`]) as already-serialised bundles and
//! are written as they are (one frame per event, or the bundle's JSON array with `batch=1`),
//! the frames' bytes shared with every other member. The socket is driven by
//! [`crate::clients::ws_conn`] from inside this actor: the session takes the next bundles from its feed
//! only when its connection has room for them, so a burst waits in the room, held once. If
//! it falls more than `client.send_queue_len` events behind, or its socket takes nothing for
//! `client.write_timeout_ms`, it is too slow: closed with 1013 and counted (section 2.3).

use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_http::ws::{CloseCode, CloseReason};
use log::{debug, info, warn};

use crate::clients::sessions::{Kick, MoveOut, SessionClosed, SessionIndex, SessionOpened, SetCurrentRoom};
use crate::clients::ws_conn::{Driven, Driver, Handover, Incoming, WhileReading, WsConn};
use crate::config::ClientConfig;
use crate::metrics::{Kind, Metrics};
use crate::protocol::client::{AckDetail, ClientRequest, Direct, Envelope, ErrorCode, Profile};
use crate::protocol::deflate::Agreed;
use crate::protocol::{clock, lenient, now_ms, sign};
use crate::rate::TokenBucket;
use crate::registry::{Registry, RoomFor};
use crate::room::{
    json_array, Action, ActionDone, Bundle, Feed, Join, JoinRequest, Joined, Leave, LeaveReason, MemberAction, Refused,
    RoomEvent, RoomHandle, SessionId, Taken, ToMember,
};
use crate::ws_frames::Frame;

/// What the HTTP layer learnt at the upgrade.
pub struct ClientHello {
    pub profile: Profile,
    pub sid: String,
    pub batch: bool,
    pub peer: String,
    /// permessage-deflate as agreed at the upgrade (docs/protocol.md 2.8), if it was.
    pub deflate: Option<Agreed>,
}

/// The room this session is in: only the two recipients it uses (each recipient of a
/// `RoomHandle` costs an allocation per holder, and a big room has thousands of holders).
struct CurrentRoom {
    channel_name: String,
    act: Recipient<MemberAction>,
    leave: Recipient<Leave>,
    /// The room's events for this member; `None` once the room stopped (the session lives on).
    events: Option<Feed>,
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
    conn: WsConn,
    bucket: TokenBucket,
    /// When the last 1006 was sent: a flood gets one per second, not one per frame.
    last_rate_error: Option<Instant>,
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

/// The checks of docs/protocol.md 2.3 after the rate limit, in order: JSON (1001), `online_token`
/// (1003), `timestamp` (1010), `sign` (1002), the action (1009), its fields (1001).
pub fn check_frame(text: &str, online_token: &str, config: &ClientConfig, now_ms: i64) -> Result<Checked, Refusal> {
    let envelope: Envelope = serde_json::from_str(text)
        .map_err(|e| Refusal::new("", ErrorCode::BadParameters, &format!("malformed frame: {e}")))?;
    let action = envelope.action.as_str();
    if !envelope.online_token.as_deref().is_some_and(|given| sign::matches(given, online_token)) {
        return Err(Refusal::new(action, ErrorCode::TokenInvalid, "online_token invalid"));
    }
    let timestamp = lenient::text_of(&envelope.timestamp).unwrap_or_default();
    let in_window = timestamp.parse::<i64>().is_ok_and(|ts| clock::within(now_ms, ts, config.max_skew_ms));
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
        handover: Handover,
    ) -> Self {
        let bucket = TokenBucket::new(config.rate_per_s);
        let conn = WsConn::new(handover, config.max_frame_bytes, hello.deflate);
        Self {
            id: rand::random(),
            hello,
            online_token: sign::random_token(),
            config,
            registry,
            sessions,
            metrics,
            room: None,
            conn,
            bucket,
            last_rate_error: None,
            close_reason: None,
        }
    }

    fn user_id(&self) -> &str {
        &self.hello.profile.user_id
    }

    /// A frame for this session alone (answers, pongs): never compressed, mostly small.
    fn send_direct(&mut self, frame: &Direct) {
        let json = frame.to_json();
        self.write(crate::room::text_frame(json.as_bytes()), json.len(), false);
    }

    /// Queues one frame of a message of `payload` bytes.
    fn write(&mut self, frame: bytes::Bytes, payload: usize, compressed: bool) {
        self.metrics.client_bytes(frame.len(), payload, compressed);
        self.conn.send(frame);
        self.metrics.frames_out(Kind::Client, 1);
    }

    /// Queues one room event, compressed once per room when this client accepted it.
    fn write_event(&mut self, event: &RoomEvent) {
        let (frame, compressed) = event.frame_for(self.conn.deflates(), self.config.compression_min_bytes);
        self.write(frame.clone(), event.json.len(), compressed);
    }

    /// Queues a JSON array of events made for this session alone (a replay, or a bundle
    /// without its own `enter_room`).
    fn write_array<'a>(&mut self, events: impl Iterator<Item = &'a RoomEvent> + Clone) {
        let array = json_array(events);
        if self.conn.deflates() && array.len() >= self.config.compression_min_bytes {
            self.write(crate::room::events::compressed_frame(array.as_bytes()), array.len(), true);
        } else {
            self.write(crate::room::text_frame(array.as_bytes()), array.len(), false);
        }
    }

    /// Too slow (docs/protocol.md 2.3): counted, its room left at once, closed with 1013 as soon as
    /// its socket takes the close frame (what waited unsent is dropped: it reconnects and
    /// recovers with `last_seq`).
    fn too_slow(&mut self, ctx: &mut Context<Self>, why: &str) {
        if !self.conn.is_open() {
            return;
        }
        warn!(
            "client user_id {}: too slow in {} ({why}), disconnecting",
            self.user_id(),
            self.room.as_ref().map_or("", |r| r.channel_name.as_str())
        );
        self.metrics.slow_clients_disconnected.inc();
        self.close_reason.get_or_insert("too slow");
        self.leave(LeaveReason::Disconnect, ctx);
        let description = Some("too slow, reconnect with last_seq".to_string());
        self.conn.close_abandoning(Some(CloseReason { code: CloseCode::Again, description }));
    }

    /// Further behind its room than `client.send_queue_len` events.
    fn too_far_behind(&self) -> bool {
        self.room.as_ref().and_then(|r| r.events.as_ref()).is_some_and(Feed::is_too_far_behind)
    }

    fn ack(&mut self, action: &str, detail: AckDetail) {
        self.send_direct(&Direct::Ack { for_action: action, error_code: 0, error_reason: "", detail });
    }

    fn refuse(&mut self, refusal: Refusal) {
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
        self.send_direct(&Direct::Error {
            for_action: &refusal.action,
            error_code: refusal.code.code(),
            error_reason: &refusal.reason,
        });
    }

    /// Sends a close frame and leaves the room at once; the connection ends once the frame is
    /// written (`ws_conn`).
    fn close(&mut self, ctx: &mut Context<Self>, code: CloseCode, why: &'static str) {
        self.close_reason.get_or_insert(why);
        self.leave(LeaveReason::Disconnect, ctx);
        self.conn.close(Some(CloseReason { code, description: Some(why.to_string()) }));
    }

    /// A text frame that arrived at `arrived` (held while the session waited, it counts
    /// against the rate limit when it came, not when it is taken).
    fn on_text(&mut self, text: &str, arrived: Instant, ctx: &mut Context<Self>) {
        self.metrics.frame_in(Kind::Client);
        let checked = if self.bucket.take_at(arrived) {
            check_frame(text, &self.online_token, &self.config, now_ms())
        } else {
            Err(Refusal::new("", ErrorCode::RateLimited, "too many frames, slow down"))
        };
        match checked {
            Ok(checked) => self.act(checked, ctx),
            Err(refusal) => self.refuse(refusal),
        }
    }

    fn act(&mut self, Checked { action, request }: Checked, ctx: &mut Context<Self>) {
        let refuse = |code, reason: &str| Refusal { action: action.clone(), code, reason: reason.to_string() };
        // Seed 001's reports carry no channel_name: absent means the room this connection is in.
        let here = |channel_name: String, room: &Option<CurrentRoom>| match room {
            Some(room) if channel_name.is_empty() => room.channel_name.clone(),
            _ => channel_name,
        };
        match request {
            ClientRequest::Ping => self.send_direct(&Direct::Pong { server_time: now_ms() }),
            ClientRequest::EnterRoom { channel_name, last_seq, epoch } => {
                if channel_name.is_empty() {
                    return self.refuse(refuse(ErrorCode::BadParameters, "channel_name is empty"));
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
                    return self.ack(&action, AckDetail::default());
                }
                let channel_name = here(channel_name, &self.room);
                if let Err(code) = self.in_room(&channel_name) {
                    return self.refuse(refuse(code, "not in that room"));
                }
                self.leave(LeaveReason::Exit, ctx);
                self.ack(&action, AckDetail::default());
            }
            ClientRequest::SendTopicMsg { channel_name, content } => {
                if content.is_empty() || content.chars().count() > self.config.max_content_chars {
                    let reason = format!("content must be 1 to {} characters", self.config.max_content_chars);
                    return self.refuse(refuse(ErrorCode::BadParameters, &reason));
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
    /// the answer so that acks keep the order of the client's frames (its connection reads on
    /// meanwhile: [`WhileReading`]).
    fn room_action(&mut self, action: String, channel_name: &str, what: Action, ctx: &mut Context<Self>) {
        let room = match self.in_room(channel_name) {
            Ok(current) => current.act.clone(),
            Err(code) => {
                let reason = format!("not in room {channel_name:?}");
                return self.refuse(Refusal { action, code, reason });
            }
        };
        let msg = MemberAction { session: self.id, action: what };
        ctx.wait(WhileReading::new(room.send(msg).into_actor(self).map(move |answer, act, _ctx| match answer {
            Ok(Ok(ActionDone { seq, room_seat })) => {
                act.ack(&action, AckDetail { seq, room_seat, ..Default::default() })
            }
            Ok(Err(Refused { code, reason })) => act.refuse(Refusal { action, code, reason: reason.to_string() }),
            Err(_) => {
                act.refuse(Refusal { action, code: ErrorCode::Unavailable, reason: "room is gone, retry".into() })
            }
        })));
    }

    /// Leaves the current room, if any: stops reading its events and tells it and the registry.
    fn leave(&mut self, reason: LeaveReason, _ctx: &mut Context<Self>) {
        if let Some(room) = self.room.take() {
            // do_send: a leave must not be lost to a full mailbox (the seat would stay taken).
            room.leave.do_send(Leave { session: self.id, reason });
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
        ctx: &mut Context<Self>,
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
        // Waited for, as a report's answer is (the ack before the room's events); the
        // connection reads on meanwhile ([`WhileReading`]).
        ctx.wait(WhileReading::new(fut.into_actor(self).map(move |answer, act, _ctx| match answer {
            Some((room, Ok(joined))) => act.joined(action, channel_name, room, joined),
            Some((_, Err(Refused { code, reason }))) => {
                act.refuse(Refusal { action, code, reason: reason.to_string() })
            }
            None => {
                act.refuse(Refusal { action, code: ErrorCode::Unavailable, reason: "room unavailable, retry".into() })
            }
        })));
    }

    fn joined(&mut self, action: String, channel_name: String, room: RoomHandle, joined: Joined) {
        let Joined { events, snapshot, own_seq, replay, recovered } = joined;
        info!("client user_id {} entered {} (seq {}, epoch {})", self.user_id(), channel_name, own_seq, snapshot.epoch);
        let epoch = Some(snapshot.epoch.clone());
        self.ack(
            &action,
            AckDetail { room: Some(snapshot), last_seq: Some(own_seq), epoch, recovered, ..Default::default() },
        );
        if !replay.is_empty() {
            debug!("client user_id {}: replaying {} events of {}", self.user_id(), replay.len(), channel_name);
            if self.hello.batch {
                self.write_array(replay.iter());
            } else {
                for event in &replay {
                    self.write_event(event);
                }
            }
        }
        let events = Some(events);
        self.sessions.do_send(SetCurrentRoom {
            user_id: self.user_id().to_string(),
            session: self.id,
            channel_name: Some(channel_name.clone()),
        });
        let RoomHandle { act, leave, .. } = room;
        self.room = Some(CurrentRoom { channel_name, act, leave, events });
    }

    /// Writes one bundle of room events, skipping the ones meant for everybody but us.
    fn write_bundle(&mut self, bundle: &Bundle) {
        let id = self.id;
        let mine = |e: &&RoomEvent| e.exclude != Some(id);
        if self.hello.batch {
            if bundle.events.iter().all(|e| e.exclude != Some(self.id)) {
                let (frame, compressed) =
                    bundle.array_frame_for(self.conn.deflates(), self.config.compression_min_bytes);
                self.write(frame.clone(), bundle.array_len(), compressed);
            } else if bundle.events.iter().any(|e| e.exclude != Some(self.id)) {
                self.write_array(bundle.events.iter().filter(mine));
            }
        } else {
            for event in bundle.events.iter().filter(mine) {
                self.write_event(event);
            }
        }
    }
}

impl Actor for ClientSession {
    type Context = Context<Self>;

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
        let online_token = self.online_token.clone();
        let connected = Direct::Connected {
            online_token: &online_token,
            ping_interval: self.config.ping_interval_s,
            server_time: now_ms(),
        };
        self.send_direct(&connected);
        let idle = Duration::from_millis(self.config.idle_timeout_ms);
        let write_timeout = Duration::from_millis(self.config.write_timeout_ms);
        let tick = Duration::from_millis(500).min(idle).min(write_timeout);
        ctx.run_interval(tick, move |act, ctx| {
            if act.conn.closed_longer_than(write_timeout) {
                // Its close frame could not leave within the write timeout.
                act.conn.drop_now();
                ctx.stop();
            } else if !act.conn.is_open() {
                // Closing: the close frame is on its way.
            } else if act.conn.write_stalled_for() >= write_timeout {
                act.too_slow(ctx, "its socket took nothing for client.write_timeout_ms");
            } else if act.too_far_behind() {
                act.too_slow(ctx, "it fell more than client.send_queue_len events behind");
            } else if act.conn.last_input().elapsed() >= idle {
                act.close(ctx, CloseCode::Normal, "idle timeout");
            }
        });
        ctx.spawn(Driver);
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

impl Driven for ClientSession {
    fn conn(&mut self) -> &mut WsConn {
        &mut self.conn
    }

    fn on_incoming(&mut self, incoming: Incoming, arrived: Instant, ctx: &mut Context<Self>) {
        match incoming {
            Incoming::Frame(Frame::Text(text)) => self.on_text(&text, arrived, ctx),
            Incoming::Frame(Frame::Ping(payload)) => self.conn.pong(&payload),
            Incoming::Frame(Frame::Close(_)) => self.close(ctx, CloseCode::Normal, "closed by client"),
            Incoming::TooBig => {
                let max = self.config.max_frame_bytes;
                let reason = format!("frame larger than {max} bytes");
                self.refuse(Refusal { action: String::new(), code: ErrorCode::FrameTooLarge, reason });
                self.close(ctx, CloseCode::Size, "frame too large");
            }
            Incoming::Binary => self.close(ctx, CloseCode::Unsupported, "binary frames are not supported"),
            Incoming::Protocol(e) => {
                debug!("client user_id {}: protocol error {e}", self.user_id());
                self.close(ctx, CloseCode::Protocol, "protocol error");
            }
        }
    }

    /// Takes bundles from the room's fan-out while the connection has room for them.
    fn refill(&mut self, cx: &mut TaskContext<'_>, ctx: &mut Context<Self>) -> bool {
        let mut queued = false;
        while self.conn.wants_more() {
            let Some(feed) = self.room.as_mut().and_then(|r| r.events.as_mut()) else { break };
            match feed.poll_take(cx) {
                Poll::Pending => break,
                Poll::Ready(Taken::Bundle(bundle)) => {
                    self.write_bundle(&bundle);
                    queued = true;
                }
                Poll::Ready(Taken::Lagged) => {
                    self.too_slow(ctx, "it fell more than client.send_queue_len events behind");
                    return true;
                }
                // The room stopped: the session lives on.
                Poll::Ready(Taken::Ended) => {
                    if let Some(room) = self.room.as_mut() {
                        room.events = None;
                    }
                }
            }
        }
        queued
    }

    fn on_lost(&mut self, why: &'static str, ctx: &mut Context<Self>) {
        self.close_reason.get_or_insert(why);
        self.leave(LeaveReason::Disconnect, ctx);
    }
}

impl Handler<ToMember> for ClientSession {
    type Result = ();

    fn handle(&mut self, msg: ToMember, _ctx: &mut Self::Context) {
        let ToMember::Frame(json) = msg;
        self.write(crate::room::text_frame(json.as_bytes()), json.len(), false);
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
        let Kick { reason, retry_after_ms } = msg;
        info!("client user_id {}: kicked ({})", self.user_id(), reason.as_str());
        self.send_direct(&Direct::Kicked { reason, retry_after_ms });
        self.close(ctx, CloseCode::from(reason.close_code()), reason.as_str());
    }
}
