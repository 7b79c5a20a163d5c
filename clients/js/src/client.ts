/**
 * `DanmuClient`: one app client of danmu-broker (PROTOCOL.md section 2), for browsers and
 * Node.js. It finds a node (`end_point`), connects, signs every frame with the connection's
 * `online_token`, sends `ping` at the server's `ping_interval`, turns each report into a
 * method whose promise settles with the report's `ack` or `error`, delivers room events as
 * typed events, and reconnects with back-off. After a reconnect it enters the room again with
 * the `last_seq` and `epoch` it saw, and says in a `recovery` event whether the broker could
 * replay everything (`recovered: true`) or the app must reload the room from the ack.
 *
 * The pure parts live beside it: answer matching in `answers.ts`, the room position and
 * de-duplication in `position.ts`, the signature in `sign.ts`.
 */
import { AnswerQueue, type Waiting } from "./answers.js";
import { Emitter } from "./emitter.js";
import { DanmuError } from "./errors.js";
import { type FetchLike, type TokenSource, requestJson, tokenOf, trimBase } from "./http.js";
import { RoomPosition } from "./position.js";
import {
  type AckFrame,
  type ConnectedFrame,
  type EndPointAnswer,
  type EnterRoomAck,
  type ErrorFrame,
  ErrorCodes,
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
import { RoomsApi } from "./rooms.js";
import { frameSign } from "./sign.js";

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

export interface ReconnectOptions {
  /** First delay after a lost connection; default 500 ms. */
  minDelayMs?: number;
  /** The delay doubles after each failed attempt up to this; default 10000 ms. */
  maxDelayMs?: number;
}

export interface DanmuClientOptions {
  /** The broker's HTTP base, e.g. `http://127.0.0.1:8080` or `https://danmu.example.com`. */
  baseUrl: string;
  /** The user the JWT names (its `sub`). */
  userId: string;
  /** The client JWT (HS256, issued by the app's backend), or a function answering the current one; asked before every connection. */
  token: TokenSource;
  /** The device session id; default a random one per client. A second connection of the same user_id and sid replaces the first. */
  sid?: string;
  /** Ask for `batch=1` (several events in one frame); default true. Events are delivered one by one either way. */
  batch?: boolean;
  /** The WebSocket class; default `globalThis.WebSocket` (browsers, Node.js 22+). On Node.js 20 pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /** Default the global `fetch`. */
  fetch?: FetchLike;
  /** Milliseconds before a report without answer fails with `timeout`; default 10000. */
  requestTimeoutMs?: number;
  /** Back-off between connection attempts, or `false` not to reconnect. */
  reconnect?: ReconnectOptions | false;
}

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
  /** Set when the room could not be entered again (closed, banned, ...): the client is in no room now. */
  error?: DanmuError;
}

export interface DisconnectInfo {
  /** The WebSocket close code (1000 normal, 1006 lost, 1012 shutdown, 1013 too slow, ...). */
  code: number;
  reason: string;
  /** The WebSocket URL that closed, without its query (which holds the token). */
  url: string;
  /** False when the client will not reconnect (closed by the app, kicked as `replaced`). */
  reconnecting: boolean;
}

type RoomEventListeners = { [K in RoomEventName]: [event: RoomEventMap[K], meta: EventMeta] };

export type DanmuClientEvents = RoomEventListeners & {
  state: [state: ConnectionState];
  connected: [frame: ConnectedFrame];
  disconnected: [info: DisconnectInfo];
  kicked: [frame: KickedFrame];
  recovery: [info: RecoveryInfo];
  /** Every room event, also of actions this version does not know. */
  event: [event: RoomEvent, meta: EventMeta];
  /** Failures not tied to a report: a failed end_point lookup, an unreadable frame, a refusal for good. */
  error: [error: DanmuError];
};

/** Answers that settle a waiting frame. */
type Answer = AckFrame | PongFrame;

interface WantedRoom {
  position: RoomPosition;
  /** The app's `enterRoom` promises, settled by the next ack or refusal of this room. */
  waiters: { resolve(ack: EnterRoomAck): void; reject(error: DanmuError): void }[];
}

const OPEN = 1;

export class DanmuClient extends Emitter<DanmuClientEvents> {
  /** The live-room API (PROTOCOL.md 3) with the same base URL and token. */
  readonly rooms: RoomsApi;
  readonly userId: string;
  readonly sid: string;

  private readonly base: string;
  private readonly tokenSource: TokenSource;
  private readonly batch: boolean;
  private readonly WebSocketImpl: WebSocketConstructor | undefined;
  private readonly fetchFn: FetchLike;
  private readonly requestTimeoutMs: number;
  private readonly reconnectOptions: Required<ReconnectOptions> | false;

  private currentState: ConnectionState = "idle";
  private wantOnline = false;
  /** Bumped for every attempt: late callbacks of an older attempt see a different number. */
  private attemptGen = 0;
  private ws: WebSocketLike | null = null;
  /** The URL of the current (or last) socket, without its query. */
  private socketUrl = "";
  private onlineToken: string | null = null;
  private pingIntervalS = 15;
  private serverOffsetMs = 0;
  private lastFrameAt = 0;
  private failedAttempts = 0;
  private replaced = false;
  private lastConnected: ConnectedFrame | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private openTimer: ReturnType<typeof setTimeout> | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private probeTimer: ReturnType<typeof setTimeout> | null = null;
  private connectWaiters: { resolve(frame: ConnectedFrame): void; reject(error: DanmuError): void }[] = [];
  private readonly answers = new AnswerQueue<Answer>();
  private room: WantedRoom | null = null;

  constructor(options: DanmuClientOptions) {
    super();
    this.base = trimBase(options.baseUrl);
    this.userId = String(options.userId);
    this.tokenSource = options.token;
    this.sid = options.sid ?? randomHex(16);
    this.batch = options.batch ?? true;
    this.WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.fetchFn = options.fetch ?? ((input, init) => fetch(input, init));
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.reconnectOptions =
      options.reconnect === false
        ? false
        : { minDelayMs: options.reconnect?.minDelayMs ?? 500, maxDelayMs: options.reconnect?.maxDelayMs ?? 10_000 };
    this.rooms = new RoomsApi({ baseUrl: this.base, token: this.tokenSource, fetch: this.fetchFn });
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

  /**
   * Connects (and stays connected, reconnecting with back-off, until `close()`). Resolves with
   * the `connected` frame; rejects only when connecting is refused for good (the token, or
   * `close()` meanwhile).
   */
  connect(): Promise<ConnectedFrame> {
    if (this.currentState === "connected" && this.lastConnected) return Promise.resolve(this.lastConnected);
    const done = new Promise<ConnectedFrame>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (!this.wantOnline) {
      this.wantOnline = true;
      this.replaced = false;
      this.failedAttempts = 0;
      void this.attempt();
    }
    return done;
  }

  /** Closes the connection for good (no reconnect); waiting reports fail with `closed`. */
  close(): void {
    const wasOnline = this.wantOnline || this.ws !== null;
    this.wantOnline = false;
    this.attemptGen += 1;
    this.clearTimer("reconnectTimer");
    const error = new DanmuError("closed", "", "the client was closed");
    this.rejectConnectWaiters(error);
    const room = this.room;
    this.room = null;
    room?.waiters.splice(0).forEach((w) => w.reject(error));
    this.dropSocket(1000, "closed by client", error);
    if (wasOnline || this.currentState !== "closed") this.setState("closed");
  }

  private async attempt(): Promise<void> {
    const gen = ++this.attemptGen;
    this.clearTimer("reconnectTimer");
    this.setState(this.lastConnected ? "reconnecting" : "connecting");
    let token: string;
    let endPoint: EndPointAnswer;
    try {
      token = await tokenOf(this.tokenSource);
      const url = `${this.base}/iapi/websocket/end_point?${this.commonParams(token)}`;
      endPoint = await requestJson<EndPointAnswer>(this.fetchFn, "GET", url, { timeoutMs: this.requestTimeoutMs });
    } catch (e) {
      if (gen !== this.attemptGen) return;
      const error = e instanceof DanmuError ? e : new DanmuError("http", "end_point", String(e));
      const tokenRefused = error.status === 401 || error.error_code === ErrorCodes.TOKEN_INVALID;
      if (tokenRefused && typeof this.tokenSource === "string") {
        // The same token would be refused again: retrying cannot help.
        this.giveUp(error);
        return;
      }
      this.emit("error", error);
      this.scheduleReconnect();
      return;
    }
    if (gen !== this.attemptGen) return;
    const WebSocketImpl = this.WebSocketImpl;
    if (!WebSocketImpl) {
      this.giveUp(new DanmuError("closed", "connect", "no WebSocket class: pass options.WebSocket (on Node.js 20, `ws`)"));
      return;
    }
    if (typeof endPoint.ping_interval === "number" && endPoint.ping_interval > 0) {
      this.pingIntervalS = endPoint.ping_interval;
    }
    const target = endPoint.end_point || this.base.replace(/^http/, "ws") + "/iapi/websocket";
    const url = `${target}${target.includes("?") ? "&" : "?"}${this.commonParams(token)}${this.batch ? "&batch=1" : ""}`;
    let ws: WebSocketLike;
    try {
      ws = new WebSocketImpl(url);
    } catch (e) {
      this.emit("error", new DanmuError("http", "connect", `cannot open ${target}: ${String((e as Error)?.message ?? e)}`));
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.socketUrl = target;
    this.lastFrameAt = Date.now();
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
      if (this.ws === ws && !this.onlineToken) {
        this.dropSocket(4000, "no connected frame");
        this.onSocketClosed(4000, "no connected frame");
      }
    }, this.requestTimeoutMs);
  }

  private commonParams(token: string): string {
    const q = new URLSearchParams({ user_id: this.userId, sid: this.sid, timestamp: String(this.now()), token });
    return q.toString();
  }

  /** Milliseconds on the server's clock, as learnt from the `connected` frame. */
  private now(): number {
    return Date.now() + this.serverOffsetMs;
  }

  private onConnected(frame: ConnectedFrame): void {
    this.clearTimer("openTimer");
    this.onlineToken = String(frame.online_token);
    if (typeof frame.ping_interval === "number" && frame.ping_interval > 0) this.pingIntervalS = frame.ping_interval;
    if (typeof frame.server_time === "number") this.serverOffsetMs = frame.server_time - Date.now();
    this.failedAttempts = 0;
    this.lastConnected = frame;
    this.startPing();
    this.setState("connected");
    this.emit("connected", frame);
    const waiters = this.connectWaiters.splice(0);
    waiters.forEach((w) => w.resolve(frame));
    const room = this.room;
    // Enter again (or for the first time, when enterRoom came before the connection).
    if (room) this.sendEnter(room);
  }

  private onSocketClosed(code: number, reason: string): void {
    const url = this.socketUrl;
    const lost = new DanmuError("disconnected", "", `connection to ${url} closed (${code}${reason ? " " + reason : ""})`);
    this.dropSocket(undefined, undefined, lost);
    if (!this.wantOnline) {
      this.emit("disconnected", { code, reason, url, reconnecting: false });
      this.setState("closed");
      return;
    }
    if (this.replaced) {
      this.emit("disconnected", { code, reason, url, reconnecting: false });
      this.giveUp(new DanmuError("closed", "", "replaced by another connection of this user_id and sid"));
      return;
    }
    const reconnecting = this.reconnectOptions !== false;
    this.emit("disconnected", { code, reason, url, reconnecting });
    if (reconnecting) this.scheduleReconnect();
    else this.giveUp(new DanmuError("closed", "", `connection closed (${code})`));
  }

  /** Forgets the socket (its late events are ignored), closes it, fails the waiting reports. */
  private dropSocket(code?: number, reason?: string, error?: DanmuError): void {
    const ws = this.ws;
    this.ws = null;
    this.onlineToken = null;
    this.clearTimer("openTimer");
    this.clearTimer("probeTimer");
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.pingTimer = null;
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

  private scheduleReconnect(): void {
    if (!this.wantOnline || this.reconnectOptions === false) {
      if (this.wantOnline) this.giveUp(new DanmuError("closed", "connect", "connection failed and reconnect is off"));
      return;
    }
    this.clearTimer("reconnectTimer");
    const { minDelayMs, maxDelayMs } = this.reconnectOptions;
    const base = Math.min(maxDelayMs, minDelayMs * 2 ** this.failedAttempts);
    this.failedAttempts += 1;
    // Some jitter, so that the clients of a restarted node do not all come back at once.
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.setState("reconnecting");
    this.reconnectTimer = setTimeout(() => void this.attempt(), delay);
  }

  /** Stops for good: no more attempts, `connect()` callers are told. */
  private giveUp(error: DanmuError): void {
    this.wantOnline = false;
    this.attemptGen += 1;
    this.clearTimer("reconnectTimer");
    this.dropSocket(1000, "closed", error);
    this.rejectConnectWaiters(error);
    const room = this.room;
    this.room = null;
    room?.waiters.splice(0).forEach((w) => w.reject(error));
    this.emit("error", error);
    this.setState("closed");
  }

  private rejectConnectWaiters(error: DanmuError): void {
    this.connectWaiters.splice(0).forEach((w) => w.reject(error));
  }

  private setState(state: ConnectionState): void {
    if (state === this.currentState) return;
    this.currentState = state;
    this.emit("state", state);
  }

  private clearTimer(name: "openTimer" | "reconnectTimer" | "probeTimer"): void {
    const t = this[name];
    if (t !== null) clearTimeout(t);
    this[name] = null;
  }

  private startPing(): void {
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.pingTick(), this.pingIntervalS * 1000);
  }

  /** A `ping` per interval; a connection silent for two intervals (no pong) is taken as lost. */
  private pingTick(): void {
    if (Date.now() - this.lastFrameAt > this.pingIntervalS * 2000 + 5000) {
      this.dropSocket(4000, "heartbeat timed out");
      this.onSocketClosed(4000, "heartbeat timed out");
      return;
    }
    this.send("ping", {}, { action: "ping", resolve: () => {}, reject: () => {} });
  }

  // ------------------------------------------------------------ frames

  private onData(data: unknown): void {
    this.lastFrameAt = Date.now();
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
    if (!found) return; // an answer to nothing we wait for (its timeout fired)
    found.dropped.forEach((w) => w.reject(droppedError(w.action)));
    found.entry.resolve(answer);
  }

  private onErrorFrame(frame: ErrorFrame): void {
    const code = Number(frame.error_code) || 0;
    const forAction = String(frame.for ?? "");
    const reason = String(frame.error_reason ?? "error");
    if (forAction === "") {
      // Rate limited (or unreadable): it answers the oldest frame still waiting.
      const entry = this.answers.takeOldest();
      if (entry) entry.reject(new DanmuError("refused", entry.action, reason, code));
      else this.emit("error", new DanmuError("refused", "", reason, code));
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
    found.entry.reject(error);
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
      if (this.ws === ws && this.answers.size > 0) this.send("ping", {}, { action: "ping", resolve: () => {}, reject: () => {} });
    }, 1100);
  }

  private onKicked(frame: KickedFrame): void {
    // `replaced`: this user_id and sid connected elsewhere: reconnecting would kick that one.
    if (frame.reason === "replaced") this.replaced = true;
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

  /** Writes one signed frame; `waiting` is settled by its answer. False when not connected. */
  private send(action: string, fields: Record<string, unknown>, waiting: Waiting<Answer>): boolean {
    const ws = this.ws;
    const onlineToken = this.onlineToken;
    if (!ws || ws.readyState !== OPEN || !onlineToken) return false;
    const timestamp = this.now();
    const frame: Record<string, unknown> = {
      action,
      online_token: onlineToken,
      sid: this.sid,
      timestamp,
      sign: frameSign(action, onlineToken, this.sid, timestamp),
    };
    for (const [k, v] of Object.entries(fields)) if (!(k in frame) && v !== undefined) frame[k] = v;
    this.answers.add(waiting);
    try {
      ws.send(JSON.stringify(frame));
    } catch (e) {
      this.answers.remove(waiting);
      waiting.reject(new DanmuError("disconnected", action, String((e as Error)?.message ?? e)));
    }
    return true;
  }

  /** Sends a report; resolves with its `ack`, rejects with the `error` (or timeout, disconnect). */
  report<T extends AckFrame = AckFrame>(action: string, fields: Record<string, unknown> = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waiting: Waiting<Answer> = {
        action,
        resolve: (answer) => {
          clearTimeout(timer);
          resolve(answer as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      if (!this.send(action, fields, waiting)) {
        reject(new DanmuError(this.currentState === "closed" ? "closed" : "not_connected", action, "not connected"));
        return;
      }
      timer = setTimeout(() => {
        this.answers.remove(waiting);
        reject(new DanmuError("timeout", action, `no answer in ${this.requestTimeoutMs} ms`));
      }, this.requestTimeoutMs);
    });
  }

  // ------------------------------------------------------------ reports

  /** `ping`: resolves with the `pong` (the client also pings by itself at `ping_interval`). */
  ping(): Promise<PongFrame> {
    return this.report("ping") as unknown as Promise<PongFrame>;
  }

  /**
   * `enter_room_report`: joins `channel_name` (leaving any other room) and stays in it across
   * reconnects. Pass `from` (a `position` kept from before) to recover from there; the ack then
   * says `recovered`. Connects first when the client is not connected; waits for the connection.
   */
  enterRoom(channel_name: string, from?: { last_seq?: number; epoch?: string }): Promise<EnterRoomAck> {
    const previous = this.room;
    const room: WantedRoom = { position: new RoomPosition(String(channel_name), from), waiters: [] };
    this.room = room;
    previous?.waiters.splice(0).forEach((w) => w.reject(new DanmuError("closed", "enter_room_report", `entering ${channel_name} instead`)));
    const entered = new Promise<EnterRoomAck>((resolve, reject) => room.waiters.push({ resolve, reject }));
    if (this.onlineToken) this.sendEnter(room);
    else if (!this.wantOnline) this.connect().catch(() => {}); // a failure reaches the room's waiters too
    return entered;
  }

  /**
   * Sends the `enter_room_report` of `room`, with `last_seq`/`epoch` when its position is known
   * (a re-entry after a reconnect, or `enterRoom` with `from`): its outcome is then told in a
   * `recovery` event, with the client's own verdict on `recovered` (the epoch check).
   */
  private sendEnter(room: WantedRoom): void {
    const recovering = room.position.known;
    const sent = room.position.enterFields();
    const channel_name = room.position.channel_name;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waiting: Waiting<Answer> = {
      action: "enter_room_report",
      // Settled synchronously, before the frames that follow the ack (the replay) are read.
      resolve: (answer) => {
        clearTimeout(timer);
        if (this.room !== room) return; // the app moved on meanwhile
        const ack = answer as EnterRoomAck;
        const outcome = room.position.entered(ack, sent);
        room.waiters.splice(0).forEach((w) => w.resolve(ack));
        if (recovering) this.emit("recovery", { channel_name, recovered: outcome.recovered, renumbered: outcome.renumbered, ack });
      },
      reject: (error) => {
        clearTimeout(timer);
        if (this.room !== room) return;
        const e = error as DanmuError;
        if (e.kind === "disconnected" || e.kind === "not_connected") return; // the next connection enters again
        this.room = null;
        room.waiters.splice(0).forEach((w) => w.reject(e));
        if (recovering) this.emit("recovery", { channel_name, recovered: false, renumbered: false, error: e });
      },
    };
    if (!this.send("enter_room_report", { channel_name, ...sent }, waiting)) return; // onConnected sends it
    timer = setTimeout(() => {
      // No answer: the connection is not carrying anything. Start a new one, which enters again.
      this.answers.remove(waiting);
      if (this.room === room && this.ws) {
        this.dropSocket(4000, "enter_room_report timed out");
        this.onSocketClosed(4000, "enter_room_report timed out");
      }
    }, this.requestTimeoutMs);
  }

  /**
   * `exit_room_report` for oneself: leaves the current room (the seat is freed, the others get
   * `exit_room`); the client stops re-entering it.
   */
  exitRoom(): Promise<AckFrame> {
    const room = this.room;
    this.room = null;
    room?.waiters.splice(0).forEach((w) => w.reject(new DanmuError("closed", "enter_room_report", "left the room")));
    return this.report("exit_room_report", { user_id: this.userId, channel_name: room?.position.channel_name ?? "" });
  }

  /**
   * `exit_room_report` for another user: the relay acknowledgement of seed 001 2.4 (the broker
   * already told every member; it records the report).
   */
  relayExit(user_id: string): Promise<AckFrame> {
    return this.report("exit_room_report", { user_id: String(user_id), channel_name: this.channelName ?? "" });
  }

  /** `send_topic_msg_report`: a chat message to the room (1 to `client.max_content_chars` characters). The ack has its `seq`. */
  sendTopicMsg(content: string, channel_name?: string): Promise<AckFrame & { seq: number }> {
    return this.report("send_topic_msg_report", { channel_name: channel_name ?? this.channelName ?? "", content });
  }

  /** `send_gift_report`: `bc` to every member (the ack has its `seq`), `ptp` to `gift.receiver_id` only. */
  sendGift(gift: GiftReport, notify_type: NotifyType = "bc", channel_name?: string): Promise<AckFrame> {
    return this.report("send_gift_report", { channel_name: channel_name ?? this.channelName ?? "", notify_type, gift });
  }

  /** `up_report`: takes seat `seat_id` (without: the held seat, else the lowest free one). A taken seat fails with 1005. */
  up(seat_id?: number, channel_name?: string): Promise<SeatAck> {
    return this.report("up_report", { channel_name: channel_name ?? this.channelName ?? "", seat_id });
  }

  /** `down_report`: frees the caller's seat (1004 when it holds none). */
  down(channel_name?: string): Promise<SeatAck> {
    return this.report("down_report", { channel_name: channel_name ?? this.channelName ?? "" });
  }

  /** `hang_up_report`: ends a 1:1 call; `receiver_id` gets `hang_up` (without: every other user of the call). */
  hangUp(receiver_id?: string): Promise<AckFrame> {
    return this.report("hang_up_report", receiver_id === undefined ? {} : { receiver_id: String(receiver_id) });
  }

  // ------------------------------------------------------------ HTTP

  /** `GET /iapi/user/info`: the channel the broker has this user in (`""` when none). */
  async userInfo(): Promise<UserInfoAnswer> {
    const token = await tokenOf(this.tokenSource);
    const q = new URLSearchParams({ user_id: this.userId, token });
    return requestJson<UserInfoAnswer>(this.fetchFn, "GET", `${this.base}/iapi/user/info?${q}`, {
      timeoutMs: this.requestTimeoutMs,
    });
  }
}

function droppedError(action: string): DanmuError {
  return new DanmuError("refused", action, "no answer: the broker dropped the frame (rate limited)", ErrorCodes.RATE_LIMITED);
}

function randomHex(bytes: number): string {
  const a = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
}
