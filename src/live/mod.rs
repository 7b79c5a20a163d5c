//! The live-room list (docs/protocol.md 3, seed 002): rooms that anchors create, take live and
//! close; the list viewers browse; the operator's ban and notice; the cloud's stream events.
//!
//! [`LiveRooms`] is the service the HTTP handlers call. It owns no state of its own: rooms live
//! in the [`Store`](crate::store::Store), the rules in [`status`] (status machine) and
//! [`urls`] (signed stream URLs). After each change it tells the actor system: a status change
//! goes to the registry (`SetLiveStatus`: members get `room_status`, and `closed`/`banned`
//! make their reports answer 1007), a `/game` link to the registry (`LinkGameSess`), a ban to
//! the cloud agent ([`ForbidPush`]: cut the push).
//!
//! Beside it run two actors: [`hooks::RoomHooks`] (viewers from real joins and leaves, and a
//! starting room's status)
//! and `crate::cloud::CloudAgent` (zombie poller, forbid-push), which calls this service and
//! takes its [`ForbidPush`]; the application wires the two (`crate::start`).

pub mod hooks;
pub mod status;
pub mod urls;
pub mod zombies;

use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Context, Recipient};
use actors::protocol::channel::room_id_of;
use actors::protocol::now_ms;
use actors::registry::{LinkGameSess, Registry, RoomFor, SetLiveStatus};
use actors::room::Notice;
use log::{info, warn};

use crate::config::LiveConfig;
use crate::store::{Guarded, LivePage, LiveRoom, LiveStatus, NewLiveRoom, Store, StoreError};
use hooks::RoomHooks;
use status::{IllegalMove, Move};

/// The largest `page_size` of the list.
pub const MAX_PAGE_SIZE: u64 = 100;
/// Limits on what an owner may write into a room (characters).
pub const MAX_TITLE_CHARS: usize = 100;
pub const MAX_FIELD_CHARS: usize = 1000;
/// Limit of a `game_id` / `game_sess` (characters).
pub const MAX_GAME_CHARS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("{0}")]
    BadRequest(String),
    #[error("room {0} not found")]
    NotFound(u64),
    #[error("only the owner of room {0} may do that")]
    NotOwner(u64),
    #[error(transparent)]
    Illegal(#[from] IllegalMove),
    #[error("room {room_id} is {status}: {what}")]
    WrongStatus { room_id: u64, status: LiveStatus, what: &'static str },
    #[error("game_sess {game_sess:?} is linked to room {room_id}, which is still open")]
    GameSessTaken { game_sess: String, room_id: u64 },
    #[error("room {0} changed while we changed it; try again")]
    Busy(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who asks for a status move: an owner must own the room; the cloud and operators need not.
#[derive(Debug, Clone, Copy)]
pub enum By<'a> {
    Owner(&'a str),
    Cloud,
    Operator,
}

/// What an owner gives to create a room.
#[derive(Debug, Clone)]
pub struct CreateRoom {
    pub title: String,
    pub location: String,
    pub cover_url: String,
}

/// An operator notice (section 3 admin `notice`).
#[derive(Debug, Clone)]
pub struct RoomNotice {
    pub content: String,
    pub expire_time: i64,
    pub client_url: String,
}

/// What a cloud stream callback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEventOutcome {
    Applied(LiveStatus),
    /// Not ours, not a status event, or not a move the room's status allows: nothing to do.
    Ignored(String),
}

/// The live-room service. Cheap to clone; every clone works on the same store and actors.
#[derive(Clone)]
pub struct LiveRooms {
    store: Store,
    config: Arc<LiveConfig>,
    registry: Addr<Registry>,
    /// Where a new `/game` link goes: the registry, or with shared rooms every node's.
    links: Recipient<LinkGameSess>,
    /// The cloud agent: cuts a banned room's push.
    forbid: Recipient<ForbidPush>,
}

/// Cut the push of a banned room's stream (the cloud agent's job).
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct ForbidPush {
    pub stream_id: String,
}

/// Starts the room hooks (on the context whose address the registry was given as its
/// membership hook), reloads the `game_sess` links, and answers the service; a banned room's
/// push is cut through `forbid`.
pub fn start(
    config: &LiveConfig,
    store: Store,
    registry: Addr<Registry>,
    links: Recipient<LinkGameSess>,
    hooks: Context<RoomHooks>,
    forbid: Recipient<ForbidPush>,
) -> LiveRooms {
    hooks.run(RoomHooks::new(store.clone()));
    let live = LiveRooms { store, config: Arc::new(config.clone()), registry, links, forbid };
    let reload = live.clone();
    actix_rt::spawn(async move { reload.reload_links().await });
    live
}

/// Whether `text` holds something besides spaces, tabs and line breaks (a title does): the
/// same rule as the OpenAPI document's pattern `[^ \t\n\r]`, so that the two never disagree.
pub fn has_text(text: &str) -> bool {
    text.chars().any(|c| !matches!(c, ' ' | '\t' | '\n' | '\r'))
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), LiveError> {
    if value.chars().count() > max {
        return Err(LiveError::BadRequest(format!("{field} is longer than {max} characters")));
    }
    Ok(())
}

impl LiveRooms {
    pub fn config(&self) -> &LiveConfig {
        &self.config
    }

    pub fn store_kind(&self) -> &'static str {
        self.store.kind()
    }

    /// Re-links every stored `game_sess` to its room's channel (start-up). Retries until the
    /// store answers: a broker started while Redis is down links once Redis is back.
    async fn reload_links(&self) {
        let mut pause = Duration::from_millis(500);
        loop {
            match self.store.game_links().await {
                Ok(links) => {
                    if !links.is_empty() {
                        info!("live rooms: reloaded {} links of game sessions to rooms", links.len());
                    }
                    for (game_sess, room_id) in links {
                        self.registry.do_send(LinkGameSess { game_sess, channel_name: room_id.to_string() });
                    }
                    return;
                }
                Err(e) => {
                    warn!("live rooms: cannot reload the links of game sessions yet ({e}); retrying in {pause:?}");
                    actix_rt::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    pub async fn create(&self, owner_id: &str, req: CreateRoom) -> Result<(LiveRoom, String), LiveError> {
        if !has_text(&req.title) {
            return Err(LiveError::BadRequest("title is required".into()));
        }
        check_len("title", &req.title, MAX_TITLE_CHARS)?;
        check_len("location", &req.location, MAX_FIELD_CHARS)?;
        check_len("cover_url", &req.cover_url, MAX_FIELD_CHARS)?;
        let new = NewLiveRoom {
            owner_id: owner_id.to_string(),
            title: req.title,
            location: req.location,
            cover_url: req.cover_url,
            bizid: self.config.bizid.clone(),
            created_at: now_ms(),
        };
        let room = self.store.create_room(new).await?;
        let push_url = urls::push_url(&self.config, &room.stream_id, now_s());
        info!("live rooms: user_id {owner_id} created room {} (stream {})", room.room_id, room.stream_id);
        Ok((room, push_url))
    }

    pub async fn get(&self, room_id: u64) -> Result<LiveRoom, LiveError> {
        self.store.room(room_id).await?.ok_or(LiveError::NotFound(room_id))
    }

    /// Moves a room by `mv` on behalf of `by`: owner check, status machine, then the store's
    /// compare-and-set (judged again if the room changed in between), then the actors.
    pub async fn change(&self, room_id: u64, mv: Move, by: By<'_>) -> Result<LiveRoom, LiveError> {
        for _ in 0..3 {
            let room = self.get(room_id).await?;
            if let By::Owner(user_id) = by {
                if room.owner_id != user_id {
                    return Err(LiveError::NotOwner(room_id));
                }
            }
            let to = status::next(room_id, room.status, mv)?;
            match self.store.set_status(room_id, room.status, to, now_ms()).await? {
                Guarded::Done(room) => {
                    info!("live rooms: room {room_id} {} -> {} ({by:?})", room_status_word(mv), room.status);
                    self.after_status_change(&room).await;
                    return Ok(room);
                }
                Guarded::NotFound => return Err(LiveError::NotFound(room_id)),
                Guarded::Was(_) => continue,
            }
        }
        Err(LiveError::Busy(room_id))
    }

    async fn after_status_change(&self, room: &LiveRoom) {
        self.registry.do_send(SetLiveStatus { channel_name: room.channel_name(), status: room.status });
        if room.status.is_ended() && !room.game_sess.is_empty() {
            // The registry keeps routing the session here for this process's life (BIGO's own
            // status 3 should still reach these members); only the reload at start-up forgets it.
            if let Err(e) = self.store.unlink_game(room.game_sess.clone(), room.room_id).await {
                warn!("live rooms: room {} ended but its link to a game session stays: {e}", room.room_id);
            }
        }
        if room.status == LiveStatus::Banned {
            self.forbid.do_send(ForbidPush { stream_id: room.stream_id.clone() });
        }
    }

    /// `POST /iapi/rooms/{room_id}/game`: the danmu of `game_sess` go to this room's channel.
    pub async fn link_game(
        &self,
        room_id: u64,
        owner_id: &str,
        game_id: String,
        game_sess: String,
    ) -> Result<LiveRoom, LiveError> {
        if game_sess.is_empty() {
            return Err(LiveError::BadRequest("game_sess is required".into()));
        }
        check_len("game_sess", &game_sess, MAX_GAME_CHARS)?;
        check_len("game_id", &game_id, MAX_GAME_CHARS)?;
        let room = self.get(room_id).await?;
        if room.owner_id != owner_id {
            return Err(LiveError::NotOwner(room_id));
        }
        if room.status.is_ended() {
            return Err(LiveError::WrongStatus { room_id, status: room.status, what: "it cannot link a game" });
        }
        if let Some(other) = self.store.game_link(game_sess.clone()).await?.filter(|other| *other != room_id) {
            let open = self.store.room(other).await?.is_some_and(|r| !r.status.is_ended());
            if open {
                return Err(LiveError::GameSessTaken { game_sess, room_id: other });
            }
        }
        self.store.link_game(room_id, game_id, game_sess.clone()).await?;
        info!("live rooms: room {room_id} linked game_sess {game_sess}");
        self.links.do_send(LinkGameSess { game_sess, channel_name: room.channel_name() });
        self.get(room_id).await
    }

    /// `POST /iapi/rooms/{room_id}/like`: +1 on a live room.
    pub async fn like(&self, room_id: u64) -> Result<LiveRoom, LiveError> {
        match self.store.like(room_id).await? {
            Guarded::Done(_) => self.get(room_id).await,
            Guarded::NotFound => Err(LiveError::NotFound(room_id)),
            Guarded::Was(status) => Err(LiveError::WrongStatus { room_id, status, what: "only live rooms take likes" }),
        }
    }

    /// `GET /iapi/rooms`: page `page` (from 1) of the live list, `page_size` rooms a page.
    pub async fn list(&self, page: u64, page_size: u64) -> Result<LivePage, LiveError> {
        if page == 0 {
            return Err(LiveError::BadRequest("page starts at 1".into()));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(LiveError::BadRequest(format!("page_size must be 1 to {MAX_PAGE_SIZE}")));
        }
        Ok(self.store.live_page((page - 1).saturating_mul(page_size), page_size).await?)
    }

    /// Every live room (the zombie poller), read a page at a time.
    pub async fn live_rooms(&self) -> Result<Vec<LiveRoom>, LiveError> {
        const CHUNK: u64 = 500;
        let mut rooms = Vec::new();
        loop {
            let page = self.store.live_page(rooms.len() as u64, CHUNK).await?;
            let done = (page.rooms.len() as u64) < CHUNK;
            rooms.extend(page.rooms);
            if done {
                return Ok(rooms);
            }
        }
    }

    /// Admin `notice`: broadcasts `room_notice` in the room's channel.
    pub async fn notice(&self, room_id: u64, notice: RoomNotice) -> Result<LiveRoom, LiveError> {
        if notice.content.is_empty() {
            return Err(LiveError::BadRequest("content is required".into()));
        }
        check_len("content", &notice.content, MAX_FIELD_CHARS)?;
        check_len("client_url", &notice.client_url, MAX_FIELD_CHARS)?;
        if notice.expire_time < 0 {
            return Err(LiveError::BadRequest("expire_time must not be negative".into()));
        }
        let room = self.get(room_id).await?;
        let channel_name = room.channel_name();
        let addr = self
            .registry
            .send(RoomFor { channel_name })
            .await
            .map_err(|e| LiveError::Store(StoreError::Unavailable(format!("registry: {e}"))))?;
        addr.notice.do_send(Notice {
            content: notice.content,
            expire_time: notice.expire_time,
            client_url: notice.client_url,
        });
        info!("live rooms: notice sent to room {room_id}");
        Ok(room)
    }

    /// The cloud's stream callback: `event_type` 1 push began, 0 push ended.
    pub async fn stream_event(&self, stream_id: &str, event_type: i64) -> Result<StreamEventOutcome, LiveError> {
        let ignored = |why: String| Ok(StreamEventOutcome::Ignored(why));
        let mv = match event_type {
            1 => Move::GoLive,
            0 => Move::PushEnded,
            other => return ignored(format!("event_type {other} is not a push event")),
        };
        let room_id = stream_id.strip_prefix(&format!("{}_", self.config.bizid)).and_then(room_id_of);
        let Some(room_id) = room_id else {
            return ignored(format!("stream {stream_id} is not one of our rooms"));
        };
        match self.store.room(room_id).await? {
            Some(room) if room.stream_id == stream_id => {}
            _ => return ignored(format!("stream {stream_id} has no room")),
        }
        match self.change(room_id, mv, By::Cloud).await {
            Ok(room) => Ok(StreamEventOutcome::Applied(room.status)),
            Err(LiveError::Illegal(e)) => ignored(e.to_string()),
            Err(e) => Err(e),
        }
    }

    /// The zombie poller's verdict: a live room whose stream stayed offline is closed.
    pub async fn close_zombie(&self, room_id: u64) -> Result<LiveRoom, LiveError> {
        self.change(room_id, Move::PushEnded, By::Cloud).await
    }
}

fn room_status_word(mv: Move) -> &'static str {
    match mv {
        Move::GoLive => "go live",
        Move::Close => "close",
        Move::PushEnded => "push ended",
        Move::Ban => "ban",
    }
}

/// Unix time in seconds.
pub fn now_s() -> u64 {
    u64::try_from(now_ms() / 1000).unwrap_or(0)
}
