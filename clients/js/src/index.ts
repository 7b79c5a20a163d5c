/**
 * danmu-client: the client SDK of danmu-broker. `DanmuClient` speaks the app client protocol
 * (PROTOCOL.md section 2) over one WebSocket; `RoomsApi` calls the live-room API (section 3);
 * the wire types are in `protocol.ts`.
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
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { RoomsApi } from "./rooms.js";
export type { RoomsApiOptions } from "./rooms.js";
export { DanmuError } from "./errors.js";
export type { DanmuErrorKind } from "./errors.js";
export type { FetchLike, TokenSource } from "./http.js";
export { RoomPosition } from "./position.js";
export type { EnterOutcome } from "./position.js";
export { frameSign, md5Hex } from "./sign.js";
export * from "./protocol.js";
