/**
 * `RoomPosition`: where a member is in its room's event stream, for recovery (docs/protocol.md 2.3,
 * 2.6). It remembers the highest `seq` delivered and the room's `epoch`, says what to send
 * with the next `enter_room_report` (`last_seq`, `epoch`), reads the `ack`, and filters the
 * events that follow: duplicates (a `seq` already delivered) are dropped, and events the
 * ack's snapshot already covers (replayed ones, `seq` <= the ack's `last_seq`) are marked.
 *
 * After a re-entry the broker sends the ack first, then the replay (events after the
 * `last_seq` sent, all older than the ack's `last_seq`), then live events. A room whose
 * numbering started again (its `epoch` changed, or its `seq` went backwards on a broker
 * without epochs) is a new stream: the position starts again from the ack.
 */
import type { EnterRoomAck } from "./protocol.js";

/** What a client tells the app after entering again. */
export interface EnterOutcome {
  /** True when the broker replays every missed event: the app's view stays valid. */
  recovered: boolean;
  /** The room's numbering started again: every `seq` known before means nothing now. */
  renumbered: boolean;
}

export class RoomPosition {
  readonly channel_name: string;
  /** The highest `seq` delivered in this room (0 = none). */
  lastSeq = 0;
  /** The room's epoch, once an ack said it. */
  epoch: string | undefined;
  /** The `last_seq` of the latest ack: events up to it are in its snapshot. */
  snapshotSeq = 0;
  /** True once an enter was acknowledged, or a position was given: re-entries send `last_seq`. */
  known = false;

  constructor(channel_name: string, from?: { last_seq?: number; epoch?: string }) {
    this.channel_name = channel_name;
    if (from?.last_seq !== undefined) {
      this.lastSeq = from.last_seq;
      this.epoch = from.epoch;
      this.known = true;
    }
  }

  /** The recovery fields of the next `enter_room_report` (none for a first entry). */
  enterFields(): { last_seq?: number; epoch?: string } {
    if (!this.known) return {};
    return this.epoch === undefined ? { last_seq: this.lastSeq } : { last_seq: this.lastSeq, epoch: this.epoch };
  }

  /** Reads the ack of the `enter_room_report` that carried `sent` (from `enterFields()`). */
  entered(ack: EnterRoomAck, sent: { last_seq?: number; epoch?: string }): EnterOutcome {
    const ackSeq = numberOr(ack.last_seq, numberOr(ack.room?.last_seq, 0));
    const epoch = ack.epoch ?? ack.room?.epoch;
    this.snapshotSeq = ackSeq;
    this.known = true;
    if (sent.last_seq === undefined) {
      // A first entry: the snapshot is the state; live events follow the member's own enter.
      this.lastSeq = ackSeq;
      this.epoch = epoch;
      return { recovered: true, renumbered: false };
    }
    const epochChanged = epoch !== undefined && sent.epoch !== undefined && epoch !== sent.epoch;
    const renumbered = epochChanged || ackSeq < sent.last_seq;
    if (renumbered) this.lastSeq = 0; // what follows (a replay, if any) is of the new numbering
    if (epoch !== undefined) this.epoch = epoch;
    // Trust the epoch over a broker that would not know better (one without epochs).
    const recovered = ack.recovered === true && !renumbered;
    return { recovered, renumbered };
  }

  /**
   * Whether to deliver an event with this `seq`, and whether the snapshot already covers it.
   * Events without `seq` (for this member only) are always delivered.
   */
  accept(seq: number | undefined): { deliver: boolean; replayed: boolean } {
    if (seq === undefined) return { deliver: true, replayed: false };
    if (seq <= this.lastSeq) return { deliver: false, replayed: false };
    this.lastSeq = seq;
    return { deliver: true, replayed: seq <= this.snapshotSeq };
  }
}

function numberOr(v: unknown, fallback: number): number {
  const n = typeof v === "string" ? Number(v) : v;
  return typeof n === "number" && Number.isFinite(n) ? n : fallback;
}
