/**
 * `DanmuError`: the one error type the SDK throws and rejects with. `kind` says where it came
 * from; `error_code` and `error_reason` are the wire's when the broker answered (PROTOCOL.md
 * 2.7 for the WebSocket, section 3 and the README's table for the HTTP calls).
 */

export type DanmuErrorKind =
  /** The broker refused a frame or an HTTP call (`error_code` != 0). */
  | "refused"
  /** The HTTP call failed below the API: network error, non-JSON body. */
  | "http"
  /** No answer within `requestTimeoutMs`. */
  | "timeout"
  /** The connection closed before the answer came; the report may or may not have been carried out. */
  | "disconnected"
  /** A report was made while the client had no open connection. */
  | "not_connected"
  /** The client was closed by the app, or for good (kicked as `replaced`, token refused). */
  | "closed";

export class DanmuError extends Error {
  override readonly name = "DanmuError";
  readonly kind: DanmuErrorKind;
  /** The broker's `error_code` (1001..., 2001...) when it answered with one, else 0. */
  readonly error_code: number;
  readonly error_reason: string;
  /** The action (WebSocket) or `METHOD path` (HTTP) that failed. */
  readonly for: string;
  /** The HTTP status of a failed HTTP call, else 0. */
  readonly status: number;

  constructor(kind: DanmuErrorKind, forWhat: string, reason: string, errorCode = 0, status = 0) {
    super(`${forWhat ? forWhat + ": " : ""}${reason}${errorCode ? ` (${errorCode})` : ""}`);
    this.kind = kind;
    this.for = forWhat;
    this.error_reason = reason;
    this.error_code = errorCode;
    this.status = status;
  }
}
