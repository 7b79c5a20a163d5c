//! The seats ("mic positions") of a room: ids 1..=`room.seats`, each free or held by one user;
//! a user holds at most one seat (docs/protocol.md 2.3 `up_report` / `down_report`).

use crate::protocol::client::{Profile, Seat};

#[derive(Debug, PartialEq)]
pub enum SeatError {
    /// The seat is held by someone else (error 1005).
    Taken,
    /// No seat has that id (error 1001).
    NoSuchSeat,
    /// Every seat is held (error 1005, like a taken seat).
    Full,
}

pub struct Seats {
    channel_name: String,
    held: Vec<Option<Profile>>,
}

/// The result of taking a seat: the seat now held, and the one the user left to take it.
pub struct Taken {
    pub seat: Seat,
    pub left: Option<Seat>,
}

impl Seats {
    pub fn new(channel_name: &str, count: u32) -> Self {
        Self { channel_name: channel_name.to_string(), held: vec![None; count as usize] }
    }

    /// Who holds each seat, in seat order (a room's state, to be restored elsewhere).
    pub fn holders(&self) -> Vec<Option<Profile>> {
        self.held.clone()
    }

    /// Seats as `holders` left them; a seat count that changed keeps what still fits.
    pub fn restore(channel_name: &str, count: u32, holders: Vec<Option<Profile>>) -> Self {
        let mut seats = Self::new(channel_name, count);
        for (slot, holder) in seats.held.iter_mut().zip(holders) {
            *slot = holder;
        }
        seats
    }

    /// Gives `seat_id` to `profile`'s user, moving them off any seat they held.
    pub fn take(&mut self, seat_id: u32, profile: &Profile) -> Result<Taken, SeatError> {
        let index = self.index(seat_id).ok_or(SeatError::NoSuchSeat)?;
        match &self.held[index] {
            Some(holder) if holder.user_id == profile.user_id => {
                return Ok(Taken { seat: self.view(index), left: None });
            }
            Some(_) => return Err(SeatError::Taken),
            None => {}
        }
        let left = self.free_user(&profile.user_id);
        self.held[index] = Some(profile.clone());
        Ok(Taken { seat: self.view(index), left })
    }

    /// Gives `profile`'s user the seat they already hold, or else the lowest free one: the
    /// seed's `up_deport` names no seat.
    pub fn take_any(&mut self, profile: &Profile) -> Result<Taken, SeatError> {
        let seat_id = match self.seat_of(&profile.user_id) {
            Some(held) => held,
            None => self.held.iter().position(Option::is_none).ok_or(SeatError::Full)? as u32 + 1,
        };
        self.take(seat_id, profile)
    }

    /// Frees the seat `user_id` holds; answers the freed seat as it now is (status 0).
    pub fn free_user(&mut self, user_id: &str) -> Option<Seat> {
        let index = self.held.iter().position(|h| h.as_ref().is_some_and(|p| p.user_id == user_id))?;
        self.held[index] = None;
        Some(self.view(index))
    }

    /// The seat id `user_id` holds.
    pub fn seat_of(&self, user_id: &str) -> Option<u32> {
        self.held.iter().position(|h| h.as_ref().is_some_and(|p| p.user_id == user_id)).map(|i| i as u32 + 1)
    }

    pub fn snapshot(&self) -> Vec<Seat> {
        (0..self.held.len()).map(|i| self.view(i)).collect()
    }

    fn index(&self, seat_id: u32) -> Option<usize> {
        let index = (seat_id as usize).checked_sub(1)?;
        (index < self.held.len()).then_some(index)
    }

    fn view(&self, index: usize) -> Seat {
        let holder = self.held[index].clone().unwrap_or_default();
        let taken = self.held[index].is_some();
        Seat {
            id: index as u32 + 1,
            user_id: holder.user_id,
            nickname: holder.nickname,
            // A free seat says 0 like a profile without one: typed clients read sex as a number.
            sex: if taken { holder.sex } else { serde_json::Value::from(0) },
            avatar_url: holder.avatar_url,
            avatar_small_url: holder.avatar_small_url,
            status: u8::from(taken),
            microphone: u8::from(taken),
            rank: index as u32 + 1,
            room_id: self.channel_name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> Profile {
        Profile { user_id: id.into(), nickname: format!("n{id}"), ..Default::default() }
    }

    #[test]
    fn a_free_seat_is_taken_once() {
        let mut s = Seats::new("c", 2);
        assert_eq!(s.take(1, &user("a")).map(|t| t.seat.status), Ok(1));
        assert_eq!(s.take(1, &user("b")).err(), Some(SeatError::Taken));
        assert_eq!(s.take(3, &user("b")).err(), Some(SeatError::NoSuchSeat));
        assert_eq!(s.take(0, &user("b")).err(), Some(SeatError::NoSuchSeat));
    }

    #[test]
    fn taking_another_seat_leaves_the_first() {
        let mut s = Seats::new("c", 2);
        s.take(1, &user("a")).map(|_| ()).unwrap();
        let moved = s.take(2, &user("a")).map(|t| t.left.map(|l| l.id)).unwrap();
        assert_eq!(moved, Some(1));
        assert_eq!(s.seat_of("a"), Some(2));
    }

    #[test]
    fn any_seat_means_the_held_one_or_the_lowest_free_one() {
        let mut s = Seats::new("c", 2);
        s.take(1, &user("a")).map(|_| ()).unwrap();
        assert_eq!(s.take_any(&user("b")).map(|t| t.seat.id), Ok(2));
        assert_eq!(s.take_any(&user("b")).map(|t| (t.seat.id, t.left.is_none())), Ok((2, true)));
        assert_eq!(s.take_any(&user("c")).err(), Some(SeatError::Full));
    }

    #[test]
    fn freeing_answers_the_freed_seat() {
        let mut s = Seats::new("c", 2);
        s.take(2, &user("a")).map(|_| ()).unwrap();
        let freed = s.free_user("a").unwrap();
        assert_eq!((freed.id, freed.status, freed.user_id.as_str()), (2, 0, ""));
        assert!(s.free_user("a").is_none());
    }
}
