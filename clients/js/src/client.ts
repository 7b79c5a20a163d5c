/**
 * `DanmuClient`: one app client of danmu-broker (docs/protocol.md section 2), for browsers and
 * Node.js. It finds a node (`end_point`), connects, signs every frame with the connection's
 * `online_token` and the broker's clock, keeps the link alive and checks it (a `ping` per
 * `ping_interval`, each with a pong deadline), turns each report into a method whose promise
 * settles with the report's `ack` or `error`, delivers room events as typed events, and
 * reconnects with back-off. After a reconnect it enters the room again with the `last_seq` and
 * `epoch` it saw, retries that re-entry while the broker answers "not now", and says in a
 * `recovery` event whether the broker could replay everything (`recovered: true`) or the app
 * must reload the room from the ack.
 *
 * The life-cycle (states, events, what retries and what does not) is written down in the
 * README's "Life-cycle"; this file follows it. The pure parts live beside it: answer matching
 * in `answers.ts`, back-off in `backoff.ts`, the broker's clock in `clock.ts`, the token cache
 * in `token.ts`, the browser's life-cycle in `lifecycle.ts`, the room position and
 * de-duplication in `position.ts`, the signature in `sign.ts`.
 */
import { AnswerQueue, type Waiting } from "./answers.js";
import { Backoff, type BackoffOptions, type WaitReason } from "./backoff.js";
import { monotonic, ServerClock } from "./clock.js";
import { Emitter } from "./emitter.js";
import { DanmuError, ErrorCodes } from "./errors.js";
import { type FetchLike, isTokenRefusal, requestJson, trimBase } from "./http.js";
import { browserLifecycle, type Lifecycle } from "./lifecycle.js";
import { RoomPosition } from "./position.js";
import {
  type AckFrame,
  type ConnectedFrame,
  type EndPointAnswer,
  type EnterRoomAck,
  type ErrorFrame,
  type GiftReport,
  type KickedFrame,
  type NotifyType,
  type PongFrame,
  ROOM_EVENT_NAMES,
  type RoomEvent,
  type RoomEventMap,
  type RoomEventName,
  type SeatAck,
  type UserInfoAnswer,
} from "./protocol.js";
import { type CallOptions, RoomsApi } from "./rooms.js";
import { frameSign } from "./sign.js";
import { TokenCache, type TokenSource, UnauthorizedError } from "./token.js";

/** What the client needs of a WebSocket: the browser's, Node.js 22's global one, or `ws`'s. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /* eslint-disable @typescript-eslint/no-explicit-any -- each implementation has its own event types */
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  /* eslint-enable @typescript-eslint/no-explicit-any */
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Back-off between connection attempts (`backoff.ts`); every field is optional. */
export type ReconnectOptions = Partial<BackoffOptions>;

export interface DanmuClientOptions {
  /** The broker's HTTP base, e.g. `http://127.0.0.1:8080` or `https://danmu.example.com`. */
  baseUrl: string;
  /** The user the JWT names (its `sub`). */
  userId: string;
  /**
   * The client JWT (HS256, issued by the app's backend), or a function answering the current
   * one. A function's token is cached until shortly before its `exp` or until the broker
   * refuses it; the function answers `null` (or throws `UnauthorizedError`) to say
   * "unauthorized, stop".
   */
  token: TokenSource;
  /** The device session id; default a random one per client. A second connection of the same user_id and sid replaces the first. */
  sid?: string;
  /** Ask for `batch=1` (several events in one frame); default true. Events are delivered one by one either way. */
  batch?: boolean;
  /** The WebSocket class; default `globalThis.WebSocket` (browsers, Node.js 22+). On Node.js 20 pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /** Default the global `fetch`. */
  fetch?: FetchLike;
  /**
   * Default timeout, in milliseconds, of a report (waiting for the connection and the room's
   * re-entry included), of an HTTP call, and of each step of a connection attempt; default 10000.
   */
  requestTimeoutMs?: number;
  /** A `ping` without any frame from the broker for this long means the link is dead; default 10000. */
  pongTimeoutMs?: number;
  /** A connection that stayed up this long resets the back-off; default 5000. */
  stableAfterMs?: number;
  /** Back-off between connection attempts, or `false` not to reconnect. */
  reconnect?: ReconnectOptions | false;
  /** The browser's online/offline and page visibility; default the page's own (none in Node.js); `false` to ignore them. */
  lifecycle?: Lifecycle | false;
}

/**
 * `idle` (not asked to connect yet), `connecting` (the first connection), `connected` (a
 * connection is up and the room's re-entry went out), `reconnecting` (waiting or trying again),
 * `closed` (for good: `close()`, or stopped; a closed client never connects again).
 */
export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

/** Told with every room event. */
export interface EventMeta {
  /**
   * The event came before the ack's snapshot (`seq` <= the ack's `last_seq`): it is a replay
   * after a re-entry, and seats and member counts already include it.
   */
  replayed: boolean;
}

/** Told after the client entered a room with a known position: again after a reconnect, or by `enterRoom(name, from)`. */
export interface RecoveryInfo {
  channel_name: string;
  /** True: every missed event follows (as `replayed` events). False: reload the room from `ack.room`. */
  recovered: boolean;
  /** The room's numbering started again (a new `epoch`): `seq`s seen before mean nothing now. */
  renumbered: boolean;
  /** The ack of the re-entry (absent when it was refused: see `error`). */
  ack?: EnterRoomAck;
  /** Set when the room was refused for good (1001, 1003, 1007: closed, banned, ...): the client is in no room now. */
  error?: DanmuError;
}

export interface DisconnectInfo {
  /** The WebSocket close code (1000 normal, 1006 lost, 1012 shutdown, 1013 too slow, 4000 the client found the link dead, ...). */
  code: number;
  reason: string;
  /** The WebSocket URL that closed, without its query (which holds the token). */
  url: string;
  /** False when the client will not reconnect (closed by the app, kicked as `replaced`). */
  reconnecting: boolean;
  /** When reconnecting: the wait before the next attempt, in milliseconds. */
  retryInMs?: number;
}

type RoomEventListeners = { [K in RoomEventName]: [event: RoomEventMap[K], meta: EventMeta] };

export type DanmuClientEvents = RoomEventListeners & {
  state: [state: ConnectionState];
  /** A connection is up and the room's re-entry (if any) went out: reports sent now follow it. */
  connected: [frame: ConnectedFrame];
  disconnected: [info: DisconnectInfo];
  kicked: [frame: KickedFrame];
  recovery: [info: RecoveryInfo];
  /** Every room event, also of actions this version does not know. */
  event: [event: RoomEvent, meta: EventMeta];
  /**
   * Failures not tied to a report: a failed attempt or `end_point` lookup (retried), a
   * refused re-entry (retried when `error.retryable`), an unreadable frame, stopping for good.
   */
  error: [error: DanmuError];
};

/** What `connect` and `enterRoom` accept besides their own arguments. */
export type WaitOptions = CallOptions;

/** Answers that settle a waiting frame. */
type Answer = AckFrame | PongFrame;

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: DanmuError): void;
}

interface WantedRoom {
  position: RoomPosition;
  /** The app's `enterRoom` promises, settled by the next ack or final refusal of this room. */
  waiters: Set<Waiter<EnterRoomAck>>;
  /** The connection (`connGen`) on which the broker acknowledged the entry; 0: not on this one. */
  enteredOn: number;
  /** An `enter_room_report` is waiting for its answer. */
  inFlight: boolean;
  /** A retry after a refusal that may pass later (1011, 1006, ...). */
  retryTimer: ReturnType<typeof setTimeout> | null;
  /** The app gave up on this entry while it was in flight: leave again if the broker acks it late. */
  leaveOnLateAck: boolean;
}

/** A report waiting to be sent (no connection yet, or the room's re-entry first) or for its answer. */
interface Pending {
  action: string;
  fields: Record<string, unknown>;
  /** Its place in the answer queue once written; null while waiting to be sent. */
  key: number | null;
  /** A 1010 answer was met with a clock resync and the report sent again, once. */
  resent: boolean;
  settle(result: { answer: Answer } | { error: DanmuError }): void;
}

/** Refusals of the room that a retry cannot mend (docs/protocol.md 2.7): the room is dropped. */
const FINAL_ENTER_CODES: ReadonlySet<number> = new Set([
  ErrorCodes.BAD_PARAMETERS,
  ErrorCodes.TOKEN_INVALID,
  ErrorCodes.ROOM_CLOSED,
]);

const OPEN = 1;

export class DanmuClient extends Emitter<DanmuClientEvents> {
  /** The live-room API (docs/protocol.md 3) with the same base URL and token. */
  readonly rooms: RoomsApi;
  readonly userId: string;
  readonly sid: string;

  private readonly base: string;
  private readonly tokens: TokenCache;
  private readonly batch: boolean;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly fetchFn: FetchLike;
  private readonly requestTimeoutMs: number;
  private readonly pongTimeoutMs: number;
  private readonly stableAfterMs: number;
  private readonly reconnects: boolean;
  private readonly maxDelayMs: number;
  private readonly backoff: Backoff;
  /** Back-off of the room's re-entry on one connection (1011, 1006, ...). */
  private readonly roomBackoff: Backoff;
  private readonly clock = new ServerClock();
  private readonly lifecycle: Lifecycle | null;
  private stopWatching: (() => void) | null = null;

  private currentState: ConnectionState = "idle";
  /** The app wants a connection (connect, enterRoom) and nothing stopped it. */
  private wantOnline = false;
  /** Bumped for every attempt: late callbacks of an older attempt see a different number. */
  private attemptGen = 0;
  private attemptAbort: AbortController | null = null;
  /** Bumped for every connection that said `connected`. */
  private connGen = 0;
  private ws: WebSocketLike | null = null;
  /** The URL of the current (or last) socket, without its query. */
  private socketUrl = "";
  private onlineToken: string | null = null;
  private pingIntervalS = 15;
  private connectedAt: number | null = null;
  private lastFrameAt = 0;
  private replaced = false;
  /** `retry_after_ms` of the `kicked` frame before the close, when the broker gave one. */
  private kickedRetryAfterMs: number | undefined;
  /** The last attempt's end_point answered 1010 and was retried at once after the clock resync. */
  private resyncedAttempt = false;
  private lastConnected: ConnectedFrame | null = null;
  private pingTimer: ReturnType<typeof setTimeout> | null = null;
  private pongTimer: ReturnType<typeof setTimeout> | null = null;
  private openTimer: ReturnType<typeof setTimeout> | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private probeTimer: ReturnType<typeof setTimeout> | null = null;
  private stableTimer: ReturnType<typeof setTimeout> | null = null;
  private resyncing: Promise<void> | null = null;
  private readonly connectWaiters = new Set<Waiter<ConnectedFrame>>();
  private readonly answers = new AnswerQueue<Answer>();
  /** Reports waiting for a connection, or for the room's re-entry. */
  private outbox: Pending[] = [];
  private room: WantedRoom | null = null;

  constructor(options: DanmuClientOptions) {
    super();
    this.base = trimBase(options.baseUrl);
    this.userId = String(options.userId);
    this.tokens = new TokenCache(options.token, () => this.clock.now());
    this.sid = options.sid ?? randomHex(16);
    this.batch = options.batch ?? true;
    this.WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.fetchFn = options.fetch ?? ((input, init) => fetch(input, init));
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.pongTimeoutMs = options.pongTimeoutMs ?? 10_000;
    this.stableAfterMs = options.stableAfterMs ?? 5_000;
    this.reconnects = options.reconnect !== false;
    const backoffOptions = options.reconnect === false ? {} : (options.reconnect ?? {});
    this.backoff = new Backoff(backoffOptions);
    this.roomBackoff = new Backoff(backoffOptions);
    this.maxDelayMs = this.backoff.maxDelayMs;
    this.lifecycle = options.lifecycle === false ? null : (options.lifecycle ?? browserLifecycle());
    this.rooms = new RoomsApi({ baseUrl: this.base, token: options.token, fetch: this.fetchFn, timeoutMs: this.requestTimeoutMs }, this.tokens);
  }

  // ------------------------------------------------------------ connection

  get state(): ConnectionState {
    return this.currentState;
  }

  /** The room the client is in (or entering), else null. */
  get channelName(): string | null {
    return this.room?.position.channel_name ?? null;
  }

  /** The position in the current room: what a re-entry would send, e.g. to keep across a page reload. */
  get position(): { channel_name: string; last_seq: number; epoch?: string } | null {
    const p = this.room?.position;
    if (!p) return null;
    return p.epoch === undefined
      ? { channel_name: p.channel_name, last_seq: p.lastSeq }
      : { channel_name: p.channel_name, last_seq: p.lastSeq, epoch: p.epoch };
  }

  /** Milliseconds on the broker's clock, as the client learnt it (the device's until then). */
  serverNow(): number {
    return this.clock.now();
  }

  /**
   * Connects, and stays connected (reconnecting with back-off) until `close()`. Resolves with
   * the `connected` frame once a connection is up and the room's re-entry went out. Rejects
   * when the client stops for good (token refused, `close()`), or when `timeoutMs` passes or
   * `signal` aborts: those end the wait only; the client keeps trying (call `close()` to stop).
   */
  connect(options: WaitOptions = {}): Promise<ConnectedFrame> {
    if (this.currentState === "closed") return Promise.reject(closedError("connect"));
    if (this.currentState === "connected" && this.lastConnected) return Promise.resolve(this.lastConnected);
    const done = this.wait(this.connectWaiters, "connect", options, () => {});
    this.goOnline();
    return done;
  }

  /**
   * Closes the connection for good: no reconnect, ever; waiting reports and `enterRoom`s fail
   * with `closed`, and so does every later call. Make a new client to connect again.
   */
  close(): void {
    if (this.currentState === "closed") return;
    this.stop(closedError(""));
  }

  /** Starts wanting a connection (once): the first attempt at once. */
  private goOnline(): void {
    if (this.wantOnline) return;
    this.wantOnline = true;
    this.replaced = false;
    this.backoff.reset();
    if (this.lifecycle && !this.stopWatching) {
      this.stopWatching = this.lifecycle.watch({
        online: () => this.onNetworkBack(),
        offline: () => this.checkLink(),
        visible: () => this.onNetworkBack(),
        hidden: () => {},
      });
    }
    void this.attempt();
  }

  /** The network or the page came back: try at once instead of waiting out the back-off; check a live link. */
  private onNetworkBack(): void {
    if (!this.wantOnline) return;
    if (this.ws) this.checkLink();
    else if (this.reconnectTimer !== null) void this.attempt();
  }

  private async attempt(): Promise<void> {
    const gen = ++this.attemptGen;
    this.clearTimer("reconnectTimer");
    this.attemptAbort?.abort();
    const abort = new AbortController();
    this.attemptAbort = abort;
    this.setState(this.lastConnected ? "reconnecting" : "connecting");
    let token: string;
    try {
      token = await this.tokens.get();
    } catch (e) {
      if (gen !== this.attemptGen) return;
      if (e instanceof UnauthorizedError) {
        this.stop(new DanmuError("unauthorized", "token", e.message, ErrorCodes.TOKEN_INVALID), true);
        return;
      }
      this.emit("error", new DanmuError("http", "token", `the token function failed: ${String((e as Error)?.message ?? e)}`));
      this.retryLater({});
      return;
    }
    if (gen !== this.attemptGen) return;
    let endPoint: EndPointAnswer;
    try {
      endPoint = await requestJson<EndPointAnswer>(this.fetchFn, "GET", `${this.base}/iapi/websocket/end_point?${this.commonParams(token)}`, {
        timeoutMs: this.requestTimeoutMs,
        signal: abort.signal,
        onDate: (date, roundTrip) => this.clock.sampleDate(date, roundTrip),
      });
    } catch (e) {
      if (gen !== this.attemptGen) return;
      const error = e instanceof DanmuError ? e : new DanmuError("http", "end_point", String(e));
      if (isTokenRefusal(error)) {
        this.tokens.refused(token);
        // The same string would be refused again; a function is asked again on the next attempt.
        if (this.tokens.isFixed) {
          this.stop(error, true);
          return;
        }
      } else if (error.error_code === ErrorCodes.TIMESTAMP_OUT_OF_WINDOW && !this.resyncedAttempt) {
        // The answer's Date header has set the clock (onDate): try again at once, once.
        this.resyncedAttempt = true;
        void this.attempt();
        return;
      }
      this.emit("error", error);
      this.retryLater({});
      return;
    }
    this.resyncedAttempt = false;
    if (gen !== this.attemptGen) return;
    const WebSocketImpl = this.WebSocketImpl;
    if (!WebSocketImpl) {
      this.stop(new DanmuError("closed", "connect", "no WebSocket class: pass options.WebSocket (on Node.js 20, `ws`)"), true);
      return;
    }
    if (typeof endPoint.ping_interval === "number" && endPoint.ping_interval > 0) this.pingIntervalS = endPoint.ping_interval;
    const target = endPoint.end_point || this.base.replace(/^http/, "ws") + "/iapi/websocket";
    const url = `${target}${target.includes("?") ? "&" : "?"}${this.commonParams(token)}${this.batch ? "&batch=1" : ""}`;
    let ws: WebSocketLike;
    try {
      ws = new WebSocketImpl(url);
    } catch (e) {
      this.emit("error", new DanmuError("http", "connect", `cannot open ${target}: ${String((e as Error)?.message ?? e)}`));
      this.retryLater({});
      return;
    }
    this.ws = ws;
    this.socketUrl = target;
    this.lastFrameAt = monotonic();
    ws.onmessage = (event: { data: unknown }) => {
      if (this.ws === ws) this.onData(event.data);
    };
    ws.onclose = (event: { code?: number; reason?: string }) => {
      if (this.ws === ws) this.onSocketClosed(event.code ?? 1006, event.reason ?? "");
    };
    ws.onerror = () => {
      /* a close event follows */
    };
    // A socket that opens but never says `connected` is as good as lost.
    this.openTimer = setTimeout(() => {
      if (this.ws === ws && !this.onlineToken) this.linkDead(4000, "no connected frame");
    }, this.requestTimeoutMs);
  }

  private commonParams(token: string): string {
    const q = new URLSearchParams({ user_id: this.userId, sid: this.sid, timestamp: String(this.clock.now()), token });
    return q.toString();
  }

  private onConnected(frame: ConnectedFrame): void {
    this.clearTimer("openTimer");
    this.connGen += 1;
    this.onlineToken = String(frame.online_token);
    if (typeof frame.ping_interval === "number" && frame.ping_interval > 0) this.pingIntervalS = frame.ping_interval;
    if (typeof frame.server_time === "number") this.clock.sample(frame.server_time, 250);
    this.lastConnected = frame;
    this.connectedAt = monotonic();
    this.clearTimer("stableTimer");
    this.stableTimer = setTimeout(() => {
      this.stableTimer = null;
      this.backoff.reset();
    }, this.stableAfterMs);
    // The re-entry goes out first: everything sent from now on (the outbox, the app's reports
    // on `connected`) reaches the broker after it.
    const room = this.room;
    if (room) {
      room.enteredOn = 0;
      this.sendEnter(room);
    }
    this.flushOutbox();
    this.schedulePing(this.pingIntervalS * 1000);
    this.setState("connected");
    this.emit("connected", frame);
    for (const w of [...this.connectWaiters]) w.resolve(frame);
  }

  private onSocketClosed(code: number, reason: string): void {
    const url = this.socketUrl;
    const wasStable = this.connectedAt !== null && monotonic() - this.connectedAt >= this.stableAfterMs;
    const lost = new DanmuError("disconnected", "", `connection to ${url} closed (${code}${reason ? " " + reason : ""})`);
    this.dropSocket(undefined, undefined, lost);
    if (wasStable) this.backoff.reset();
    const retryAfterMs = this.kickedRetryAfterMs;
    this.kickedRetryAfterMs = undefined;
    if (!this.wantOnline) {
      this.emit("disconnected", { code, reason, url, reconnecting: false });
      return;
    }
    if (this.replaced) {
      this.emit("disconnected", { code, reason, url, reconnecting: false });
      this.stop(new DanmuError("closed", "", "replaced by another connection of this user_id and sid"), true);
      return;
    }
    if (!this.reconnects) {
      this.emit("disconnected", { code, reason, url, reconnecting: false });
      this.stop(new DanmuError("closed", "", `connection closed (${code}) and reconnect is off`), true);
      return;
    }
    const why: WaitReason = retryAfterMs === undefined ? { closeCode: code } : { closeCode: code, retryAfterMs };
    const delay = this.waitFor(this.backoff.delayAfter(why));
    this.emit("disconnected", { code, reason, url, reconnecting: true, retryInMs: delay });
    this.scheduleAttempt(delay);
  }

  /** The link is taken as dead (no pong, no `connected`, an unanswered re-entry): close it and reconnect. */
  private linkDead(code: number, reason: string): void {
    if (!this.ws) return;
    this.dropSocket(code, reason);
    this.onSocketClosed(code, reason);
  }

  /** Forgets the socket (its late events are ignored), closes it, fails the frames waiting for answers. */
  private dropSocket(code?: number, reason?: string, error?: DanmuError): void {
    const ws = this.ws;
    this.ws = null;
    this.onlineToken = null;
    this.connectedAt = null;
    for (const t of ["openTimer", "probeTimer", "pingTimer", "pongTimer", "stableTimer"] as const) this.clearTimer(t);
    if (this.room) {
      this.clearRoomRetry(this.room);
      this.room.enteredOn = 0;
      this.room.inFlight = false;
    }
    if (ws) {
      ws.onmessage = ws.onclose = ws.onopen = null;
      ws.onerror = () => {};
      try {
        ws.close(code ?? 1000, reason);
      } catch {
        /* already closed */
      }
    }
    const failure = error ?? new DanmuError("disconnected", "", "connection closed");
    for (const w of this.answers.drain()) w.reject(failure);
  }

  /** A failed attempt (no connection made): wait, then try again. */
  private retryLater(why: WaitReason): void {
    if (!this.wantOnline) return;
    if (!this.reconnects) {
      this.stop(new DanmuError("closed", "connect", "connection failed and reconnect is off"), true);
      return;
    }
    this.scheduleAttempt(this.waitFor(this.backoff.delayAfter(why)));
  }

  /** While the device says it is offline, wait at least the longest delay; `online` tries at once. */
  private waitFor(delay: number): number {
    return this.lifecycle && !this.lifecycle.isOnline() ? Math.max(delay, this.maxDelayMs) : delay;
  }

  private scheduleAttempt(delay: number): void {
    this.clearTimer("reconnectTimer");
    this.setState("reconnecting");
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.attempt();
    }, delay);
  }

  /** Stops for good (`close()`, or a reason to stop): no more attempts; everything waiting is told. */
  private stop(error: DanmuError, tellApp = false): void {
    this.wantOnline = false;
    this.attemptGen += 1;
    this.attemptAbort?.abort();
    this.attemptAbort = null;
    this.clearTimer("reconnectTimer");
    this.stopWatching?.();
    this.stopWatching = null;
    const room = this.room;
    this.room = null;
    this.dropSocket(1000, tellApp ? "stopped" : "closed by client", error);
    for (const w of [...this.connectWaiters]) w.reject(error);
    if (room) {
      this.clearRoomRetry(room);
      for (const w of [...room.waiters]) w.reject(error);
    }
    for (const p of this.outbox.splice(0)) p.settle({ error });
    if (tellApp) this.emit("error", error);
    this.setState("closed");
  }

  private setState(state: ConnectionState): void {
    if (state === this.currentState || this.currentState === "closed") return;
    this.currentState = state;
    this.emit("state", state);
  }

  private clearTimer(name: "openTimer" | "reconnectTimer" | "probeTimer" | "pingTimer" | "pongTimer" | "stableTimer"): void {
    const t = this[name];
    if (t !== null) clearTimeout(t);
    this[name] = null;
  }

  /**
   * Waits in `set` for a value, bounded by `options`: on timeout or abort the waiter leaves the
   * set, `onGiveUp` runs, and the promise rejects.
   */
  private wait<T>(set: Set<Waiter<T>>, what: string, options: WaitOptions, onGiveUp: () => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const { signal, timeoutMs } = options;
      if (signal?.aborted) {
        reject(new DanmuError("aborted", what, "cancelled"));
        return;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = () => {
        set.delete(waiter);
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const giveUp = (error: DanmuError) => {
        finish();
        onGiveUp();
        reject(error);
      };
      const onAbort = () => giveUp(new DanmuError("aborted", what, "cancelled"));
      const waiter: Waiter<T> = {
        resolve: (value) => {
          finish();
          resolve(value);
        },
        reject: (error) => {
          finish();
          reject(error);
        },
      };
      set.add(waiter);
      if (timeoutMs !== undefined) timer = setTimeout(() => giveUp(new DanmuError("timeout", what, `not done in ${timeoutMs} ms`)), timeoutMs);
      signal?.addEventListener("abort", onAbort);
    });
  }

  // ------------------------------------------------------------ heartbeat and clock

  /**
   * The next heartbeat `ping` in `delayMs`. The timer is set when the previous `pong` arrives
   * (a network task), not by `setInterval`: browsers throttle chains of timers in hidden tabs
   * down to one wake-up a minute (Chrome's intensive throttling, after 5 minutes hidden), but
   * not a timer that a network event set. See the README's "Hidden tabs".
   */
  private schedulePing(delayMs: number): void {
    this.clearTimer("pingTimer");
    this.pingTimer = setTimeout(() => {
      this.pingTimer = null;
      this.heartbeat();
    }, delayMs);
  }

  /** Sends a `ping` now (unless one is waiting) with a deadline for any answer of the broker. */
  private heartbeat(): void {
    if (!this.ws || !this.onlineToken || this.pongTimer !== null) return;
    this.clearTimer("pingTimer");
    const sentAt = monotonic();
    const key = this.sendFrame("ping", {}, {
      action: "ping",
      resolve: (answer) => {
        this.clearTimer("pongTimer");
        const pong = answer as PongFrame;
        if (typeof pong.server_time === "number") this.clock.samplePong(pong.server_time, monotonic() - sentAt);
        this.schedulePing(Math.max(0, this.pingIntervalS * 1000 - (monotonic() - sentAt)));
      },
      reject: () => {},
    });
    if (key === null) return;
    this.pongTimer = setTimeout(() => {
      this.pongTimer = null;
      // Any frame since the ping is life (the rate limit may have dropped the ping itself).
      if (this.lastFrameAt >= sentAt) this.schedulePing(Math.max(0, this.pingIntervalS * 1000 - (monotonic() - sentAt)));
      else this.linkDead(4000, `no answer to ping in ${this.pongTimeoutMs} ms`);
    }, this.pongTimeoutMs);
  }

  /** The network or the page came back, or went away: check the link now rather than at the next heartbeat. */
  private checkLink(): void {
    if (this.ws && this.onlineToken) this.heartbeat();
  }

  /**
   * After a 1010: learn the broker's clock again from the `Date` of an `end_point` answer
   * (a ping would be refused the same way). Concurrent callers share one request.
   */
  private resyncClock(): Promise<void> {
    if (this.resyncing) return this.resyncing;
    this.clock.forget();
    const run = (async () => {
      try {
        const token = await this.tokens.get();
        await requestJson(this.fetchFn, "GET", `${this.base}/iapi/websocket/end_point?${this.commonParams(token)}`, {
          timeoutMs: this.requestTimeoutMs,
          onDate: (date, roundTrip) => this.clock.sampleDate(date, roundTrip),
        });
      } catch {
        /* a refusal carries the Date too; a failure leaves the device's clock */
      } finally {
        this.resyncing = null;
        this.flushOutbox(); // what waited for the clock goes out now
      }
    })();
    this.resyncing = run;
    return run;
  }

  // ------------------------------------------------------------ frames

  private onData(data: unknown): void {
    this.lastFrameAt = monotonic();
    if (typeof data !== "string") {
      this.emit("error", new DanmuError("http", "frame", "a binary frame (the protocol is JSON text)"));
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      this.emit("error", new DanmuError("http", "frame", `not JSON: ${data.slice(0, 100)}`));
      return;
    }
    // batch=1: several room events in one frame, in seq order.
    if (Array.isArray(parsed)) parsed.forEach((f) => this.onFrame(f));
    else this.onFrame(parsed);
  }

  private onFrame(frame: unknown): void {
    if (!frame || typeof frame !== "object") return;
    const f = frame as { action?: unknown };
    switch (f.action) {
      case "connected":
        return this.onConnected(frame as ConnectedFrame);
      case "pong":
        return this.onAnswer("ping", frame as PongFrame);
      case "ack":
        return this.onAnswer(String((frame as AckFrame).for ?? ""), frame as AckFrame);
      case "error":
        return this.onErrorFrame(frame as ErrorFrame);
      case "kicked":
        return this.onKicked(frame as KickedFrame);
      default:
        if (typeof f.action === "string") this.onRoomEvent(frame as RoomEvent);
    }
  }

  private onAnswer(action: string, answer: Answer): void {
    const found = this.answers.take(action);
    if (!found) return; // an answer to nothing we sent on this connection
    found.dropped.forEach((w) => w.reject(droppedError(w.action)));
    found.entry?.resolve(answer); // null: a placeholder, its caller gave up; the answer is dropped
  }

  private onErrorFrame(frame: ErrorFrame): void {
    const code = Number(frame.error_code) || 0;
    const forAction = String(frame.for ?? "");
    const reason = String(frame.error_reason ?? "error");
    if (code === ErrorCodes.TIMESTAMP_OUT_OF_WINDOW) void this.resyncClock();
    if (forAction === "") {
      // Rate limited (or unreadable): it answers the oldest frame still waiting.
      const found = this.answers.takeOldest();
      if (found?.entry) found.entry.reject(new DanmuError("refused", found.entry.action, reason, code));
      else if (!found) this.emit("error", new DanmuError("refused", "", reason, code));
      if (code === ErrorCodes.RATE_LIMITED) this.probeAfterRateLimit();
      return;
    }
    const found = this.answers.take(forAction);
    const error = new DanmuError("refused", forAction, reason, code);
    if (!found) {
      this.emit("error", error);
      return;
    }
    found.dropped.forEach((w) => w.reject(droppedError(w.action)));
    found.entry?.reject(error);
  }

  /**
   * After a 1006 the broker drops further frames without answering for a while. A `ping` a
   * second later (when the bucket has refilled) is answered, and its `pong` settles every
   * frame sent before it that is still waiting as dropped, instead of leaving them to time out.
   */
  private probeAfterRateLimit(): void {
    if (this.probeTimer !== null) return;
    const ws = this.ws;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = null;
      if (this.ws === ws && this.answers.waiting > 0) this.sendFrame("ping", {}, { action: "ping", resolve: () => {}, reject: () => {} });
    }, 1100);
  }

  private onKicked(frame: KickedFrame): void {
    // `replaced`: this user_id and sid connected elsewhere: reconnecting would kick that one.
    if (frame.reason === "replaced") this.replaced = true;
    const after = Number(frame.retry_after_ms);
    if (frame.retry_after_ms !== undefined && Number.isFinite(after) && after >= 0) this.kickedRetryAfterMs = after;
    this.emit("kicked", frame);
  }

  private onRoomEvent(event: RoomEvent): void {
    let meta: EventMeta = { replayed: false };
    if (typeof event.seq === "number") {
      const room = this.room;
      // A numbered event of another room (the one just left) is not for the app any more.
      if (!room || (event.channel_name !== undefined && String(event.channel_name) !== room.position.channel_name)) return;
      const verdict = room.position.accept(event.seq);
      if (!verdict.deliver) return;
      meta = { replayed: verdict.replayed };
    }
    this.emit("event", event, meta);
    if ((ROOM_EVENT_NAMES as readonly string[]).includes(event.action)) {
      (this.emit as (name: string, e: RoomEvent, m: EventMeta) => void)(event.action, event, meta);
    }
  }

  /** Writes one signed frame; `waiting` is settled by its answer. Its key in the answer queue, or null when not connected. */
  private sendFrame(action: string, fields: Record<string, unknown>, waiting: Waiting<Answer>): number | null {
    const ws = this.ws;
    const onlineToken = this.onlineToken;
    if (!ws || ws.readyState !== OPEN || !onlineToken) return null;
    const timestamp = this.clock.now();
    const frame: Record<string, unknown> = {
      action,
      online_token: onlineToken,
      sid: this.sid,
      timestamp,
      sign: frameSign(action, onlineToken, this.sid, timestamp),
    };
    for (const [k, v] of Object.entries(fields)) if (!(k in frame) && v !== undefined) frame[k] = v;
    const key = this.answers.add(waiting);
    try {
      ws.send(JSON.stringify(frame));
    } catch (e) {
      this.answers.remove(key);
      waiting.reject(new DanmuError("disconnected", action, String((e as Error)?.message ?? e)));
    }
    return key;
  }

  // ------------------------------------------------------------ reports

  /**
   * Sends a report; resolves with its `ack`, rejects with the `error` (or timeout, disconnect).
   * While the client is connecting or reconnecting, the report waits (up to its timeout) for
   * the connection and for the room's re-entry, then goes out. A 1010 answer resyncs the clock
   * and sends it again once. `timeoutMs` (default `requestTimeoutMs`) and `signal` bound it: a
   * report not yet sent is then never sent; one already sent keeps its place, and its late
   * answer is dropped.
   */
  report<T extends AckFrame = AckFrame>(action: string, fields: Record<string, unknown> = {}, options: CallOptions = {}): Promise<T> {
    if (this.currentState === "closed") return Promise.reject(closedError(action));
    if (!this.wantOnline) return Promise.reject(new DanmuError("not_connected", action, "not connected: call connect() or enterRoom() first"));
    if (options.signal?.aborted) return Promise.reject(new DanmuError("aborted", action, "cancelled"));
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const onAbort = () => giveUp(new DanmuError("aborted", action, "cancelled"));
      const timer = setTimeout(() => {
        const why = pending.key === null ? `not sent in ${timeoutMs} ms (no connection)` : `no answer in ${timeoutMs} ms`;
        giveUp(new DanmuError("timeout", action, why));
      }, timeoutMs);
      const pending: Pending = {
        action,
        fields,
        key: null,
        resent: false,
        settle: (result) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          options.signal?.removeEventListener("abort", onAbort);
          if ("answer" in result) resolve(result.answer as T);
          else reject(result.error);
        },
      };
      const giveUp = (error: DanmuError) => {
        if (done) return;
        if (pending.key !== null) this.answers.abandon(pending.key);
        else this.outbox = this.outbox.filter((p) => p !== pending);
        pending.settle({ error });
      };
      options.signal?.addEventListener("abort", onAbort);
      if (this.canSend(action)) this.write(pending);
      else this.outbox.push(pending);
    });
  }

  /** A report may go out now: connected, and (but for `ping`) the room's re-entry acknowledged. */
  private canSend(action: string): boolean {
    if (!this.ws || !this.onlineToken) return false;
    if (action === "ping") return true;
    const room = this.room;
    return !room || room.enteredOn === this.connGen;
  }

  private write(pending: Pending): void {
    const key = this.sendFrame(pending.action, pending.fields, {
      action: pending.action,
      resolve: (answer) => pending.settle({ answer }),
      reject: (error) => {
        const e = error as DanmuError;
        if (e.kind === "refused" && e.error_code === ErrorCodes.TIMESTAMP_OUT_OF_WINDOW && !pending.resent) {
          // Refused for the clock alone (nothing was done): resync and send it again, once.
          pending.resent = true;
          pending.key = null;
          this.outbox.push(pending);
          void this.resyncClock();
          return;
        }
        pending.settle({ error: e });
      },
    });
    if (key === null) this.outbox.push(pending);
    else pending.key = key;
  }

  /** Sends the reports that may go out now, in the order they were made. */
  private flushOutbox(): void {
    if (this.resyncing) return; // sent once the clock is known again
    const waiting = this.outbox;
    this.outbox = [];
    for (const p of waiting) {
      if (this.canSend(p.action)) this.write(p);
      else this.outbox.push(p);
    }
  }

  /** `ping`: resolves with the `pong` (the client also pings by itself at `ping_interval`). */
  ping(options: CallOptions = {}): Promise<PongFrame> {
    return this.report("ping", {}, options) as unknown as Promise<PongFrame>;
  }

  /**
   * `enter_room_report`: joins `channel_name` (leaving any other room) and stays in it across
   * reconnects. Pass `from` (a `position` kept from before) to recover from there; the ack then
   * says `recovered`. Connects first when the client is not connected, and waits for the
   * connection. Refusals that may pass (1011 store unavailable, 1006, 1010, a timeout) are
   * retried with back-off, each told in an `error` event; 1001, 1003 and 1007 reject (and, for
   * a re-entry, are told in a `recovery` event with `error`). `timeoutMs` and `signal` bound
   * the wait: when either ends it before the ack, the client stops entering the room.
   */
  enterRoom(channel_name: string, from?: { last_seq?: number; epoch?: string }, options: WaitOptions = {}): Promise<EnterRoomAck> {
    if (this.currentState === "closed") return Promise.reject(closedError("enter_room_report"));
    const previous = this.room;
    const room: WantedRoom = {
      position: new RoomPosition(String(channel_name), from),
      waiters: new Set(),
      enteredOn: 0,
      inFlight: false,
      retryTimer: null,
      leaveOnLateAck: false,
    };
    this.room = room;
    if (previous) {
      this.clearRoomRetry(previous);
      const instead = new DanmuError("closed", "enter_room_report", `entering ${channel_name} instead`);
      for (const w of [...previous.waiters]) w.reject(instead);
    }
    const entered = this.wait(room.waiters, "enter_room_report", options, () => {
      // The app stopped waiting before the ack: stop entering this room.
      if (this.room !== room) return;
      this.room = null;
      this.clearRoomRetry(room);
      room.leaveOnLateAck = room.inFlight;
      this.flushOutbox();
    });
    if (this.onlineToken) this.sendEnter(room);
    else this.goOnline();
    return entered;
  }

  /**
   * Sends the `enter_room_report` of `room`, with `last_seq`/`epoch` when its position is known
   * (a re-entry after a reconnect, or `enterRoom` with `from`): its outcome is then told in a
   * `recovery` event, with the client's own verdict on `recovered` (the epoch check).
   */
  private sendEnter(room: WantedRoom): void {
    this.clearRoomRetry(room);
    const recovering = room.position.known;
    const sent = room.position.enterFields();
    const channel_name = room.position.channel_name;
    const conn = this.connGen;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waiting: Waiting<Answer> = {
      action: "enter_room_report",
      // Settled synchronously, before the frames that follow the ack (the replay) are read.
      resolve: (answer) => {
        clearTimeout(timer);
        room.inFlight = false;
        if (this.room !== room) {
          // The app gave up on this entry, and the broker took it after all: leave again.
          if (room.leaveOnLateAck && this.room === null && conn === this.connGen) {
            this.sendFrame("exit_room_report", { user_id: this.userId, channel_name }, { action: "exit_room_report", resolve: () => {}, reject: () => {} });
          }
          return;
        }
        const ack = answer as EnterRoomAck;
        room.enteredOn = conn;
        this.roomBackoff.reset();
        const outcome = room.position.entered(ack, sent);
        for (const w of [...room.waiters]) w.resolve(ack);
        if (recovering) this.emit("recovery", { channel_name, recovered: outcome.recovered, renumbered: outcome.renumbered, ack });
        this.flushOutbox();
      },
      reject: (error) => {
        clearTimeout(timer);
        room.inFlight = false;
        if (this.room !== room) return;
        this.onEnterRefused(room, error as DanmuError, recovering, conn);
      },
    };
    if (this.sendFrame("enter_room_report", { channel_name, ...sent }, waiting) === null) return; // onConnected sends it
    room.inFlight = true;
    timer = setTimeout(() => {
      // No answer: the broker answers a connection's frames in order, so nothing sent after it
      // would be answered either. Start a new connection, which enters again.
      if (this.room === room && room.inFlight && conn === this.connGen) this.linkDead(4000, "enter_room_report timed out");
    }, this.requestTimeoutMs);
  }

  private onEnterRefused(room: WantedRoom, error: DanmuError, recovering: boolean, conn: number): void {
    if (error.kind === "disconnected" || error.kind === "not_connected") return; // the next connection enters again
    const channel_name = room.position.channel_name;
    if (error.kind !== "refused" || FINAL_ENTER_CODES.has(error.error_code)) {
      this.room = null;
      for (const w of [...room.waiters]) w.reject(error);
      if (recovering) this.emit("recovery", { channel_name, recovered: false, renumbered: false, error });
      this.emit("error", error);
      this.flushOutbox(); // the reports that waited for this room get their own answers
      return;
    }
    // Not now (1011 store unreachable, 1006, 1010, ...): the room is kept, and tried again.
    this.emit("error", error);
    const delay = error.error_code === ErrorCodes.TIMESTAMP_OUT_OF_WINDOW ? 0 : this.roomBackoff.next();
    const again = () => {
      room.retryTimer = null;
      if (this.room === room && conn === this.connGen && this.onlineToken) this.sendEnter(room);
    };
    if (delay === 0) void this.resyncClock().then(again);
    else room.retryTimer = setTimeout(again, delay);
  }

  private clearRoomRetry(room: WantedRoom): void {
    if (room.retryTimer !== null) clearTimeout(room.retryTimer);
    room.retryTimer = null;
  }

  /**
   * `exit_room_report` for oneself: leaves the current room (the seat is freed, the others get
   * `exit_room`); the client stops re-entering it. Resolves with null when the broker has the
   * client in no room (not connected, or the room not entered on this connection): there is
   * nothing to leave.
   */
  exitRoom(options: CallOptions = {}): Promise<AckFrame | null> {
    const room = this.room;
    this.room = null;
    if (room) {
      this.clearRoomRetry(room);
      const left = new DanmuError("closed", "enter_room_report", "left the room");
      for (const w of [...room.waiters]) w.reject(left);
    }
    const onBroker = room !== null && this.onlineToken !== null && (room.enteredOn === this.connGen || room.inFlight);
    this.flushOutbox();
    if (!onBroker) return Promise.resolve(null);
    return this.report("exit_room_report", { user_id: this.userId, channel_name: room.position.channel_name }, options);
  }

  /**
   * `exit_room_report` for another user: the relay acknowledgement of seed 001 2.4 (the broker
   * already told every member; it records the report).
   */
  relayExit(user_id: string, options?: CallOptions): Promise<AckFrame> {
    return this.report("exit_room_report", { user_id: String(user_id), channel_name: this.channelName ?? "" }, options);
  }

  /** `send_topic_msg_report`: a chat message to the room (1 to `client.max_content_chars` characters). The ack has its `seq`. */
  sendTopicMsg(content: string, channel_name?: string, options?: CallOptions): Promise<AckFrame & { seq: number }> {
    return this.report("send_topic_msg_report", { channel_name: channel_name ?? this.channelName ?? "", content }, options);
  }

  /** `send_gift_report`: `bc` to every member (the ack has its `seq`), `ptp` to `gift.receiver_id` only. */
  sendGift(gift: GiftReport, notify_type: NotifyType = "bc", channel_name?: string, options?: CallOptions): Promise<AckFrame> {
    return this.report("send_gift_report", { channel_name: channel_name ?? this.channelName ?? "", notify_type, gift }, options);
  }

  /** `up_report`: takes seat `seat_id` (without: the held seat, else the lowest free one). A taken seat fails with 1005. */
  up(seat_id?: number, channel_name?: string, options?: CallOptions): Promise<SeatAck> {
    return this.report("up_report", { channel_name: channel_name ?? this.channelName ?? "", seat_id }, options);
  }

  /** `down_report`: frees the caller's seat (1004 when it holds none). */
  down(channel_name?: string, options?: CallOptions): Promise<SeatAck> {
    return this.report("down_report", { channel_name: channel_name ?? this.channelName ?? "" }, options);
  }

  /** `hang_up_report`: ends a 1:1 call; `receiver_id` gets `hang_up` (without: every other user of the call). */
  hangUp(receiver_id?: string, options?: CallOptions): Promise<AckFrame> {
    return this.report("hang_up_report", receiver_id === undefined ? {} : { receiver_id: String(receiver_id) }, options);
  }

  // ------------------------------------------------------------ HTTP

  /** `GET /iapi/user/info`: the channel the broker has this user in (`""` when none). */
  async userInfo(options: CallOptions = {}): Promise<UserInfoAnswer> {
    let token: string;
    try {
      token = await this.tokens.get();
    } catch (e) {
      if (e instanceof UnauthorizedError) throw new DanmuError("unauthorized", "user/info", e.message, ErrorCodes.TOKEN_INVALID);
      throw new DanmuError("http", "user/info", `the token function failed: ${String((e as Error)?.message ?? e)}`);
    }
    const q = new URLSearchParams({ user_id: this.userId, token });
    try {
      return await requestJson<UserInfoAnswer>(this.fetchFn, "GET", `${this.base}/iapi/user/info?${q}`, {
        timeoutMs: options.timeoutMs ?? this.requestTimeoutMs,
        signal: options.signal,
      });
    } catch (e) {
      if (isTokenRefusal(e)) this.tokens.refused(token);
      throw e;
    }
  }
}

function closedError(forWhat: string): DanmuError {
  return new DanmuError("closed", forWhat, "the client was closed");
}

function droppedError(action: string): DanmuError {
  return new DanmuError("refused", action, "no answer: the broker dropped the frame (rate limited)", ErrorCodes.RATE_LIMITED);
}

function randomHex(bytes: number): string {
  const a = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
}
