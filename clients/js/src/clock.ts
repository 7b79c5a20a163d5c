/**
 * `ServerClock`: the broker's clock as the client sees it. Every client frame and the
 * `end_point`/upgrade query carry a `timestamp` that the broker refuses (1010) when it is
 * further than `client.max_skew_ms` from its own clock (docs/protocol.md 2.1, 2.3), so a
 * device whose clock is off must never sign with its own.
 *
 * The clock is learnt from what the broker says: the HTTP `Date` of the first answer (also of
 * a refusal), `server_time` of `connected`, and `server_time` of every `pong` (the middle of
 * the ping's round trip). Between samples it runs on the monotonic clock (`performance.now`),
 * so that a device clock that jumps (set by hand, NTP, a resumed laptop) moves nothing.
 */

export class ServerClock {
  /** Server milliseconds at `baseMono`; null until the first sample (the device's clock is used). */
  private baseServer: number | null = null;
  private baseMono = 0;
  /** How far off the last sample may be: a `Date` header is whole seconds, a pong is exact to half its round trip. */
  private uncertaintyMs = Infinity;

  /** Milliseconds on the broker's clock (the device's clock until the first sample). */
  now(): number {
    if (this.baseServer === null) return Date.now();
    return Math.round(this.baseServer + (monotonic() - this.baseMono));
  }

  /** True once the broker's clock was learnt. */
  get synced(): boolean {
    return this.baseServer !== null;
  }

  /**
   * A sample of the broker's clock: `serverMs` was its time `uncertaintyMs` either way of now.
   * A sample coarser than the estimate in hand only moves it when the two disagree.
   */
  sample(serverMs: number, uncertaintyMs: number): void {
    if (!Number.isFinite(serverMs)) return;
    if (this.baseServer !== null && uncertaintyMs > this.uncertaintyMs) {
      // e.g. a `Date` header (whole seconds) after a pong: keep the finer estimate unless it
      // is outside what the coarse sample allows.
      if (Math.abs(this.now() - serverMs) <= uncertaintyMs) return;
    }
    this.baseServer = serverMs;
    this.baseMono = monotonic();
    this.uncertaintyMs = uncertaintyMs;
  }

  /** An HTTP `Date` header: the server's time truncated to the second, taken as its middle. */
  sampleDate(header: string | null | undefined, roundTripMs = 0): boolean {
    if (!header) return false;
    const ms = Date.parse(header);
    if (!Number.isFinite(ms)) return false;
    this.sample(ms + 500, 500 + roundTripMs / 2);
    return true;
  }

  /** `server_time` of a `pong`, whose ping was sent `roundTripMs` ago. */
  samplePong(serverTime: number, roundTripMs: number): void {
    this.sample(serverTime + roundTripMs / 2, roundTripMs / 2 + 1);
  }

  /** Forgets what was learnt: the next request syncs again (after a 1010). */
  forget(): void {
    this.baseServer = null;
    this.uncertaintyMs = Infinity;
  }
}

/** Milliseconds on a clock that never jumps; read at every call (tests replace `performance.now`). */
export function monotonic(): number {
  const p = (globalThis as { performance?: { now(): number } }).performance;
  return p && typeof p.now === "function" ? p.now() : Date.now();
}
