//! The embedded store (`store.kind: memory`, the default): the live-room list in plain maps,
//! owned by one actor, gone when the process ends.
//!
//! [`MemoryRooms`] is the data and every operation on it, as ordinary synchronous methods
//! (unit-tested below). [`MemoryStore`] is the actor that owns one `MemoryRooms` and runs each
//! operation to completion before the next, which is what makes "compare the status, then set
//! it" or "+1 like" atomic without any lock. The actor accepts one generic message,
//! [`Apply`], carrying the operation as a closure: `Store` (`store/mod.rs`) is its only
//! sender, and that keeps each operation written once, in `MemoryRooms`, instead of once more
//! as a message type per operation.

use std::collections::{BTreeMap, HashMap};

use actix::prelude::*;

use super::{Guarded, LivePage, LiveRoom, LiveStatus, NewLiveRoom, StoreError};

/// The rooms, the live list and the links.
#[derive(Default)]
pub struct MemoryRooms {
    last_room_id: u64,
    /// Orders the live list: a room going live takes the next number (newest = highest).
    last_live_seq: u64,
    rooms: HashMap<u64, LiveRoom>,
    /// live_seq -> room_id of the rooms that are `live`.
    live: BTreeMap<u64, u64>,
    /// room_id -> its live_seq while live.
    live_seq_of: HashMap<u64, u64>,
    game_links: HashMap<String, u64>,
}

impl MemoryRooms {
    pub fn create_room(&mut self, new: NewLiveRoom) -> LiveRoom {
        self.last_room_id += 1;
        let room_id = self.last_room_id;
        let room = new.into_room(room_id);
        self.rooms.insert(room_id, room.clone());
        room
    }

    pub fn room(&self, room_id: u64) -> Option<LiveRoom> {
        self.rooms.get(&room_id).cloned()
    }

    pub fn set_status(&mut self, room_id: u64, from: LiveStatus, to: LiveStatus, now: i64) -> Guarded<LiveRoom> {
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return Guarded::NotFound;
        };
        if room.status != from {
            return Guarded::Was(room.status);
        }
        room.status = to;
        if to == LiveStatus::Live {
            room.live_at = now;
            self.last_live_seq += 1;
            self.live.insert(self.last_live_seq, room_id);
            self.live_seq_of.insert(room_id, self.last_live_seq);
        } else if let Some(seq) = self.live_seq_of.remove(&room_id) {
            self.live.remove(&seq);
        }
        if to.is_ended() {
            room.ended_at = now;
        }
        Guarded::Done(room.clone())
    }

    pub fn live_page(&self, offset: u64, count: u64) -> LivePage {
        let rooms = self
            .live
            .values()
            .rev()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .filter_map(|id| self.rooms.get(id).cloned())
            .collect();
        LivePage { total: self.live.len() as u64, rooms }
    }

    pub fn like(&mut self, room_id: u64) -> Guarded<i64> {
        match self.rooms.get_mut(&room_id) {
            None => Guarded::NotFound,
            Some(room) if room.status != LiveStatus::Live => Guarded::Was(room.status),
            Some(room) => {
                room.likes = room.likes.saturating_add(1);
                Guarded::Done(room.likes)
            }
        }
    }

    pub fn add_viewers(&mut self, room_id: u64, delta: i64) -> Option<(i64, LiveStatus)> {
        let room = self.rooms.get_mut(&room_id)?;
        room.viewers = room.viewers.saturating_add(delta).max(0);
        Some((room.viewers, room.status))
    }

    pub fn link_game(&mut self, room_id: u64, game_id: String, game_sess: String) {
        if let Some(room) = self.rooms.get_mut(&room_id) {
            room.game_id = game_id;
            room.game_sess = game_sess.clone();
            self.game_links.insert(game_sess, room_id);
        }
    }

    pub fn game_link(&self, game_sess: &str) -> Option<u64> {
        self.game_links.get(game_sess).copied()
    }

    pub fn game_links(&self) -> Vec<(String, u64)> {
        self.game_links.iter().map(|(g, r)| (g.clone(), *r)).collect()
    }

    pub fn unlink_game(&mut self, game_sess: &str, room_id: u64) {
        if self.game_links.get(game_sess) == Some(&room_id) {
            self.game_links.remove(game_sess);
        }
    }
}

/// The actor owning the [`MemoryRooms`].
#[derive(Default)]
pub struct MemoryStore {
    rooms: MemoryRooms,
}

impl Actor for MemoryStore {
    type Context = Context<Self>;
}

/// Runs one operation on the rooms and answers its result.
pub struct Apply<R: Send + 'static>(pub Box<dyn FnOnce(&mut MemoryRooms) -> R + Send>);

impl<R: Send + 'static> Message for Apply<R> {
    type Result = R;
}

impl<R: Send + 'static> Handler<Apply<R>> for MemoryStore {
    type Result = MessageResult<Apply<R>>;

    fn handle(&mut self, msg: Apply<R>, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult((msg.0)(&mut self.rooms))
    }
}

/// Sends `op` to the store actor and waits for its answer.
pub async fn apply<R: Send + 'static>(
    store: &Addr<MemoryStore>,
    op: impl FnOnce(&mut MemoryRooms) -> R + Send + 'static,
) -> Result<R, StoreError> {
    store.send(Apply(Box::new(op))).await.map_err(|e| StoreError::Unavailable(format!("memory store: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_room(owner: &str) -> NewLiveRoom {
        NewLiveRoom {
            owner_id: owner.into(),
            title: "t".into(),
            location: String::new(),
            cover_url: String::new(),
            bizid: "8888".into(),
            created_at: 1,
        }
    }

    #[test]
    fn rooms_get_increasing_ids_and_bizid_stream_ids() {
        let mut rooms = MemoryRooms::default();
        let a = rooms.create_room(new_room("u1"));
        let b = rooms.create_room(new_room("u1"));
        assert_eq!((a.room_id, b.room_id), (1, 2));
        assert_eq!(b.stream_id, "8888_2");
        assert_eq!(a.status, LiveStatus::New);
    }

    #[test]
    fn set_status_compares_before_it_sets() {
        let mut rooms = MemoryRooms::default();
        let id = rooms.create_room(new_room("u1")).room_id;
        assert_eq!(rooms.set_status(id, LiveStatus::Live, LiveStatus::Closed, 5), Guarded::Was(LiveStatus::New));
        assert!(matches!(rooms.set_status(id, LiveStatus::New, LiveStatus::Live, 5), Guarded::Done(_)));
        assert_eq!(rooms.set_status(99, LiveStatus::New, LiveStatus::Live, 5), Guarded::NotFound);
    }

    #[test]
    fn the_live_list_is_newest_first_and_loses_ended_rooms() {
        let mut rooms = MemoryRooms::default();
        let ids: Vec<u64> = (0..3).map(|_| rooms.create_room(new_room("u")).room_id).collect();
        for id in &ids {
            rooms.set_status(*id, LiveStatus::New, LiveStatus::Live, 1);
        }
        rooms.set_status(ids[1], LiveStatus::Live, LiveStatus::Closed, 2);
        let page = rooms.live_page(0, 10);
        assert_eq!(page.total, 2);
        assert_eq!(page.rooms.iter().map(|r| r.room_id).collect::<Vec<_>>(), vec![ids[2], ids[0]]);
        assert_eq!(rooms.live_page(1, 10).rooms.len(), 1);
    }

    #[test]
    fn likes_need_a_live_room_and_viewers_never_go_below_zero() {
        let mut rooms = MemoryRooms::default();
        let id = rooms.create_room(new_room("u")).room_id;
        assert_eq!(rooms.like(id), Guarded::Was(LiveStatus::New));
        rooms.set_status(id, LiveStatus::New, LiveStatus::Live, 1);
        assert_eq!(rooms.like(id), Guarded::Done(1));
        assert_eq!(rooms.add_viewers(id, -1), Some((0, LiveStatus::Live)));
        assert_eq!(rooms.add_viewers(id, 2), Some((2, LiveStatus::Live)));
        assert_eq!(rooms.add_viewers(42, 1), None);
    }

    #[test]
    fn unlink_only_removes_a_link_that_still_points_at_the_room() {
        let mut rooms = MemoryRooms::default();
        let a = rooms.create_room(new_room("u")).room_id;
        let b = rooms.create_room(new_room("u")).room_id;
        rooms.link_game(a, "1".into(), "gs".into());
        rooms.link_game(b, "1".into(), "gs".into());
        rooms.unlink_game("gs", a);
        assert_eq!(rooms.game_link("gs"), Some(b));
        rooms.unlink_game("gs", b);
        assert_eq!(rooms.game_link("gs"), None);
    }
}
