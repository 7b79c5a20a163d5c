/**
 * Matching the broker's answers to the frames the client sent (PROTOCOL.md 2.3).
 *
 * The broker carries a connection's frames out one at a time, in order, and answers each: an
 * `ack` or `error` whose `for` names the action (a `pong` for a `ping`). The one exception is
 * the rate limit: a flooding client gets one `error` 1006 with `for: ""` per second and the
 * other refused frames get no answer at all. So answers are matched in order by `for`: an
 * answer belongs to the oldest waiting frame of its action, and the frames sent before that
 * one that are still waiting were dropped unanswered (rate limited); an error with `for: ""`
 * belongs to the oldest waiting frame.
 */

export interface Waiting<T> {
  action: string;
  resolve(answer: T): void;
  reject(error: Error): void;
}

export class AnswerQueue<T> {
  private waiting: Waiting<T>[] = [];

  get size(): number {
    return this.waiting.length;
  }

  add(entry: Waiting<T>): void {
    this.waiting.push(entry);
  }

  /** Forgets an entry (its timeout fired). */
  remove(entry: Waiting<T>): void {
    const i = this.waiting.indexOf(entry);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  /**
   * The entry an answer `for` = `action` belongs to, taken off the queue, with the entries
   * before it that the broker dropped; `undefined` (and nothing taken) when no frame of that
   * action is waiting.
   */
  take(action: string): { entry: Waiting<T>; dropped: Waiting<T>[] } | undefined {
    const i = this.waiting.findIndex((w) => w.action === action);
    if (i < 0) return undefined;
    const dropped = this.waiting.splice(0, i);
    const entry = this.waiting.shift() as Waiting<T>;
    return { entry, dropped };
  }

  /** The oldest waiting entry, taken off the queue (for an `error` with `for: ""`). */
  takeOldest(): Waiting<T> | undefined {
    return this.waiting.shift();
  }

  /** Takes every entry off the queue (the connection closed). */
  drain(): Waiting<T>[] {
    const all = this.waiting;
    this.waiting = [];
    return all;
  }
}
