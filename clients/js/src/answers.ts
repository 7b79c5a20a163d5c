/**
 * Matching the broker's answers to the frames the client sent (docs/protocol.md 2.3).
 *
 * The broker carries a connection's frames out one at a time, in order, and answers each: an
 * `ack` or `error` whose `for` names the action (a `pong` for a `ping`). The one exception is
 * the rate limit: a flooding client gets one `error` 1006 with `for: ""` per second and the
 * other refused frames get no answer at all. So answers are matched in order by `for`: an
 * answer belongs to the oldest waiting frame of its action, and the frames sent before that
 * one that are still waiting were dropped unanswered (rate limited); an error with `for: ""`
 * belongs to the oldest waiting frame.
 *
 * Every sent frame has a place in the queue under its own key until its answer comes or the
 * connection ends. A frame whose caller stopped waiting (its timeout, its `AbortSignal`)
 * keeps its place as a placeholder: its late answer lands on the placeholder and is dropped,
 * instead of being pinned on the next frame of the same action.
 */

export interface Waiting<T> {
  action: string;
  resolve(answer: T): void;
  reject(error: Error): void;
}

interface Slot<T> {
  key: number;
  action: string;
  /** null: a placeholder (the caller stopped waiting); its answer is dropped. */
  entry: Waiting<T> | null;
}

/** What an answer settles: the entry (null for a placeholder) and the live entries dropped before it. */
export interface Taken<T> {
  entry: Waiting<T> | null;
  dropped: Waiting<T>[];
}

export class AnswerQueue<T> {
  private slots: Slot<T>[] = [];
  private nextKey = 1;

  /** Frames waiting for an answer, placeholders included. */
  get size(): number {
    return this.slots.length;
  }

  /** Frames whose caller still waits. */
  get waiting(): number {
    return this.slots.filter((s) => s.entry !== null).length;
  }

  /** Adds a sent frame; answers its key. */
  add(entry: Waiting<T>): number {
    const key = this.nextKey++;
    this.slots.push({ key, action: entry.action, entry });
    return key;
  }

  /**
   * The caller of `key` stopped waiting: the frame keeps its place, as a placeholder, until
   * its answer comes (and is dropped) or the connection ends.
   */
  abandon(key: number): void {
    const slot = this.slots.find((s) => s.key === key);
    if (slot) slot.entry = null;
  }

  /** Takes `key` off the queue altogether (a frame that was never written). */
  remove(key: number): void {
    const i = this.slots.findIndex((s) => s.key === key);
    if (i >= 0) this.slots.splice(i, 1);
  }

  /**
   * The slot an answer `for` = `action` belongs to, taken off the queue, with the live entries
   * before it that the broker dropped; `undefined` (and nothing taken) when no frame of that
   * action is waiting.
   */
  take(action: string): Taken<T> | undefined {
    const i = this.slots.findIndex((s) => s.action === action);
    if (i < 0) return undefined;
    const before = this.slots.splice(0, i);
    const slot = this.slots.shift() as Slot<T>;
    return { entry: slot.entry, dropped: liveEntries(before) };
  }

  /** The oldest slot, taken off the queue (an `error` with `for: ""`); undefined when none. */
  takeOldest(): Taken<T> | undefined {
    const slot = this.slots.shift();
    return slot ? { entry: slot.entry, dropped: [] } : undefined;
  }

  /** Takes every slot off the queue (the connection closed); answers the live entries. */
  drain(): Waiting<T>[] {
    const all = this.slots;
    this.slots = [];
    return liveEntries(all);
  }
}

function liveEntries<T>(slots: Slot<T>[]): Waiting<T>[] {
  return slots.flatMap((s) => (s.entry ? [s.entry] : []));
}
