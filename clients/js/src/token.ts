/**
 * The client JWT (docs/protocol.md 2.1): a string, or a function the app gives that answers
 * the current one (from its own backend). `TokenCache` asks the function only when it must:
 * once, then again when the cached token is within a margin of its `exp` claim, or after the
 * broker refused it (401 / 1003). So a client that reconnects ten times does not ask the
 * app's backend ten times.
 *
 * The function can say "unauthorized, stop" by answering `null` or throwing
 * `UnauthorizedError`: the client then stops for good instead of retrying a login that cannot
 * succeed. A function that answers the very token the broker just refused is taken as the same
 * answer. Any other failure of the function is transient: the client tries again later.
 */

/** A JWT, or a function answering the current one (`null`: the user is not authorized, stop). */
export type TokenSource = string | (() => string | null | Promise<string | null>);

/** Thrown by a token function to say "unauthorized, stop": the client stops trying. */
export class UnauthorizedError extends Error {
  override readonly name = "UnauthorizedError";
}

/** Ask for a new token this long before its `exp`. */
const EXPIRY_MARGIN_MS = 30_000;

export class TokenCache {
  private readonly source: TokenSource;
  private readonly now: () => number;
  private cached: { token: string; expiresAt: number } | null = null;
  private pending: Promise<string> | null = null;
  /** The last token the broker refused: the same one again means stop. */
  private refusedToken: string | null = null;

  /** `now` is the broker's clock in milliseconds (a token's `exp` is on the issuer's). */
  constructor(source: TokenSource, now: () => number = Date.now) {
    this.source = source;
    this.now = now;
  }

  /** True for a fixed string: a refusal cannot be mended by asking again. */
  get isFixed(): boolean {
    return typeof this.source === "string";
  }

  /**
   * The token to use now: the cached one while it is valid, else a new one from the source.
   * Rejects with `UnauthorizedError` when the source says stop (or answers the token just
   * refused), and with the source's own error when it failed.
   */
  get(): Promise<string> {
    const source = this.source;
    if (typeof source === "string") {
      if (this.refusedToken === source) return Promise.reject(new UnauthorizedError("the token was refused"));
      return Promise.resolve(source);
    }
    if (this.cached && this.now() < this.cached.expiresAt) return Promise.resolve(this.cached.token);
    if (this.pending) return this.pending;
    const asked = this.ask(source);
    this.pending = asked;
    const done = () => {
      if (this.pending === asked) this.pending = null;
    };
    asked.then(done, done);
    return asked;
  }

  private async ask(source: () => string | null | Promise<string | null>): Promise<string> {
    const token = await source();
    if (token === null || token === undefined || token === "") {
      throw new UnauthorizedError("the token function answered no token");
    }
    if (typeof token !== "string") throw new Error("the token function answered something other than a string");
    if (token === this.refusedToken) {
      throw new UnauthorizedError("the token function answered the token the broker just refused");
    }
    this.cached = { token, expiresAt: expiryOf(token) - EXPIRY_MARGIN_MS };
    return token;
  }

  /** The broker refused `token` (401 / 1003): forget it; the next `get()` asks again. */
  refused(token: string): void {
    this.refusedToken = token;
    if (this.cached?.token === token) this.cached = null;
  }
}

/** The `exp` claim of a JWT in milliseconds, or +Infinity when it has none or cannot be read. */
export function expiryOf(token: string): number {
  const payload = token.split(".")[1];
  if (!payload) return Infinity;
  try {
    const json = decodeBase64Url(payload);
    const claims = JSON.parse(json) as { exp?: unknown };
    return typeof claims.exp === "number" && Number.isFinite(claims.exp) ? claims.exp * 1000 : Infinity;
  } catch {
    return Infinity;
  }
}

function decodeBase64Url(text: string): string {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  const binary = atob(b64);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}
