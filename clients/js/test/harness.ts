/**
 * Test harness: the real `danmu-broker` binary started on a free port (`DANMU_BROKER_BIN`, else
 * the workspace's target/debug/danmu-broker), client JWTs minted with `jose`, the BIGO side
 * spoken over the broker's BIGO ingress (docs/protocol.md 1.2, 1.4), a TCP proxy that can cut
 * every connection through it (a network failure the broker survives) or send new ones
 * elsewhere (a load balancer in front of several nodes), a `redis-server` of the test's own
 * (several nodes, docs/protocol.md 7), and a `wait` helper.
 *
 * Everything runs on 127.0.0.1; nothing reaches the internet.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { md5 } from "@noble/hashes/legacy.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";
import { SignJWT } from "jose";
import WebSocket from "ws";

import { DanmuClient, type DanmuClientOptions, type EventMeta, type RecoveryInfo, type RoomEvent } from "danmu-client";

export const JWT_SECRET = "sdk-test-secret";
const BIGO_ACCOUNT = "bigoUser1";
const BIGO_PASSWORD = "sdk-test-password";
const PLATFORM_ABBR = "inke";

/** The repository root (this file runs from clients/js/build-test/). */
const REPO = fileURLToPath(new URL("../../../", import.meta.url));

export function brokerBinary(): string {
  const bin = process.env.DANMU_BROKER_BIN || join(REPO, "target", "debug", "danmu-broker");
  if (!existsSync(bin)) {
    throw new Error(`no broker binary at ${bin}: run \`cargo build\` in the repository root, or set DANMU_BROKER_BIN`);
  }
  return bin;
}

export function md5Hex(text: string): string {
  return bytesToHex(md5(utf8ToBytes(text)));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it answers something truthy; fails naming `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export interface BrokerOptions {
  /** Extra `DANMU__SECTION__KEY` overrides. */
  env?: Record<string, string>;
  /** The port to serve on (a restart keeps its port); default a free one. */
  port?: number;
  /** The port clients are told to connect to (`server.public_url`), e.g. a proxy's; default `port`. */
  publicPort?: number;
}

/** One running broker process. */
export class Broker {
  readonly port: number;
  readonly baseUrl: string;
  private readonly options: BrokerOptions;
  private child: ChildProcess | null = null;
  private exited: Promise<number | null> = Promise.resolve(null);
  private log: string[] = [];
  private readonly dir: string;

  private constructor(port: number, options: BrokerOptions) {
    this.port = port;
    this.baseUrl = `http://127.0.0.1:${port}`;
    this.options = options;
    // An empty working directory: no ./config.yaml is read, so the defaults plus the env apply.
    this.dir = mkdtempSync(join(tmpdir(), "danmu-sdk-test-"));
  }

  static async start(options: BrokerOptions = {}): Promise<Broker> {
    const broker = new Broker(options.port ?? (await freePort()), options);
    await broker.run();
    return broker;
  }

  /** Starts the process (again, after `stop`) and waits until `/healthz` answers 200. */
  async run(): Promise<void> {
    const publicPort = this.options.publicPort ?? this.port;
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      RUST_LOG: process.env.RUST_LOG ?? "warn",
      DANMU__SERVER__HOST: "127.0.0.1",
      DANMU__SERVER__PORT: String(this.port),
      DANMU__SERVER__PUBLIC_URL: `ws://127.0.0.1:${publicPort}`,
      DANMU__SERVER__WORKERS: "1",
      DANMU__AUTH__JWT_SECRET: JWT_SECRET,
      DANMU__BIGO__PLATFORM_ABBR: PLATFORM_ABBR,
      // Short, so that danmu reach the clients quickly; the tests push in ts order.
      DANMU__ROOM__REORDER_WINDOW_MS: "50",
      ...this.options.env,
    };
    const child = spawn(brokerBinary(), ["--config", this.configFile()], { cwd: this.dir, env, stdio: ["ignore", "ignore", "pipe"] });
    this.child = child;
    this.log = [];
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      this.log.push(chunk);
      if (process.env.DANMU_TEST_LOG) process.stderr.write(`[broker ${this.port}] ${chunk}`);
    });
    this.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the broker exited with ${child.exitCode}:\n${this.log.join("")}`);
      try {
        const res = await fetch(`${this.baseUrl}/healthz`);
        if (res.status === 200) return;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) throw new Error(`the broker did not answer /healthz in 10 s:\n${this.log.join("")}`);
      await sleep(25);
    }
  }

  /** The BIGO account's password cannot be set from the environment (a list): a small config file. */
  private configFile(): string {
    const file = join(this.dir, "test.yaml");
    writeFileSync(file, `bigo:\n  accounts:\n    - { account: ${BIGO_ACCOUNT}, password: "${BIGO_PASSWORD}" }\n`);
    return file;
  }

  /** The broker's log so far, searchable. */
  logged(text: string): boolean {
    return this.log.join("").includes(text);
  }

  /** SIGTERM: the broker drains (kicked `shutdown`, close 1012) and exits 0. */
  async stop(): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null) return child?.exitCode ?? null;
    child.kill("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<number>((resolve) => {
      timer = setTimeout(() => {
        child.kill("SIGKILL");
        resolve(-1);
      }, 15_000);
    });
    const code = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    return code;
  }

  /** Stops the broker and removes its directory. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  stderr(): string {
    return this.log.join("");
  }

  wsUrl(path: string): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  /** One sample of the broker's `/metrics`, e.g. `danmu_client_bytes_out_total{compressed="true"}`; 0 when absent. */
  async metric(series: string): Promise<number> {
    const text = await (await fetch(`${this.baseUrl}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${series} `));
    return line ? Number(line.slice(series.length + 1)) : 0;
  }
}

/** A client JWT as the app's backend would issue it (HS256, `sub`, `exp`, `nickname`). */
export async function mintToken(userId: string, nickname = userId, secret = JWT_SECRET): Promise<string> {
  return new SignJWT({ nickname })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(new TextEncoder().encode(secret));
}

/** What a test client saw: every room event with its meta, and every client event by name. */
export interface Seen {
  events: { event: RoomEvent; meta: EventMeta }[];
  recoveries: RecoveryInfo[];
  kicked: string[];
  states: string[];
  errors: Error[];
}

const openClients = new Set<DanmuClient>();

/** Closes every client `newClient` made (an `after` hook: a failed test leaves none reconnecting). */
export function closeClients(): void {
  for (const c of openClients) c.close();
  openClients.clear();
}

/** A `DanmuClient` for `userId` against `baseUrl`, with `ws` as its WebSocket (Node.js 20), recording what it sees. */
export async function newClient(
  baseUrl: string,
  userId: string,
  options: Partial<DanmuClientOptions> = {},
): Promise<{ client: DanmuClient; seen: Seen }> {
  const token = await mintToken(userId, `nick-${userId}`);
  const client = new DanmuClient({
    baseUrl,
    userId,
    token,
    // ws's class fits options.WebSocket as it is; DANMU_TEST_WEBSOCKET=global tries the runtime's own.
    ...(process.env.DANMU_TEST_WEBSOCKET === "global" ? {} : { WebSocket }),
    reconnect: { minDelayMs: 100, maxDelayMs: 500 },
    requestTimeoutMs: 5000,
    ...options,
  });
  openClients.add(client);
  const seen: Seen = { events: [], recoveries: [], kicked: [], states: [], errors: [] };
  client.on("event", (event, meta) => seen.events.push({ event, meta }));
  client.on("recovery", (info) => seen.recoveries.push(info));
  client.on("kicked", (frame) => seen.kicked.push(frame.reason));
  client.on("state", (state) => seen.states.push(state));
  client.on("error", (error) => seen.errors.push(error));
  return { client, seen };
}

/** The events of `seen` with this action. */
export function eventsOf<A extends RoomEvent["action"]>(seen: Seen, action: A): Extract<RoomEvent, { action: A }>[] {
  return seen.events.filter((e) => e.event.action === action).map((e) => e.event as Extract<RoomEvent, { action: A }>);
}

// ---------------------------------------------------------------- the BIGO side

export interface DanmuItem {
  type: string;
  user: string;
  nick_name: string;
  user_img: string;
  ts: string;
  data_seq: string;
  [field: string]: unknown;
}

export function msgItem(dataSeq: string, ts: number, content: string, user = "viewer-1", nick = "Viewer"): DanmuItem {
  return { type: "msg", user, nick_name: nick, user_img: "http://img/v1.png", ts: String(ts), data_seq: dataSeq, content };
}

export function giftItem(dataSeq: string, ts: number): DanmuItem {
  return {
    type: "gift", user: "viewer-2", nick_name: "Giver", user_img: "http://img/v2.png", ts: String(ts), data_seq: dataSeq,
    gift_id: "g7", gift_url: "http://img/rose.png", gift_level: 1, gift_count: 3, gift_name: "Rose",
  };
}

export function heartItem(dataSeq: string, ts: number, count = 5): DanmuItem {
  return { type: "heart", user: "viewer-3", nick_name: "Liker", user_img: "http://img/v3.png", ts: String(ts), data_seq: dataSeq, count };
}

/** One BIGO connection to the broker's ingress, logged in (docs/protocol.md 1.2), pushing signed `dataReception`s (1.4). */
export class Bigo {
  private token = "";
  private seqid = 0;
  private readonly answers: ((frame: { uri: string; data: string }) => void)[] = [];

  private constructor(private readonly ws: WebSocket) {
    ws.on("message", (data) => {
      const frame = JSON.parse(String(data));
      this.answers.shift()?.(frame);
    });
  }

  static async connect(broker: Broker): Promise<Bigo> {
    const ws = new WebSocket(broker.wsUrl("/bigo/ws"));
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    const bigo = new Bigo(ws);
    const timestamp = String(Date.now());
    const sign = md5Hex(`password:${BIGO_PASSWORD}&tamp:${timestamp}&${PLATFORM_ABBR}&account:${BIGO_ACCOUNT}`);
    const answer = await bigo.call({ uri: "platformLogin", data: JSON.stringify({ account: BIGO_ACCOUNT, timestamp, sign }) });
    const data = JSON.parse(answer.data);
    if (data.code !== 200) throw new Error(`platformLogin refused: ${answer.data}`);
    bigo.token = data.access_token;
    return bigo;
  }

  private call(frame: { uri: string; data: string; access_token?: string; sign?: string }): Promise<{ uri: string; data: string }> {
    return new Promise((resolve) => {
      this.answers.push(resolve);
      this.ws.send(JSON.stringify({ retry_cnt: 0, send_time: Date.now(), ...frame }));
    });
  }

  /** Pushes `items` for `game_sess` (status 2: game mounted); resolves with the response's `rescode`. */
  async push(game_sess: string, items: DanmuItem[], status = 2): Promise<number> {
    this.seqid += 1;
    const data = JSON.stringify({
      seqid: `sdk-${process.pid}-${Date.now()}-${this.seqid}`,
      timestamp: Date.now(),
      game_id: "10000",
      game_sess,
      status,
      danmu_data: [{ openid: "anchor-1", datas: items }],
    });
    const sign = md5Hex(`${data}&token:${this.token}&${PLATFORM_ABBR}`);
    const answer = await this.call({ uri: "dataReception", data, access_token: this.token, sign });
    return JSON.parse(answer.data).rescode;
  }

  /** The extensions the broker agreed to (`ws` offers permessage-deflate). */
  get extensions(): string {
    return this.ws.extensions;
  }

  close(): void {
    this.ws.close();
  }
}

// ---------------------------------------------------------------- Redis

/** A `redis-server` of the test's own on a free port (no persistence), stopped by `dispose`. */
export class RedisServer {
  private child: ChildProcess | null = null;

  private constructor(readonly port: number) {}

  static async start(): Promise<RedisServer> {
    const redis = new RedisServer(await freePort());
    await redis.run();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async run(): Promise<void> {
    const child = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore",
    });
    this.child = child;
    await waitFor("redis-server to answer", () => redisPing(this.port), 10_000);
  }

  async dispose(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }
}

function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let answer = "";
    socket.setTimeout(300, () => socket.destroy());
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (d) => {
      answer += String(d);
      if (answer.includes("\r\n")) socket.end();
    });
    socket.on("error", () => resolve(false));
    socket.on("close", () => resolve(answer.startsWith("+PONG")));
  });
}

export function hasRedis(): boolean {
  return (process.env.PATH ?? "").split(":").some((dir) => dir && existsSync(join(dir, "redis-server")));
}

// ---------------------------------------------------------------- a proxy that can fail

/**
 * A TCP proxy on a free port in front of the broker. `cut()` destroys every connection through
 * it (no close frame: as if the network failed); `hold()` refuses new connections until
 * `release()`, so a client cannot reconnect meanwhile.
 */
export class Proxy {
  readonly port: number;
  private readonly sockets = new Set<net.Socket>();
  private held = false;
  private targetPort: number;
  private readonly server: net.Server;

  private constructor(targetPort: number, port: number) {
    this.port = port;
    this.targetPort = targetPort;
    this.server = net.createServer((inbound) => {
      if (this.held) {
        inbound.destroy();
        return;
      }
      const outbound = net.connect(this.targetPort, "127.0.0.1");
      this.sockets.add(inbound);
      this.sockets.add(outbound);
      const end = () => {
        inbound.destroy();
        outbound.destroy();
        this.sockets.delete(inbound);
        this.sockets.delete(outbound);
      };
      inbound.on("error", end).on("close", end);
      outbound.on("error", end).on("close", end);
      inbound.pipe(outbound);
      outbound.pipe(inbound);
    });
  }

  static async start(targetPort: number, port?: number): Promise<Proxy> {
    const proxy = new Proxy(targetPort, port ?? (await freePort()));
    await new Promise<void>((resolve) => proxy.server.listen(proxy.port, "127.0.0.1", () => resolve()));
    return proxy;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Destroys every open connection through the proxy. */
  cut(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  hold(): void {
    this.held = true;
  }

  /** New connections go to `port` from now on (open ones stay where they are). */
  retarget(port: number): void {
    this.targetPort = port;
  }

  release(): void {
    this.held = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
