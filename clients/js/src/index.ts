/**
 * danmu-client: the client SDK of danmu-broker. `DanmuClient` speaks the app client protocol
 * (docs/protocol.md section 2) over one WebSocket; `RoomsApi` calls the live-room API
 * (section 3); the wire types are in `protocol.ts`, the error codes in `errors.ts`.
 */
export { DanmuClient } from "./client.js";
export type {
  ConnectionState,
  DanmuClientEvents,
  DanmuClientOptions,
  DisconnectInfo,
  EventMeta,
  ReconnectOptions,
  RecoveryInfo,
  WaitOptions,
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { RoomsApi } from "./rooms.js";
export type { CallOptions, RoomsApiOptions } from "./rooms.js";
export { DanmuError, describeError, ERROR_CODE_INFO, ErrorCodes, errorCodeInfo, RoomErrorCodes } from "./errors.js";
export type { ClientErrorCode, DanmuErrorKind, ErrorCode, ErrorCodeInfo, RoomErrorCode } from "./errors.js";
export type { FetchLike } from "./http.js";
export { UnauthorizedError } from "./token.js";
export type { TokenSource } from "./token.js";
export { Backoff } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export type { Lifecycle, LifecycleHandlers } from "./lifecycle.js";
export { RoomPosition } from "./position.js";
export type { EnterOutcome } from "./position.js";
export { frameSign, md5Hex } from "./sign.js";
export * from "./protocol.js";
