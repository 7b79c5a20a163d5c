/**
 * JSON over HTTP for the broker's `/iapi` calls: one place that turns an answer into data or a
 * `DanmuError`. Every answer carries `error_code` (0 = ok) and `error_reason`; refusals come
 * as 4xx/5xx with the same JSON body (docs/protocol.md 2.1, 3). Every call is bounded by a
 * timeout and may be cancelled by the caller's `AbortSignal`; the `Date` header of every
 * answer, refusals included, is handed to `onDate` (the client's clock, `clock.ts`).
 */
import { DanmuError } from "./errors.js";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** `base` without a trailing slash. */
export function trimBase(base: string): string {
  return base.replace(/\/+$/, "");
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  timeoutMs: number;
  /** Cancels the call: it rejects with kind `aborted`. */
  signal?: AbortSignal | undefined;
  /** Told the answer's `Date` header and the call's round trip in milliseconds. */
  onDate?: (date: string | null, roundTripMs: number) => void;
}

export async function requestJson<T>(fetchFn: FetchLike, method: string, url: string, options: RequestOptions): Promise<T> {
  const what = `${method} ${url.replace(/[?].*$/, "")}`;
  if (options.signal?.aborted) throw new DanmuError("aborted", what, "cancelled");
  const headers: Record<string, string> = { Accept: "application/json" };
  if (options.token) headers["Authorization"] = `Bearer ${options.token}`;
  const init: RequestInit = { method, headers, cache: "no-store" };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const controller = new AbortController();
  init.signal = controller.signal;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, options.timeoutMs);
  const onAbort = () => controller.abort();
  options.signal?.addEventListener("abort", onAbort);
  const started = Date.now();
  let response: Response;
  let text: string;
  try {
    response = await fetchFn(url, init);
    options.onDate?.(response.headers?.get?.("Date") ?? null, Date.now() - started);
    text = await response.text();
  } catch (e) {
    if (timedOut) throw new DanmuError("timeout", what, `no answer in ${options.timeoutMs} ms`);
    if (options.signal?.aborted) throw new DanmuError("aborted", what, "cancelled");
    throw new DanmuError("http", what, String((e as Error)?.message ?? e));
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
  let data: unknown = undefined;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  const body = data && typeof data === "object" ? (data as { error_code?: unknown; error_reason?: unknown }) : undefined;
  const code = Number(body?.error_code ?? 0) || 0;
  if (!response.ok || code !== 0) {
    if (body && (code !== 0 || typeof body.error_reason === "string")) {
      const reason = typeof body.error_reason === "string" && body.error_reason ? body.error_reason : `HTTP ${response.status}`;
      throw new DanmuError("refused", what, reason, code, response.status);
    }
    throw new DanmuError("http", what, `HTTP ${response.status}`, 0, response.status);
  }
  if (!body) throw new DanmuError("http", what, "the answer is not a JSON object", 0, response.status);
  return body as T;
}

/** True for a refusal of the token itself (401, or 1003 on an HTTP call). */
export function isTokenRefusal(e: unknown): boolean {
  return e instanceof DanmuError && e.kind === "refused" && (e.status === 401 || e.error_code === 1003);
}
