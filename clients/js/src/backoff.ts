/**
 * How long the client waits before it tries again: "full jitter" exponential back-off (a delay
 * drawn uniformly between 0 and a ceiling that doubles with each failure, up to a maximum), as
 * in the AWS architecture blog's "Exponential Backoff and Jitter". Full jitter rather than
 * ±20 %: the clients of a node that stops all lose their connection in the same instant, and
 * only a delay drawn over the whole window spreads their returns.
 *
 * The failure count is reset only by `reset()`, which the client calls once a connection has
 * stayed up for a while (`stableAfterMs`), not when it merely connected: a link that drops
 * right after connecting keeps backing off.
 *
 * `delayAfter` picks the delay for what ended the last connection (docs/protocol.md 2.7, 4):
 * the broker's own `retry_after_ms` after `kicked: shutdown`; a window of `restartSpreadMs`
 * after 1012 (the node restarts) without it; a longer wait after 1013 (too slow: coming back
 * at once brings the same burst).
 */

export interface BackoffOptions {
  /** The first ceiling; default 500 ms. */
  minDelayMs: number;
  /** The ceiling doubles after each failure up to this; default 10000 ms. */
  maxDelayMs: number;
  /** Window over which to spread the return after 1012 when the broker gave no `retry_after_ms`; default 5000 ms. */
  restartSpreadMs: number;
  /** Wait at least this after 1013 (too slow); default 2000 ms. */
  slowFloorMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  minDelayMs: 500,
  maxDelayMs: 10_000,
  restartSpreadMs: 5_000,
  slowFloorMs: 2_000,
};

/** Why the client is about to wait. */
export interface WaitReason {
  /** The WebSocket close code, when a connection ended (0 when none was made). */
  closeCode?: number;
  /** `retry_after_ms` of a `kicked` frame just before the close. */
  retryAfterMs?: number;
}

export class Backoff {
  /** Failed attempts since the last `reset()`. */
  failures = 0;
  private readonly options: BackoffOptions;
  private readonly random: () => number;

  constructor(options: Partial<BackoffOptions> = {}, random: () => number = Math.random) {
    this.options = { ...DEFAULT_BACKOFF, ...options };
    if (this.options.maxDelayMs < this.options.minDelayMs) this.options.maxDelayMs = this.options.minDelayMs;
    this.random = random;
  }

  /** The longest delay of a plain failure. */
  get maxDelayMs(): number {
    return this.options.maxDelayMs;
  }

  /** The current ceiling: `minDelayMs` doubled per failure, at most `maxDelayMs`. */
  ceiling(): number {
    const { minDelayMs, maxDelayMs } = this.options;
    return Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(this.failures, 30));
  }

  /** A full-jitter delay for the next attempt; counts a failure. */
  next(): number {
    const delay = Math.round(this.random() * this.ceiling());
    this.failures += 1;
    return delay;
  }

  /** The delay after a connection ended for `why`; counts a failure. */
  delayAfter(why: WaitReason): number {
    if (typeof why.retryAfterMs === "number" && Number.isFinite(why.retryAfterMs) && why.retryAfterMs >= 0) {
      // The broker drew it over its own spread already (docs/protocol.md 4): wait exactly that.
      this.failures += 1;
      return Math.round(why.retryAfterMs);
    }
    if (why.closeCode === 1012) {
      const spread = Math.max(this.options.restartSpreadMs, this.ceiling());
      this.failures += 1;
      return Math.round(this.random() * spread);
    }
    if (why.closeCode === 1013) {
      // At least the floor, and from a ceiling at least four times the first.
      this.failures = Math.max(this.failures, 2);
      const { slowFloorMs } = this.options;
      return slowFloorMs + this.next();
    }
    return this.next();
  }

  reset(): void {
    this.failures = 0;
  }
}
