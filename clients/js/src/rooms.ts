/**
 * `RoomsApi`: the live-room calls of PROTOCOL.md section 3 (create, go live, close, link a
 * game session, like, list, get one), authenticated with the client JWT as `Bearer`.
 * Each call answers the room (or the list) or throws a `DanmuError` with the broker's
 * `error_code` (1001 bad parameters, 1003 token, 2001 no such room, 2002 not the owner,
 * 2003 status does not allow it, 2004 game_sess taken, 2005 store unavailable).
 */
import type { CreateRoomRequest, CreatedRoom, LinkGameRequest, LiveRoom, RoomList } from "./protocol.js";
import { type FetchLike, type TokenSource, requestJson, tokenOf, trimBase } from "./http.js";

export interface RoomsApiOptions {
  /** The broker's HTTP base, e.g. `http://127.0.0.1:8080` (the `/iapi` paths are added). */
  baseUrl: string;
  /** The client JWT (HS256, issued by the app's backend), or a function answering it. */
  token: TokenSource;
  /** Defaults to the global `fetch` (browsers, Node.js 18+). */
  fetch?: FetchLike;
  /** Milliseconds before a call fails with `timeout`; default 10000. */
  timeoutMs?: number;
}

type Answer<T> = T & { error_code: number; error_reason: string };

export class RoomsApi {
  private readonly base: string;
  private readonly token: TokenSource;
  private readonly fetchFn: FetchLike;
  private readonly timeoutMs: number;

  constructor(options: RoomsApiOptions) {
    this.base = trimBase(options.baseUrl);
    this.token = options.token;
    this.fetchFn = options.fetch ?? ((input, init) => fetch(input, init));
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** `POST /iapi/rooms`: a room owned by the caller, status `new`; only this answer has `push_url`. */
  createRoom(request: CreateRoomRequest): Promise<Answer<CreatedRoom>> {
    return this.call("POST", "/iapi/rooms", request);
  }

  /** `POST /iapi/rooms/{id}/live`: the owner reports the push began (`new` -> `live`, listed from now on). */
  goLive(roomId: number | string): Promise<Answer<LiveRoom>> {
    return this.call("POST", `${roomPath(roomId)}/live`, {});
  }

  /** `POST /iapi/rooms/{id}/close`: the owner ends the room (-> `closed`, off the list). */
  closeRoom(roomId: number | string): Promise<Answer<LiveRoom>> {
    return this.call("POST", `${roomPath(roomId)}/close`, {});
  }

  /** `POST /iapi/rooms/{id}/game`: the danmu of this BIGO game session go to the room's channel. */
  linkGame(roomId: number | string, link: LinkGameRequest): Promise<Answer<LiveRoom>> {
    return this.call("POST", `${roomPath(roomId)}/game`, link);
  }

  /** `POST /iapi/rooms/{id}/like`: likes + 1 on a live room. */
  like(roomId: number | string): Promise<Answer<LiveRoom>> {
    return this.call("POST", `${roomPath(roomId)}/like`, {});
  }

  /** `GET /iapi/rooms?page=&page_size=`: live rooms, newest first (`page_size` 1 to 100, default 20). */
  listRooms(options: { page?: number; page_size?: number } = {}): Promise<Answer<RoomList>> {
    const q = new URLSearchParams();
    if (options.page !== undefined) q.set("page", String(options.page));
    if (options.page_size !== undefined) q.set("page_size", String(options.page_size));
    const query = q.toString();
    return this.call("GET", `/iapi/rooms${query ? `?${query}` : ""}`);
  }

  /** `GET /iapi/rooms/{id}`: one room, whatever its status. */
  getRoom(roomId: number | string): Promise<Answer<LiveRoom>> {
    return this.call("GET", roomPath(roomId));
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<Answer<T>> {
    const token = await tokenOf(this.token);
    return requestJson<Answer<T>>(this.fetchFn, method, this.base + path, { token, body, timeoutMs: this.timeoutMs });
  }
}

function roomPath(roomId: number | string): string {
  return `/iapi/rooms/${encodeURIComponent(String(roomId))}`;
}
