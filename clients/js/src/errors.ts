/**
 * `DanmuError`: the one error type the SDK throws and rejects with, and the table of the
 * broker's error codes. `kind` says where an error came from; `error_code` and `error_reason`
 * are the wire's when the broker answered (docs/protocol.md 2.7 for the WebSocket and
 * `end_point`, section 3 for the live-room calls); `retryable` says whether the same call may
 * succeed later without the app changing anything.
 *
 * The code table lives here, beside the error, so that the SDK's own retry decisions, the
 * `retryable` mark and the words an app shows for a refusal come from one place.
 */

/** Client error codes (docs/protocol.md 2.7), the same on the WebSocket and `end_point`. */
export const ErrorCodes = {
  BAD_PARAMETERS: 1001,
  BAD_SIGN: 1002,
  TOKEN_INVALID: 1003,
  NOT_IN_ROOM: 1004,
  SEAT_TAKEN: 1005,
  RATE_LIMITED: 1006,
  ROOM_CLOSED: 1007,
  FRAME_TOO_LARGE: 1008,
  UNKNOWN_ACTION: 1009,
  TIMESTAMP_OUT_OF_WINDOW: 1010,
  TEMPORARILY_UNAVAILABLE: 1011,
} as const;

/** Error codes of the live-room API (docs/protocol.md 3; the broker's `src/http/rooms.rs`). */
export const RoomErrorCodes = {
  ROOM_NOT_FOUND: 2001,
  NOT_OWNER: 2002,
  WRONG_STATUS: 2003,
  GAME_SESS_TAKEN: 2004,
  STORE_UNAVAILABLE: 2005,
  ADMIN_KEY: 2006,
} as const;

export type ClientErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];
export type RoomErrorCode = (typeof RoomErrorCodes)[keyof typeof RoomErrorCodes];
/** Every code the broker answers with; `error_code` may still carry one a newer broker adds. */
export type ErrorCode = ClientErrorCode | RoomErrorCode;

export interface ErrorCodeInfo {
  /** The code's name on the wire and in metrics (`reason` label), e.g. `seat_taken`. */
  name: string;
  /** True when the same call may succeed later as it is (after a wait, or a clock resync). */
  retryable: boolean;
  /** What it means, in words an app can show a user. */
  text: string;
}

export const ERROR_CODE_INFO: { readonly [C in ErrorCode]: ErrorCodeInfo } = {
  1001: { name: "bad_parameters", retryable: false, text: "a parameter is missing or not valid" },
  1002: { name: "bad_sign", retryable: false, text: "the frame's signature does not match" },
  1003: { name: "token_invalid", retryable: false, text: "the login token is invalid or expired" },
  1004: { name: "not_in_room", retryable: false, text: "not in that room (or holding no seat, or the receiver is not there)" },
  1005: { name: "seat_taken", retryable: false, text: "that seat is taken" },
  1006: { name: "rate_limited", retryable: true, text: "too many messages at once: wait a moment" },
  1007: { name: "room_closed", retryable: false, text: "the room is closed or banned (or the call is full)" },
  1008: { name: "frame_too_large", retryable: false, text: "the message is too large" },
  1009: { name: "unknown_action", retryable: false, text: "the server does not know this action" },
  1010: { name: "timestamp_out_of_window", retryable: true, text: "this device's clock is too far off the server's" },
  1011: { name: "unavailable", retryable: true, text: "the server's store is unreachable for now: retrying" },
  2001: { name: "room_not_found", retryable: false, text: "no such room" },
  2002: { name: "not_owner", retryable: false, text: "only the room's owner may do this" },
  2003: { name: "wrong_status", retryable: false, text: "the room's status does not allow this now" },
  2004: { name: "game_sess_taken", retryable: false, text: "that game session is linked to another room" },
  2005: { name: "store_unavailable", retryable: true, text: "the server's store is unreachable for now: try again" },
  2006: { name: "admin_key", retryable: false, text: "the admin key is missing or wrong" },
};

/** The table's entry for `code`, or undefined for a code this version does not know. */
export function errorCodeInfo(code: number): ErrorCodeInfo | undefined {
  return (ERROR_CODE_INFO as Record<number, ErrorCodeInfo>)[code];
}

export type DanmuErrorKind =
  /** The broker refused a frame or an HTTP call (`error_code` != 0). */
  | "refused"
  /** The HTTP call failed below the API: network error, non-JSON body. */
  | "http"
  /** No answer (or no connection to send it on) within the call's timeout. */
  | "timeout"
  /** The connection closed before the answer came; the report may or may not have been carried out. */
  | "disconnected"
  /** A report was made while the client was not connecting at all (`connect()` never called). */
  | "not_connected"
  /** The app cancelled the call through its `AbortSignal`. */
  | "aborted"
  /** The token function answered "unauthorized, stop" (or a refused token came back unchanged): the client stopped. */
  | "unauthorized"
  /** The client was closed by the app, or for good (kicked as `replaced`, token refused). */
  | "closed";

/** Kinds where the same call may succeed later as it is. */
const RETRYABLE_KINDS: ReadonlySet<DanmuErrorKind> = new Set(["http", "timeout", "disconnected", "not_connected"]);

export class DanmuError extends Error {
  override readonly name = "DanmuError";
  readonly kind: DanmuErrorKind;
  /** The broker's `error_code` (1001..., 2001...) when it answered with one, else 0. */
  readonly error_code: ErrorCode | 0 | (number & {});
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

  /**
   * True when the same call may succeed later as it is: a timeout, a lost connection, a
   * network error or 5xx, and the codes 1006 (rate limited), 1010 (clock; the SDK resyncs),
   * 1011 and 2005 (the store is unreachable for now). False for every other refusal, for
   * `aborted`, `unauthorized` and `closed`.
   */
  get retryable(): boolean {
    if (this.kind === "refused") {
      const info = errorCodeInfo(this.error_code);
      return info ? info.retryable : this.status >= 500;
    }
    if (this.kind === "http") return this.status === 0 || this.status >= 500 || this.status === 429;
    return RETRYABLE_KINDS.has(this.kind);
  }
}

/**
 * Words for an error an app can show a user: the code's text when the broker refused with a
 * known code, else what happened.
 */
export function describeError(error: unknown): string {
  if (!(error instanceof DanmuError)) return String((error as Error)?.message ?? error);
  const info = errorCodeInfo(error.error_code);
  switch (error.kind) {
    case "refused":
      return info ? info.text : error.error_reason || `refused (${error.error_code})`;
    case "timeout":
      return "no answer in time";
    case "disconnected":
      return "the connection was lost before the answer (it may or may not have been done)";
    case "not_connected":
      return "not connected";
    case "aborted":
      return "cancelled";
    case "unauthorized":
      return "not logged in: the login was refused";
    case "closed":
      return info ? info.text : error.error_reason || "the connection is closed";
    case "http":
      return error.status ? `the server answered HTTP ${error.status}` : "the server cannot be reached";
  }
}
