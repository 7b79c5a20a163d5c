/**
 * A broker made of fakes, for the client's timing tests: a WebSocket class whose sockets the
 * test opens, answers and drops by hand (`FakeSocket`), an `end_point` served by a fetch
 * function (`FakeHttp`, with a `Date` header on the broker's clock, which may be off the
 * device's), a browser life-cycle the test switches (`FakeLifecycle`), and fake timers:
 * `node:test`'s mock timers for `setTimeout` and `Date`, with `performance.now` following them.
 * Nothing here touches the network.
 */
import { mock } from "node:test";

import { DanmuClient, type DanmuClientOptions, type Lifecycle, type LifecycleHandlers } from "danmu-client";

/** The fake timers' start: a fixed wall-clock time. */
export const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

export function useFakeTimers(): void {
  mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: T0 });
  mock.method(performance, "now", () => Date.now() - T0);
}

export function restoreTimers(): void {
  mock.timers.reset();
  mock.restoreAll();
}

/** Lets pending promise callbacks run (the fakes answer through resolved promises, never timers). */
export async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** Advances the fake clock by `ms`, letting promise callbacks run between timers. */
export async function tick(ms: number, step = 50): Promise<void> {
  let left = ms;
  await flush();
  while (left > 0) {
    const d = Math.min(step, left);
    mock.timers.tick(d);
    left -= d;
    await flush();
  }
}

export type Frame = Record<string, unknown> & { action: string };

export class FakeSocket {
  static all: FakeSocket[] = [];
  static latest(): FakeSocket {
    const s = FakeSocket.all[FakeSocket.all.length - 1];
    if (!s) throw new Error("no socket was opened");
    return s;
  }

  readyState = 0;
  readonly sent: Frame[] = [];
  closedWith: { code?: number; reason?: string } | null = null;
  onopen: ((e: unknown) => void) | null = null;
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onclose: ((e: { code?: number; reason?: string }) => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(JSON.parse(data) as Frame);
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  // ---- the broker's side

  /** Opens and says `connected`, with the broker's clock `serverOffsetMs` off the device's. */
  accept(serverOffsetMs = 0, ping_interval = 15, online_token = `token-${FakeSocket.all.indexOf(this)}`): void {
    this.readyState = 1;
    this.onopen?.({});
    this.receive({ action: "connected", online_token, ping_interval, server_time: Date.now() + serverOffsetMs });
  }

  receive(frame: Frame | Frame[]): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  ack(forAction: string, extra: Record<string, unknown> = {}): void {
    this.receive({ action: "ack", for: forAction, error_code: 0, error_reason: "", ...extra });
  }

  refuse(forAction: string, error_code: number, error_reason = "refused"): void {
    this.receive({ action: "error", for: forAction, error_code, error_reason });
  }

  pong(serverOffsetMs = 0): void {
    this.receive({ action: "pong", server_time: Date.now() + serverOffsetMs });
  }

  /** The connection ends (the broker closed it, or the network failed: 1006). */
  drop(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** The frames sent with this action. */
  frames(action: string): Frame[] {
    return this.sent.filter((f) => f.action === action);
  }

  actions(): string[] {
    return this.sent.map((f) => f.action);
  }
}

/** An enter ack for `channel_name`, the room at `last_seq`. */
export function enterAck(channel_name: string, last_seq: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { room: { channel_name, members: 1, seats: [], last_seq, epoch: "e1" }, last_seq, epoch: "e1", ...extra };
}

interface HttpAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** The broker's HTTP side: `end_point` (and whatever `handler` answers), a `Date` on the broker's clock. */
export class FakeHttp {
  /** The broker's clock minus the device's. */
  serverOffsetMs = 0;
  /** Refuse timestamps further than this from the broker's clock (1010), as the broker does. */
  maxSkewMs = 120_000;
  readonly calls: URL[] = [];
  /** Answers instead of the default when set; `null` leaves the request hanging. */
  handler: ((url: URL) => HttpAnswer | null | Promise<HttpAnswer | null>) | null = null;
  /** Tokens the broker refuses (401 / 1003). */
  readonly badTokens = new Set<string>();

  readonly fetch = async (input: string, init?: RequestInit): Promise<Response> => {
    const url = new URL(input);
    this.calls.push(url);
    const answer = this.handler ? await this.handler(url) : this.endPoint(url);
    if (answer === null) {
      return new Promise<Response>((_, reject) => {
        init?.signal?.addEventListener("abort", () => reject(new Error("aborted")));
      });
    }
    const date = new Date(Date.now() + this.serverOffsetMs).toUTCString();
    const text = JSON.stringify(answer.body);
    return {
      ok: answer.status >= 200 && answer.status < 300,
      status: answer.status,
      headers: { get: (name: string) => (name.toLowerCase() === "date" ? date : null) },
      text: async () => text,
    } as unknown as Response;
  };

  endPoint(url: URL): HttpAnswer {
    const ts = Number(url.searchParams.get("timestamp"));
    if (Math.abs(Date.now() + this.serverOffsetMs - ts) > this.maxSkewMs) {
      return { status: 400, body: { error_code: 1010, error_reason: "timestamp out of window" } };
    }
    if (this.badTokens.has(url.searchParams.get("token") ?? "")) {
      return { status: 401, body: { error_code: 1003, error_reason: "token invalid" } };
    }
    return { status: 200, body: { error_code: 0, error_reason: "", end_point: "ws://broker.test/iapi/websocket", ping_interval: 15 } };
  }

  endPointCalls(): URL[] {
    return this.calls.filter((u) => u.pathname === "/iapi/websocket/end_point");
  }
}

export class FakeLifecycle implements Lifecycle {
  online = true;
  hidden = false;
  private handlers: LifecycleHandlers | null = null;

  isOnline(): boolean {
    return this.online;
  }

  isHidden(): boolean {
    return this.hidden;
  }

  watch(handlers: LifecycleHandlers): () => void {
    this.handlers = handlers;
    return () => {
      this.handlers = null;
    };
  }

  get watched(): boolean {
    return this.handlers !== null;
  }

  goOffline(): void {
    this.online = false;
    this.handlers?.offline();
  }

  goOnline(): void {
    this.online = true;
    this.handlers?.online();
  }

  hide(): void {
    this.hidden = true;
    this.handlers?.hidden();
  }

  show(): void {
    this.hidden = false;
    this.handlers?.visible();
  }
}

/** A client on the fakes, recording its events. */
export function fakeClient(http: FakeHttp, options: Partial<DanmuClientOptions> = {}) {
  FakeSocket.all = [];
  const client = new DanmuClient({
    baseUrl: "http://broker.test",
    userId: "ann",
    sid: "sid-1",
    token: "header.eyJzdWIiOiJhbm4ifQ.sig",
    WebSocket: FakeSocket,
    fetch: http.fetch,
    lifecycle: false,
    ...options,
  });
  const seen = {
    states: [] as string[],
    disconnects: [] as { code: number; retryInMs?: number; reconnecting: boolean }[],
    errors: [] as { kind: string; code: number; retryable: boolean }[],
    recoveries: [] as { recovered: boolean; error?: number }[],
  };
  client.on("state", (s) => seen.states.push(s));
  client.on("disconnected", (d) =>
    seen.disconnects.push(d.retryInMs === undefined ? { code: d.code, reconnecting: d.reconnecting } : { code: d.code, retryInMs: d.retryInMs, reconnecting: d.reconnecting }),
  );
  client.on("error", (e) => seen.errors.push({ kind: e.kind, code: Number(e.error_code), retryable: e.retryable }));
  client.on("recovery", (r) => seen.recoveries.push(r.error ? { recovered: r.recovered, error: Number(r.error.error_code) } : { recovered: r.recovered }));
  return { client, seen };
}
