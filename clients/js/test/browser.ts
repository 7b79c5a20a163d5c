/**
 * A real headless Chromium for the SDK's browser tests, driven over the DevTools protocol with
 * `ws` (no WebDriver, no browser download): Debian's `/usr/bin/chromium` (or
 * `$DANMU_TEST_CHROMIUM`), started with the flags that work on this machine kind (headless,
 * no sandbox as root, no background networking), a fresh profile each time.
 *
 * `PageFront` puts a page and the SDK bundle in front of the broker on one origin, as an app
 * that serves its page and proxies `/iapi` would: requests for its own files are answered
 * here, every other connection (the `end_point` fetch, the WebSocket) is piped to the broker.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import WebSocket from "ws";

import { freePort } from "./harness.js";

export function chromiumPath(): string | null {
  const named = process.env.DANMU_TEST_CHROMIUM;
  if (named) return existsSync(named) ? named : null;
  for (const dir of (process.env.PATH ?? "").split(":")) {
    for (const name of ["chromium", "chromium-browser"]) {
      if (dir && existsSync(join(dir, name))) return join(dir, name);
    }
  }
  return null;
}

/** Flags for a headless run as root without network side traffic (see tests/common/browser.rs). */
const FLAGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--window-size=1024,768",
];

type Message = { id?: number; method?: string; params?: unknown; result?: unknown; error?: { message: string }; sessionId?: string };

export class Chromium {
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve(r: unknown): void; reject(e: Error): void }>();

  private constructor(
    private readonly child: ChildProcess,
    private readonly ws: WebSocket,
    private readonly profile: string,
  ) {
    ws.on("message", (data) => {
      const m = JSON.parse(String(data)) as Message;
      if (m.id === undefined) return;
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.error) w?.reject(new Error(m.error.message));
      else w?.resolve(m.result);
    });
  }

  static async launch(path: string, extraFlags: string[] = []): Promise<Chromium> {
    const profile = mkdtempSync(join(tmpdir(), "danmu-sdk-chromium-"));
    const child = spawn(path, [...FLAGS, ...extraFlags, `--user-data-dir=${profile}`, "--remote-debugging-port=0", "about:blank"], {
      stdio: ["ignore", "ignore", "pipe"],
      detached: true, // its own process group: `close` ends Chromium and its helpers together
    });
    const url = await new Promise<string>((resolve, reject) => {
      let text = "";
      const timer = setTimeout(() => reject(new Error(`chromium did not start:\n${text}`)), 20_000);
      child.stderr?.on("data", (chunk) => {
        text += String(chunk);
        const m = text.match(/DevTools listening on (ws:\/\/\S+)/);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.once("exit", (code) => reject(new Error(`chromium exited with ${code}:\n${text}`)));
    });
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    return new Chromium(child, ws, profile);
  }

  send<T = unknown>(method: string, params: object = {}, sessionId?: string): Promise<T> {
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (r: unknown) => void, reject });
      this.ws.send(JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }));
    });
  }

  async open(url: string): Promise<Page> {
    const { targetId } = await this.send<{ targetId: string }>("Target.createTarget", { url });
    const { sessionId } = await this.send<{ sessionId: string }>("Target.attachToTarget", { targetId, flatten: true });
    return new Page(this, targetId, sessionId);
  }

  async close(): Promise<void> {
    this.ws.close();
    const pid = this.child.pid;
    if (pid !== undefined && this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once("exit", resolve));
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        this.child.kill("SIGKILL");
      }
      await exited;
    }
    rmSync(this.profile, { recursive: true, force: true });
  }
}

export class Page {
  constructor(
    private readonly browser: Chromium,
    private readonly targetId: string,
    private readonly sessionId: string,
  ) {}

  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.browser.send<{ result: { value: T }; exceptionDetails?: { text: string } }>(
      "Runtime.evaluate",
      { expression, returnByValue: true, awaitPromise: true },
      this.sessionId,
    );
    if (r.exceptionDetails) throw new Error(`in the page: ${r.exceptionDetails.text}`);
    return r.result.value;
  }

  async navigate(url: string): Promise<void> {
    await this.browser.send("Page.navigate", { url }, this.sessionId);
  }

  /** Minimises the page's window: the page is hidden (`visibilitychange`), as a background tab is. */
  async hide(): Promise<void> {
    await this.setWindowState("minimized");
  }

  async show(): Promise<void> {
    await this.setWindowState("normal");
  }

  private async setWindowState(windowState: string): Promise<void> {
    const { windowId } = await this.browser.send<{ windowId: number }>("Browser.getWindowForTarget", { targetId: this.targetId });
    await this.browser.send("Browser.setWindowBounds", { windowId, bounds: { windowState } });
  }
}

/** One origin for a page, its files, and the broker behind it. */
export class PageFront {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    readonly port: number,
    brokerPort: number,
    files: Record<string, { type: string; body: string }>,
  ) {
    this.server = net.createServer((inbound) => {
      this.sockets.add(inbound);
      inbound.on("close", () => this.sockets.delete(inbound));
      inbound.on("error", () => inbound.destroy());
      inbound.once("data", (first) => {
        const line = first.toString("latin1", 0, Math.max(0, first.indexOf("\r\n")));
        const path = (line.split(" ")[1] ?? "").split("?")[0] ?? "";
        const file = files[path];
        if (file) {
          const body = Buffer.from(file.body, "utf8");
          inbound.end(
            Buffer.concat([
              Buffer.from(
                `HTTP/1.1 200 OK\r\nContent-Type: ${file.type}\r\nContent-Length: ${body.length}\r\n` +
                  "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                "latin1",
              ),
              body,
            ]),
          );
          return;
        }
        const outbound = net.connect(brokerPort, "127.0.0.1");
        this.sockets.add(outbound);
        outbound.on("close", () => this.sockets.delete(outbound));
        outbound.on("error", () => inbound.destroy());
        inbound.on("close", () => outbound.destroy());
        outbound.on("close", () => inbound.destroy());
        outbound.write(first);
        inbound.pipe(outbound);
        outbound.pipe(inbound);
      });
    });
  }

  static async start(brokerPort: number, files: Record<string, { type: string; body: string }>, port?: number): Promise<PageFront> {
    const front = new PageFront(port ?? (await freePort()), brokerPort, files);
    await new Promise<void>((resolve) => front.server.listen(front.port, "127.0.0.1", () => resolve()));
    return front;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
