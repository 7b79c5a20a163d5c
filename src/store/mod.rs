//! Storage of the live-room list (docs/protocol.md 3): rooms, their status, owners, stream ids, the
//! live list (newest first), the `game_sess` links, and the `likes`/`viewers` counters.
//!
//! Two real implementations sit behind [`Store`]: [`memory`] (the default, `store.kind:
//! memory`: an actor owning plain maps) and [`redis`] (`store.kind: redis`: hashes, a sorted
//! set and integer counters under `store.key_prefix`, changed by atomic commands and Lua
//! scripts). Both offer the same operations with the same meaning; the status machine and the
//! owner checks live one layer up (`crate::live`), so the stores only do atomic
//! compare-and-set.
//!
//! Dispatch is an enum, not a trait object: the set of stores is closed (two), the operations
//! are async (an `async fn` trait is not object-safe without boxing every future), and a
//! `match` keeps both implementations of each operation next to each other in one place.
//! Who talks to it: `crate::live` (the service, the viewer counter, the zombie poller).

pub mod conn;
pub mod memory;
pub mod redis;

use actix::{Actor, Addr};

use crate::config::{StoreConfig, StoreKind};

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

/// A live room's status (docs/protocol.md 3): one type for the store, the registry and the rooms;
/// the moves between them are in `crate::live::status`.
pub use actors::protocol::status::LiveStatus;

/// One room as stored. Times are Unix milliseconds; 0 means "not yet".
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRoom {
    pub room_id: u64,
    pub owner_id: String,
    pub title: String,
    pub location: String,
    pub cover_url: String,
    /// `{bizid}_{room_id}`.
    pub stream_id: String,
    pub status: LiveStatus,
    pub created_at: i64,
    pub live_at: i64,
    pub ended_at: i64,
    /// The linked BIGO session (`/game`), empty when none.
    pub game_id: String,
    pub game_sess: String,
    pub likes: i64,
    pub viewers: i64,
}

impl LiveRoom {
    /// The room's channel: its `room_id` as a string (docs/protocol.md 2.6, Channels).
    pub fn channel_name(&self) -> String {
        self.room_id.to_string()
    }
}

/// What `create_room` needs; the store assigns `room_id` and derives `stream_id`.
#[derive(Debug, Clone)]
pub struct NewLiveRoom {
    pub owner_id: String,
    pub title: String,
    pub location: String,
    pub cover_url: String,
    pub bizid: String,
    pub created_at: i64,
}

impl NewLiveRoom {
    /// The room as created under `room_id`: status `new`, stream id `{bizid}_{room_id}`.
    pub fn into_room(self, room_id: u64) -> LiveRoom {
        LiveRoom {
            room_id,
            owner_id: self.owner_id,
            title: self.title,
            location: self.location,
            cover_url: self.cover_url,
            stream_id: format!("{}_{room_id}", self.bizid),
            status: LiveStatus::New,
            created_at: self.created_at,
            live_at: 0,
            ended_at: 0,
            game_id: String::new(),
            game_sess: String::new(),
            likes: 0,
            viewers: 0,
        }
    }
}

/// The outcome of an operation guarded by the room's current status.
#[derive(Debug, Clone, PartialEq)]
pub enum Guarded<T> {
    Done(T),
    NotFound,
    /// The room's status was not the expected one: here is what it was.
    Was(LiveStatus),
}

/// One page of the live list.
#[derive(Debug, Clone)]
pub struct LivePage {
    /// Live rooms in all.
    pub total: u64,
    pub rooms: Vec<LiveRoom>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis unreachable or failing, or the memory store's actor gone.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored value we cannot read back (edited by hand?).
    #[error("store data unreadable: {0}")]
    Corrupt(String),
}

/// The live-room store, memory or Redis (see the module doc for why an enum).
#[derive(Clone)]
pub enum Store {
    Memory(Addr<MemoryStore>),
    Redis(RedisStore),
}

impl Store {
    /// Opens the store `config` names. Runs inside an actix system. Redis connects lazily: an
    /// unreachable Redis makes calls fail with [`StoreError::Unavailable`] until it is back.
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        Ok(match config.kind {
            StoreKind::Memory => Self::Memory(MemoryStore::default().start()),
            StoreKind::Redis | StoreKind::RedisCluster => {
                let target = conn::RedisTarget::of(config).expect("a Redis kind");
                Self::Redis(RedisStore::open(&target, &config.key_prefix)?)
            }
        })
    }

    /// The Redis connection of a Redis store (shared with the several-nodes parts).
    pub fn redis_connection(&self) -> Option<conn::RedisConn> {
        match self {
            Self::Memory(_) => None,
            Self::Redis(r) => Some(r.connection()),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(r) => r.kind(),
        }
    }

    /// Creates a room with status `new` and a fresh `room_id`.
    pub async fn create_room(&self, new: NewLiveRoom) -> Result<LiveRoom, StoreError> {
        match self {
            Self::Memory(m) => memory::apply(m, move |rooms| rooms.create_room(new)).await,
            Self::Redis(r) => r.create_room(new).await,
        }
    }

    pub async fn room(&self, room_id: u64) -> Result<Option<LiveRoom>, StoreError> {
        match self {
            Self::Memory(m) => memory::apply(m, move |rooms| rooms.room(room_id)).await,
            Self::Redis(r) => r.room(room_id).await,
        }
    }

    /// Atomically: if the room's status is `from`, set it to `to` (entering `live` puts the
    /// room at the head of the live list, leaving it takes it off), at time `now` (ms).
    pub async fn set_status(
        &self,
        room_id: u64,
        from: LiveStatus,
        to: LiveStatus,
        now: i64,
    ) -> Result<Guarded<LiveRoom>, StoreError> {
        match self {
            Self::Memory(m) => memory::apply(m, move |rooms| rooms.set_status(room_id, from, to, now)).await,
            Self::Redis(r) => r.set_status(room_id, from, to, now).await,
        }
    }

    /// Live rooms, newest first, `count` of them from `offset`.
    pub async fn live_page(&self, offset: u64, count: u64) -> Result<LivePage, StoreError> {
        match self {
            Self::Memory(m) => memory::apply(m, move |rooms| rooms.live_page(offset, count)).await,
            Self::Redis(r) => r.live_page(offset, count).await,
        }
    }

    /// Atomically adds one like to a `live` room; answers the new count.
    pub async fn like(&self, room_id: u64) -> Result<Guarded<i64>, StoreError> {
        match self {
            Self::Memory(m) => memory::apply(m, move |rooms| rooms.like(room_id)).await,
            Self::Redis(r) => r.like(room_id).await,
        }
    }

    /// Atomically adds `delta` to the viewers of an existing room (never below 0); answers the
    /// new count and the room's status, `None` when no such room exists.
    pub async fn add_viewers(&self, room_id: u64, delta: i64) -> Result<Option<(i64, LiveStatus)>, StoreError> {
        match self {
            Self::Memory(m) => memory::apply(m, move |rooms| rooms.add_viewers(room_id, delta)).await,
            Self::Redis(r) => r.add_viewers(room_id, delta).await,
        }
    }

    /// Records that `game_sess` (of `game_id`) belongs to the room, on the room and in the
    /// link table that start-up reloads.
    pub async fn link_game(&self, room_id: u64, game_id: String, game_sess: String) -> Result<(), StoreError> {
        match self {
            Self::Memory(m) => memory::apply(m, move |rooms| rooms.link_game(room_id, game_id, game_sess)).await,
            Self::Redis(r) => r.link_game(room_id, &game_id, &game_sess).await,
        }
    }

    /// The room `game_sess` is linked to, if any.
    pub async fn game_link(&self, game_sess: String) -> Result<Option<u64>, StoreError> {
        match self {
            Self::Memory(m) => memory::apply(m, move |rooms| rooms.game_link(&game_sess)).await,
            Self::Redis(r) => r.game_link(&game_sess).await,
        }
    }

    /// Every link (game_sess, room_id), for start-up.
    pub async fn game_links(&self) -> Result<Vec<(String, u64)>, StoreError> {
        match self {
            Self::Memory(m) => memory::apply(m, |rooms| rooms.game_links()).await,
            Self::Redis(r) => r.game_links().await,
        }
    }

    /// Drops the link of `game_sess` if it still points at `room_id` (the room ended).
    pub async fn unlink_game(&self, game_sess: String, room_id: u64) -> Result<(), StoreError> {
        match self {
            Self::Memory(m) => memory::apply(m, move |rooms| rooms.unlink_game(&game_sess, room_id)).await,
            Self::Redis(r) => r.unlink_game(&game_sess, room_id).await,
        }
    }
}
