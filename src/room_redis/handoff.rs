//! A room moves to the node its pushes arrive on. BIGO pushes a room's danmu over one
//! connection, to one node; when that node does not own the room, each push costs a Lua call
//! and a wake-up on top of the owner's commit, where the owner's own pushes cost one `XADD`
//! (see `RedisEngine::send_own`). So a node that has been the room's only pusher for a while
//! asks the owner for it, with an input in the room's stream (when: [`super::pushing`]); the
//! owner hands the lease over unless it got pushes of its own lately, by one fenced script
//! ([`HANDOFF`](super::scripts::HANDOFF)), and stops owning the room; the asking node sees the
//! lease name it (with its next inputs, or by reading it at its presence renewals while it
//! waits) and takes the room over as after any claim. Rooms pushed from several nodes stay
//! where they are.

use std::time::Instant;

use actix::fut::wrap_future;
use actix::{ActorFutureExt, AsyncContext};
use log::{info, warn};

use super::state::{Ctx, Front, RedisEngine};
use super::wire::Input as WireInput;

impl RedisEngine {
    /// A push of this node went into the room's stream: it asks for the room when it has been
    /// its only pusher for a while (the owner decides).
    pub(super) fn pushed_here(&mut self, ctx: &mut Ctx) {
        if self.owner.is_some() || !self.pushing.pushed(Instant::now()) {
            return;
        }
        info!(
            "room {}: node {} asks its owner for it (its pushes arrive here)",
            self.channel_name, self.shared.node_id
        );
        // Read again with the next inputs, and at each renewal while waiting (`owner::watch`).
        self.holder = None;
        let ask = WireInput::Handoff { n: self.shared.node_id.clone() };
        self.send_input(&ask, super::state::Answer::None, ctx);
    }

    /// The owner gives the lease to `to` (it asked), then stops owning the room: whatever it
    /// applied and did not commit, `to` reads again from the streams, as after any takeover.
    pub(super) fn send_handoff(&mut self, to: String, ctx: &mut Ctx) {
        let (mut conn, scripts) = (self.shared.conn.clone(), self.scripts.clone());
        let (lease, node) = (self.key("lease"), self.shared.node_id.clone());
        let given = to.clone();
        let run = async move { scripts.handoff.key(lease).arg(node).arg(given).invoke_async::<i64>(&mut conn).await };
        self.step_busy = true;
        ctx.spawn(wrap_future::<_, Front>(run).map(move |answer, front: &mut Front, ctx| {
            let room = front.engine_mut();
            room.step_busy = false;
            match answer {
                Ok(1) => {
                    info!(
                        "room {}: node {} hands it to node {to} (its pushes arrive there)",
                        room.channel_name, room.shared.node_id
                    );
                    room.give_up(ctx);
                }
                Ok(_) => {
                    warn!("room {}: another node holds its lease now, giving it up", room.channel_name);
                    room.give_up(ctx);
                }
                Err(e) => {
                    warn!("room {}: could not hand it to node {to} ({e}); keeping it", room.channel_name);
                    room.pump(ctx);
                }
            }
        }));
    }
}
