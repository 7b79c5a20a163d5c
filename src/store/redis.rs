//! The Redis store (`store.kind: redis`): the live-room list in Redis, shared by every node
//! that uses the same `store.redis_url` and `store.key_prefix` (seed 002 advises Redis for
//! the high-rate counters).
//!
//! Keys (every one starts with `store.key_prefix`, written `{p}` here, and carries the hash
//! tag `{rooms}`, so that the scripts and pipelines below, which touch a room together with the
//! live list, stay on one slot of a Redis Cluster):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `{p}{rooms}:room_id_seq` | integer | the last `room_id` given out (INCR) |
//! | `{p}{rooms}:room:{room_id}` | hash | `room_id owner_id title location cover_url stream_id status created_at live_at ended_at game_id game_sess` |
//! | `{p}{rooms}:room:{room_id}:likes` | integer | likes (INCR) |
//! | `{p}{rooms}:room:{room_id}:viewers` | integer | current viewers (INCRBY +1/-1 from joins and leaves) |
//! | `{p}{rooms}:live` | sorted set | `room_id`s of `live` rooms, scored by `live_seq` (newest = highest) |
//! | `{p}{rooms}:live_seq` | integer | the last `live_seq` given out (INCR when a room goes live) |
//! | `{p}{rooms}:game_links` | hash | `game_sess` -> `room_id` (`/game` links, reloaded at start-up) |
//!
//! One tag means one slot, and so one master, for the whole list: its traffic is a few
//! commands per status change, join, leave and like, far below what one master serves (see
//! BENCHMARKS.md, "Capacity"); the rooms' danmu traffic is spread by the rooms' own tags.
//!
//! Every change that reads before it writes (status compare-and-set, "like only when live",
//! viewers never below 0, unlink only our own link) is one Lua script, so it is atomic without
//! WATCH (which a shared, multiplexed connection cannot use safely). Plain counters use INCR.
//!
//! The connection is a [`RedisConn`] (a single server or a cluster), created lazily: the broker
//! starts even when Redis is down, every call made during an outage fails quickly with
//! [`StoreError::Unavailable`] (connect timeout 1 s, response timeout 2 s), and the connection
//! reconnects by itself once Redis is back. A call whose connection attempt was refused is
//! tried once more, because a single server's connection manager only starts reconnecting when
//! a call fails (the first call after Redis returns would otherwise fail too); a command that
//! was already sent is never repeated, so an INCR is never counted twice.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use redis::{AsyncCommands, RedisResult, Script, Value};

use super::conn::{RedisConn, RedisTarget};
use super::{Guarded, LivePage, LiveRoom, LiveStatus, NewLiveRoom, StoreError};

/// Status compare-and-set; moves the room onto or off the live list.
/// KEYS: room hash, live zset, live_seq. ARGV: from, to, now_ms, room_id.
/// Answers {0,""} no such room, {1,status} status was not `from`, {2,to} done.
const SET_STATUS: &str = r"
local s = redis.call('HGET', KEYS[1], 'status')
if not s then return {0, ''} end
if s ~= ARGV[1] then return {1, s} end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
if ARGV[2] == 'live' then
  local seq = redis.call('INCR', KEYS[3])
  redis.call('HSET', KEYS[1], 'live_at', ARGV[3])
  redis.call('ZADD', KEYS[2], seq, ARGV[4])
else
  redis.call('ZREM', KEYS[2], ARGV[4])
end
if ARGV[2] == 'closed' or ARGV[2] == 'banned' then
  redis.call('HSET', KEYS[1], 'ended_at', ARGV[3])
end
return {2, ARGV[2]}
";

/// +1 like on a live room. KEYS: room hash, likes. Answers {0,""}, {1,status} or {2,"count"}.
const LIKE: &str = r"
local s = redis.call('HGET', KEYS[1], 'status')
if not s then return {0, ''} end
if s ~= 'live' then return {1, s} end
return {2, tostring(redis.call('INCR', KEYS[2]))}
";

/// Viewers += delta on an existing room, floored at 0. KEYS: room hash, viewers. ARGV: delta.
/// Answers {0,"",0} no such room, or {1,status,viewers}.
const ADD_VIEWERS: &str = r"
local s = redis.call('HGET', KEYS[1], 'status')
if not s then return {0, '', 0} end
local v = redis.call('INCRBY', KEYS[2], ARGV[1])
if v < 0 then
  redis.call('SET', KEYS[2], 0)
  v = 0
end
return {1, s, v}
";

/// Removes a game_sess link only if it still points at the room. KEYS: game_links.
/// ARGV: game_sess, room_id.
const UNLINK: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
";

struct Scripts {
    set_status: Script,
    like: Script,
    add_viewers: Script,
    unlink: Script,
}

#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConn,
    /// `store.key_prefix` and the list's hash tag.
    prefix: String,
    /// Immutable after start; shared so that clones do not re-hash the scripts.
    scripts: Arc<Scripts>,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl RedisStore {
    /// A store on `url` (not connected yet; see the module doc). Runs inside a Tokio runtime.
    pub fn open(target: &RedisTarget, prefix: &str) -> Result<Self, StoreError> {
        let conn = RedisConn::open(target).map_err(|e| StoreError::Unavailable(format!("redis {target:?}: {e}")))?;
        let scripts = Scripts {
            set_status: Script::new(SET_STATUS),
            like: Script::new(LIKE),
            add_viewers: Script::new(ADD_VIEWERS),
            unlink: Script::new(UNLINK),
        };
        Ok(Self { conn, prefix: format!("{prefix}{{rooms}}:"), scripts: Arc::new(scripts) })
    }

    /// The store's connection, shared with the other users of this Redis (node presence).
    pub fn connection(&self) -> RedisConn {
        self.conn.clone()
    }

    /// `redis` or `redis-cluster`.
    pub fn kind(&self) -> &'static str {
        match self.conn {
            RedisConn::Single(_) => "redis",
            RedisConn::Cluster(_) => "redis-cluster",
        }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    fn room_key(&self, room_id: u64) -> String {
        format!("{}room:{room_id}", self.prefix)
    }

    fn likes_key(&self, room_id: u64) -> String {
        format!("{}room:{room_id}:likes", self.prefix)
    }

    fn viewers_key(&self, room_id: u64) -> String {
        format!("{}room:{room_id}:viewers", self.prefix)
    }

    /// Runs `op` on a connection; once more when the connection attempt was refused (see the
    /// module doc: that first failure is what makes the manager reconnect).
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(RedisConn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match op(self.conn.clone()).await {
            Err(e) if e.is_connection_refusal() => op(self.conn.clone()).await.map_err(unavailable),
            other => other.map_err(unavailable),
        }
    }

    pub async fn create_room(&self, new: NewLiveRoom) -> Result<LiveRoom, StoreError> {
        let seq_key = self.key("room_id_seq");
        let room_id: u64 = self
            .run(|mut c| {
                let seq_key = seq_key.clone();
                async move { c.incr(seq_key, 1).await }
            })
            .await?;
        let room = new.into_room(room_id);
        let fields = [
            ("room_id", room_id.to_string()),
            ("owner_id", room.owner_id.clone()),
            ("title", room.title.clone()),
            ("location", room.location.clone()),
            ("cover_url", room.cover_url.clone()),
            ("stream_id", room.stream_id.clone()),
            ("status", room.status.as_str().to_string()),
            ("created_at", room.created_at.to_string()),
            ("live_at", "0".to_string()),
            ("ended_at", "0".to_string()),
            ("game_id", String::new()),
            ("game_sess", String::new()),
        ];
        let room_key = self.room_key(room_id);
        self.run(|mut c| {
            let (room_key, fields) = (room_key.clone(), fields.clone());
            async move { c.hset_multiple::<_, _, _, ()>(room_key, &fields).await }
        })
        .await?;
        Ok(room)
    }

    pub async fn room(&self, room_id: u64) -> Result<Option<LiveRoom>, StoreError> {
        Ok(self.rooms(&[room_id]).await?.into_iter().next())
    }

    /// The rooms with these ids, in this order; ids with no room are skipped.
    async fn rooms(&self, ids: &[u64]) -> Result<Vec<LiveRoom>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.room_key(*id)).get(self.likes_key(*id)).get(self.viewers_key(*id));
        }
        let values: Vec<Value> = self
            .run(|mut c| {
                let pipe = pipe.clone();
                async move { pipe.query_async(&mut c).await }
            })
            .await?;
        let mut rooms = Vec::with_capacity(ids.len());
        for chunk in values.chunks(3) {
            let [hash, likes, viewers] = chunk else {
                return Err(StoreError::Corrupt("short pipeline answer".into()));
            };
            let hash: HashMap<String, String> = redis::from_redis_value_ref(hash).map_err(corrupt)?;
            if hash.is_empty() {
                continue;
            }
            let likes: Option<i64> = redis::from_redis_value_ref(likes).map_err(corrupt)?;
            let viewers: Option<i64> = redis::from_redis_value_ref(viewers).map_err(corrupt)?;
            rooms.push(room_from_hash(hash, likes.unwrap_or(0), viewers.unwrap_or(0))?);
        }
        Ok(rooms)
    }

    pub async fn set_status(
        &self,
        room_id: u64,
        from: LiveStatus,
        to: LiveStatus,
        now: i64,
    ) -> Result<Guarded<LiveRoom>, StoreError> {
        let keys = [self.room_key(room_id), self.key("live"), self.key("live_seq")];
        let (outcome, status): (i64, String) = self
            .run(|mut c| {
                let mut call = self.scripts.set_status.prepare_invoke();
                call.key(&keys[0]).key(&keys[1]).key(&keys[2]);
                call.arg(from.as_str()).arg(to.as_str()).arg(now).arg(room_id);
                async move { call.invoke_async(&mut c).await }
            })
            .await?;
        match outcome {
            0 => Ok(Guarded::NotFound),
            1 => Ok(Guarded::Was(parse_status(&status)?)),
            _ => Ok(self.room(room_id).await?.map_or(Guarded::NotFound, Guarded::Done)),
        }
    }

    pub async fn live_page(&self, offset: u64, count: u64) -> Result<LivePage, StoreError> {
        let live = self.key("live");
        // ZREVRANGE's stop is inclusive, so a count of 0 would ask for offset - 1 (for offset 0,
        // -1: the whole set); it only needs the total.
        let (total, ids): (u64, Vec<u64>) = if count == 0 {
            (
                self.run(|mut c| {
                    let live = live.clone();
                    async move { c.zcard(live).await }
                })
                .await?,
                Vec::new(),
            )
        } else {
            let stop = offset.saturating_add(count - 1);
            let (start, stop) =
                (isize::try_from(offset).unwrap_or(isize::MAX), isize::try_from(stop).unwrap_or(isize::MAX));
            self.run(|mut c| {
                let mut pipe = redis::pipe();
                pipe.zcard(&live).zrevrange(&live, start, stop);
                async move { pipe.query_async(&mut c).await }
            })
            .await?
        };
        Ok(LivePage { total, rooms: self.rooms(&ids).await? })
    }

    pub async fn like(&self, room_id: u64) -> Result<Guarded<i64>, StoreError> {
        let keys = [self.room_key(room_id), self.likes_key(room_id)];
        let (outcome, value): (i64, String) = self
            .run(|mut c| {
                let mut call = self.scripts.like.prepare_invoke();
                call.key(&keys[0]).key(&keys[1]);
                async move { call.invoke_async(&mut c).await }
            })
            .await?;
        match outcome {
            0 => Ok(Guarded::NotFound),
            1 => Ok(Guarded::Was(parse_status(&value)?)),
            _ => value.parse().map(Guarded::Done).map_err(|_| StoreError::Corrupt(format!("likes {value:?}"))),
        }
    }

    pub async fn add_viewers(&self, room_id: u64, delta: i64) -> Result<Option<(i64, LiveStatus)>, StoreError> {
        let keys = [self.room_key(room_id), self.viewers_key(room_id)];
        let (found, status, viewers): (i64, String, i64) = self
            .run(|mut c| {
                let mut call = self.scripts.add_viewers.prepare_invoke();
                call.key(&keys[0]).key(&keys[1]).arg(delta);
                async move { call.invoke_async(&mut c).await }
            })
            .await?;
        if found == 0 {
            return Ok(None);
        }
        Ok(Some((viewers, parse_status(&status)?)))
    }

    pub async fn link_game(&self, room_id: u64, game_id: &str, game_sess: &str) -> Result<(), StoreError> {
        let (room_key, links) = (self.room_key(room_id), self.key("game_links"));
        self.run(|mut c| {
            let mut pipe = redis::pipe();
            pipe.atomic()
                .hset(&room_key, "game_id", game_id)
                .ignore()
                .hset(&room_key, "game_sess", game_sess)
                .ignore()
                .hset(&links, game_sess, room_id)
                .ignore();
            async move { pipe.exec_async(&mut c).await }
        })
        .await
    }

    pub async fn game_link(&self, game_sess: &str) -> Result<Option<u64>, StoreError> {
        let links = self.key("game_links");
        self.run(|mut c| {
            let (links, game_sess) = (links.clone(), game_sess.to_string());
            async move { c.hget(links, game_sess).await }
        })
        .await
    }

    pub async fn game_links(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let links = self.key("game_links");
        let map: HashMap<String, u64> = self
            .run(|mut c| {
                let links = links.clone();
                async move { c.hgetall(links).await }
            })
            .await?;
        Ok(map.into_iter().collect())
    }

    pub async fn unlink_game(&self, game_sess: &str, room_id: u64) -> Result<(), StoreError> {
        let links = self.key("game_links");
        self.run(|mut c| {
            let mut call = self.scripts.unlink.prepare_invoke();
            call.key(&links).arg(game_sess).arg(room_id);
            async move { call.invoke_async::<i64>(&mut c).await.map(|_| ()) }
        })
        .await
    }
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn parse_status(text: &str) -> Result<LiveStatus, StoreError> {
    LiveStatus::parse(text).ok_or_else(|| StoreError::Corrupt(format!("room status {text:?}")))
}

fn room_from_hash(mut hash: HashMap<String, String>, likes: i64, viewers: i64) -> Result<LiveRoom, StoreError> {
    let mut text = |field: &str| hash.remove(field).unwrap_or_default();
    let number = |field: &str, value: String| -> Result<i64, StoreError> {
        if value.is_empty() {
            return Ok(0);
        }
        value.parse().map_err(|_| StoreError::Corrupt(format!("room field {field} = {value:?}")))
    };
    let room_id = text("room_id");
    let room_id = u64::try_from(number("room_id", room_id)?).map_err(corrupt)?;
    let status = parse_status(&text("status"))?;
    Ok(LiveRoom {
        room_id,
        owner_id: text("owner_id"),
        title: text("title"),
        location: text("location"),
        cover_url: text("cover_url"),
        stream_id: text("stream_id"),
        status,
        created_at: number("created_at", text("created_at"))?,
        live_at: number("live_at", text("live_at"))?,
        ended_at: number("ended_at", text("ended_at"))?,
        game_id: text("game_id"),
        game_sess: text("game_sess"),
        likes,
        viewers,
    })
}
