//! A room's members: the sessions in it and the users they belong to.
//!
//! A user on several devices is one member to everybody else (docs/protocol.md 2.3): one
//! `enter_room` when their first session joins, one `exit_room` when their last one leaves,
//! counted once in the snapshot and in viewers. Sessions are what the room sends frames to.

use std::collections::HashMap;

use super::events::SessionId;
use crate::protocol::client::Profile;

#[derive(Debug, Default)]
pub struct Members {
    by_session: HashMap<SessionId, Profile>,
    /// user_id -> how many of that user's sessions are here.
    sessions_of: HashMap<String, usize>,
}

/// What a join changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joining {
    /// This session was already in: nothing changed.
    AlreadyIn,
    /// The user's first session here: the others learn of a new member.
    NewUser,
    /// Another device of a user already here: nobody else notices.
    NewDevice,
}

/// What a leave changed.
#[derive(Debug)]
pub struct Leaving {
    pub profile: Profile,
    /// True when the user still has another session here (nobody else notices).
    pub still_here: bool,
}

impl Members {
    pub fn join(&mut self, session: SessionId, profile: Profile) -> Joining {
        let user_id = profile.user_id.clone();
        if self.by_session.insert(session, profile).is_some() {
            return Joining::AlreadyIn;
        }
        let sessions = self.sessions_of.entry(user_id).or_insert(0);
        *sessions += 1;
        if *sessions == 1 {
            Joining::NewUser
        } else {
            Joining::NewDevice
        }
    }

    pub fn leave(&mut self, session: SessionId) -> Option<Leaving> {
        let profile = self.by_session.remove(&session)?;
        let still_here = match self.sessions_of.get_mut(&profile.user_id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            _ => {
                self.sessions_of.remove(&profile.user_id);
                false
            }
        };
        Some(Leaving { profile, still_here })
    }

    pub fn profile(&self, session: SessionId) -> Option<&Profile> {
        self.by_session.get(&session)
    }

    /// The profile of a user who is here (any of their sessions).
    pub fn profile_of_user(&self, user_id: &str) -> Option<&Profile> {
        self.by_session.values().find(|p| p.user_id == user_id)
    }

    /// The sessions of `user_id` here.
    pub fn sessions_of_user<'a>(&'a self, user_id: &'a str) -> impl Iterator<Item = SessionId> + 'a {
        self.by_session.iter().filter(move |(_, p)| p.user_id == user_id).map(|(s, _)| *s)
    }

    /// Every user here, once each, in no particular order.
    pub fn user_ids(&self) -> impl Iterator<Item = &str> {
        self.sessions_of.keys().map(String::as_str)
    }

    pub fn has_user(&self, user_id: &str) -> bool {
        self.sessions_of.contains_key(user_id)
    }

    /// Users here (the snapshot's `members`).
    pub fn users(&self) -> usize {
        self.sessions_of.len()
    }

    /// Sessions here (what a release costs: one write each).
    pub fn sessions(&self) -> usize {
        self.by_session.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_session.is_empty()
    }

    /// Every session and its user's profile (a room's state, to be restored elsewhere).
    pub fn sessions_and_profiles(&self) -> Vec<(SessionId, Profile)> {
        self.by_session.iter().map(|(s, p)| (*s, p.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> Profile {
        Profile { user_id: id.into(), ..Default::default() }
    }

    #[test]
    fn a_user_on_two_devices_is_one_member() {
        let mut m = Members::default();
        assert_eq!(m.join(1, user("a")), Joining::NewUser);
        assert_eq!(m.join(2, user("a")), Joining::NewDevice);
        assert_eq!(m.join(2, user("a")), Joining::AlreadyIn);
        assert_eq!((m.users(), m.sessions()), (1, 2));
        assert!(m.leave(1).is_some_and(|l| l.still_here));
        assert!(m.leave(2).is_some_and(|l| !l.still_here));
        assert!(m.leave(2).is_none());
        assert!(m.is_empty() && !m.has_user("a"));
    }

    #[test]
    fn sessions_of_a_user_are_found_by_user_id() {
        let mut m = Members::default();
        m.join(1, user("a"));
        m.join(2, user("b"));
        m.join(3, user("a"));
        let mut of_a: Vec<_> = m.sessions_of_user("a").collect();
        of_a.sort_unstable();
        assert_eq!(of_a, vec![1, 3]);
        assert_eq!(m.profile_of_user("b").map(|p| p.user_id.as_str()), Some("b"));
    }
}
