/**
 * The wire types of danmu-broker's app client protocol (docs/protocol.md section 2) and of its
 * live-room API (section 3), as TypeScript declarations. Field names are exactly the wire's,
 * snake_case and all, so that what an app reads here is what docs/protocol-by-example.md shows.
 *
 * Every type describes what the broker sends today; fields the contract calls optional, or
 * that a newer broker adds (`epoch`), are optional here.
 */

// ---------------------------------------------------------------- common parameters (2.1)

/** The answer of `GET /iapi/websocket/end_point`. */
export interface EndPointAnswer {
  error_code: number;
  error_reason: string;
  /** `ws://host:port/iapi/websocket` (or `wss://`) of the node to connect to. */
  end_point: string;
  /** Seconds between heartbeats. */
  ping_interval: number;
}

/** The answer of `GET /iapi/user/info` (2.5). */
export interface UserInfoAnswer {
  error_code: number;
  error_reason: string;
  user_id: string;
  /** The `channel_name` of the user's room, `""` when none. */
  current_room_id: string;
}

// ---------------------------------------------------------------- direct frames (2.2, 2.3)

/** The first frame of every connection. */
export interface ConnectedFrame {
  action: "connected";
  /** New for every connection; signs every client frame. */
  online_token: string;
  ping_interval: number;
  server_time: number;
}

export interface PongFrame {
  action: "pong";
  server_time: number;
}

/**
 * Sent before the server closes a connection: `replaced` (same user_id and sid connected
 * again), `shutdown` (the node stops; close code 1012) or `reconnect` (the node was cut off
 * from the others; 1012).
 */
export interface KickedFrame {
  action: "kicked";
  reason: "replaced" | "shutdown" | "reconnect" | (string & {});
  /** With `shutdown`: how long to wait before reconnecting, drawn by the broker to spread its clients' returns (docs/protocol.md 4). */
  retry_after_ms?: number;
}

/** The answer to an accepted report. Action-specific fields follow the envelope. */
export interface AckFrame {
  action: "ack";
  for: string;
  error_code: 0;
  error_reason: string;
  /** The `seq` of the event the report caused (absent for `ptp` gifts and reports that cause none). */
  seq?: number;
  room_seat?: Seat;
  room?: RoomSnapshot;
  last_seq?: number;
  recovered?: boolean;
  epoch?: string;
}

/** The answer to a refused frame (error codes in section 2.7). `for` is `""` when the frame could not be read or was rate limited. */
export interface ErrorFrame {
  action: "error";
  for: string;
  error_code: number;
  error_reason: string;
}

// ---------------------------------------------------------------- acks of each report

/** The room as the `ack` of `enter_room_report` shows it. */
export interface RoomSnapshot {
  channel_name: string;
  /** Users in the room (several devices of one user count once). */
  members: number;
  seats: Seat[];
  last_seq: number;
  /** The room's numbering epoch (docs/protocol.md 2.6), when the broker sends it. */
  epoch?: string;
  /** `live`, `game`, `closed` or `banned` once known. */
  status?: RoomStatusValue;
}

export interface EnterRoomAck extends AckFrame {
  for: "enter_room_report";
  room: RoomSnapshot;
  /** The seq of this member's own `enter_room` (not sent to it): events after it are live. */
  last_seq: number;
  /** Present when the report carried `last_seq`: true when every missed event is replayed. */
  recovered?: boolean;
}

export interface SeatAck extends AckFrame {
  room_seat: Seat;
}

// ---------------------------------------------------------------- room events (2.4)

export interface Seat {
  id: number;
  user_id: string;
  nickname: string;
  sex: number | string | null;
  avatar_url: string;
  avatar_small_url: string;
  /** 1 taken, 0 free. */
  status: number;
  /** 1 open, 0 muted. */
  microphone: number;
  rank: number;
  room_id: string;
}

/** What every room event carries besides its own fields. */
export interface EventBase {
  channel_name: string;
  /** Per room, from 1, strictly increasing; absent on events for one member only (`ptp` gifts, `hang_up`). */
  seq?: number;
  /** Milliseconds. */
  ts: number;
}

export interface Profile {
  user_id: string;
  nickname: string;
  sex: number | string | null;
  avatar_url: string;
  avatar_small_url: string;
}

export interface EnterRoomEvent extends EventBase, Profile {
  action: "enter_room";
  i_segment: string;
  i_segment_text: string;
  user_car_gift: unknown;
}

export interface ExitRoomEvent extends EventBase {
  action: "exit_room";
  user_id: string;
  /** The seat the user freed, or null when it held none. */
  room_seat: Seat | null;
}

export interface SendTopicMsgEvent extends EventBase, Profile {
  action: "send_topic_msg";
  content: string;
}

export interface Gift {
  id: string;
  sender_id: string;
  receiver_id: string;
  sender_nickname: string;
  receiver_nickname: string;
  name: string;
  image_url: string;
  image_small_url: string;
  image_big_url: string;
  dynamic_image_url: string;
  num: number;
  sender_room_seat_id: number | null;
  receiver_room_seat_id: number | null;
}

export interface SendGiftEvent extends EventBase {
  action: "send_gift";
  notify_type: NotifyType;
  gift: Gift;
}

export interface UpEvent extends EventBase {
  action: "up";
  room_seat: Seat;
}

export interface DownEvent extends EventBase {
  action: "down";
  room_seat: Seat;
}

export interface RoomNoticeEvent extends EventBase {
  action: "room_notice";
  /** Seconds the notice should stay up. */
  expire_time: number;
  content: string;
  client_url: string;
}

export interface HangUpEvent extends EventBase {
  action: "hang_up";
  user_id: string;
  receiver_id: string;
}

/** A BIGO `heart`. */
export interface LikeEvent extends EventBase {
  action: "like";
  user_id: string;
  nickname: string;
  avatar_url: string;
  count: number;
}

/** A BIGO danmu item of a type without its own event, as received. */
export interface DanmuEvent extends EventBase {
  action: "danmu";
  item: Record<string, unknown>;
}

export type RoomStatusValue = "live" | "game" | "closed" | "banned";

export interface RoomStatusEvent extends EventBase {
  action: "room_status";
  status: RoomStatusValue;
}

/** Every room event by its `action`. */
export interface RoomEventMap {
  enter_room: EnterRoomEvent;
  exit_room: ExitRoomEvent;
  send_topic_msg: SendTopicMsgEvent;
  send_gift: SendGiftEvent;
  up: UpEvent;
  down: DownEvent;
  room_notice: RoomNoticeEvent;
  hang_up: HangUpEvent;
  like: LikeEvent;
  danmu: DanmuEvent;
  room_status: RoomStatusEvent;
}

export type RoomEventName = keyof RoomEventMap;
export type RoomEvent = RoomEventMap[RoomEventName];

export const ROOM_EVENT_NAMES: readonly RoomEventName[] = [
  "enter_room",
  "exit_room",
  "send_topic_msg",
  "send_gift",
  "up",
  "down",
  "room_notice",
  "hang_up",
  "like",
  "danmu",
  "room_status",
];

// ---------------------------------------------------------------- reports (2.3)

export type NotifyType = "bc" | "ptp";

/** The `gift` of `send_gift_report`; other fields (`image_url`, ...) pass through to the event. */
export interface GiftReport {
  id: string | number;
  name: string;
  num: number;
  receiver_id: string;
  image_url?: string;
  image_small_url?: string;
  image_big_url?: string;
  dynamic_image_url?: string;
  [extra: string]: unknown;
}

// ---------------------------------------------------------------- live-room API (3)

export type LiveRoomStatus = "new" | "live" | "closed" | "banned";

export interface PlayUrls {
  rtmp: string;
  flv: string;
  hls: string;
}

/** A live room as every answer of section 3 shows it. */
export interface LiveRoom {
  room_id: number;
  /** The room's channel (its room_id as a string): enter it with `enterRoom`. */
  channel_name: string;
  stream_id: string;
  owner_id: string;
  title: string;
  location: string;
  cover_url: string;
  status: LiveRoomStatus;
  viewers: number;
  likes: number;
  play_urls: PlayUrls;
  game_id: string;
  game_sess: string;
  /** Milliseconds; 0 = not yet. */
  created_at: number;
  live_at: number;
  ended_at: number;
}

/** The create answer: the room and its push URL (only this answer has it). */
export interface CreatedRoom extends LiveRoom {
  push_url: string;
}

export interface RoomList {
  rooms: LiveRoom[];
  page: number;
  page_size: number;
  total: number;
}

export interface CreateRoomRequest {
  title: string;
  location?: string;
  cover_url?: string;
}

export interface LinkGameRequest {
  game_id?: string;
  game_sess: string;
}
