/**
 * JSON over HTTP for the broker's `/iapi` calls: one place that turns an answer into data or a
 * `DanmuError`. Every answer carries `error_code` (0 = ok) and `error_reason`; refusals come
 * as 4xx/5xx with the same JSON body (PROTOCOL.md 2.1, 3).
 */
import { DanmuError } from "./errors.js";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** A JWT, or a function that answers the current one (called before every use). */
export type TokenSource = string | (() => string | Promise<string>);

export async function tokenOf(source: TokenSource): Promise<string> {
  return typeof source === "function" ? await source() : source;
}

/** `base` without a trailing slash. */
export function trimBase(base: string): string {
  return base.replace(/\/+$/, "");
}

export async function requestJson<T>(
  fetchFn: FetchLike,
  method: string,
  url: string,
  options: { token?: string; body?: unknown; timeoutMs: number },
): Promise<T> {
  const what = `${method} ${url.replace(/[?].*$/, "")}`;
  const headers: Record<string, string> = { Accept: "application/json" };
  if (options.token) headers["Authorization"] = `Bearer ${options.token}`;
  const init: RequestInit = { method, headers, cache: "no-store" };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const controller = typeof AbortController === "function" ? new AbortController() : undefined;
  if (controller) init.signal = controller.signal;
  const timer = setTimeout(() => controller?.abort(), options.timeoutMs);
  let response: Response;
  let text: string;
  try {
    response = await fetchFn(url, init);
    text = await response.text();
  } catch (e) {
    const reason = controller?.signal.aborted ? `no answer in ${options.timeoutMs} ms` : String((e as Error)?.message ?? e);
    throw new DanmuError(controller?.signal.aborted ? "timeout" : "http", what, reason);
  } finally {
    clearTimeout(timer);
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
