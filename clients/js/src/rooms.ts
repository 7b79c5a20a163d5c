/**
 * `RoomsApi`: the live-room calls of docs/protocol.md section 3 (create, go live, close, link
 * a game session, like, list, get one), authenticated with the client JWT as `Bearer`.
 * Each call answers the room (or the list) or throws a `DanmuError` with the broker's
 * `error_code` (`RoomErrorCodes` in `errors.ts`: 1001 bad parameters, 1003 token, 2001 no such
 * room, 2002 not the owner, 2003 status does not allow it, 2004 game_sess taken, 2005 store
 * unavailable, 2006 admin key). A token function is cached (`token.ts`); a 401 asks it again
 * and retries the call once with the new token.
 */
import type { CreateRoomRequest, CreatedRoom, LinkGameRequest, LiveRoom, RoomList } from "./protocol.js";
import { DanmuError } from "./errors.js";
import { type FetchLike, isTokenRefusal, requestJson, trimBase } from "./http.js";
import { TokenCache, type TokenSource, UnauthorizedError } from "./token.js";

/** Bounds one call: `timeoutMs` (default the API's), and `signal` to cancel it. */
export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

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
  private readonly tokens: TokenCache;
  private readonly fetchFn: FetchLike;
  private readonly timeoutMs: number;

  /** `tokens` is the `DanmuClient`'s own cache, shared with it (not for apps). */
  constructor(options: RoomsApiOptions, tokens?: TokenCache) {
    this.base = trimBase(options.baseUrl);
    this.tokens = tokens ?? new TokenCache(options.token);
    this.fetchFn = options.fetch ?? ((input, init) => fetch(input, init));
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** `POST /iapi/rooms`: a room owned by the caller, status `new`; only this answer has `push_url`. */
  createRoom(request: CreateRoomRequest, options?: CallOptions): Promise<Answer<CreatedRoom>> {
    return this.call("POST", "/iapi/rooms", request, options);
  }

  /** `POST /iapi/rooms/{id}/live`: the owner reports the push began (`new` -> `live`, listed from now on). */
  goLive(roomId: number | string, options?: CallOptions): Promise<Answer<LiveRoom>> {
    return this.call("POST", `${roomPath(roomId)}/live`, {}, options);
  }

  /** `POST /iapi/rooms/{id}/close`: the owner ends the room (-> `closed`, off the list). */
  closeRoom(roomId: number | string, options?: CallOptions): Promise<Answer<LiveRoom>> {
    return this.call("POST", `${roomPath(roomId)}/close`, {}, options);
  }

  /** `POST /iapi/rooms/{id}/game`: the danmu of this BIGO game session go to the room's channel. */
  linkGame(roomId: number | string, link: LinkGameRequest, options?: CallOptions): Promise<Answer<LiveRoom>> {
    return this.call("POST", `${roomPath(roomId)}/game`, link, options);
  }

  /** `POST /iapi/rooms/{id}/like`: likes + 1 on a live room. */
  like(roomId: number | string, options?: CallOptions): Promise<Answer<LiveRoom>> {
    return this.call("POST", `${roomPath(roomId)}/like`, {}, options);
  }

  /** `GET /iapi/rooms?page=&page_size=`: live rooms, newest first (`page_size` 1 to 100, default 20). */
  listRooms(options: { page?: number; page_size?: number } & CallOptions = {}): Promise<Answer<RoomList>> {
    const q = new URLSearchParams();
    if (options.page !== undefined) q.set("page", String(options.page));
    if (options.page_size !== undefined) q.set("page_size", String(options.page_size));
    const query = q.toString();
    return this.call("GET", `/iapi/rooms${query ? `?${query}` : ""}`, undefined, options);
  }

  /** `GET /iapi/rooms/{id}`: one room, whatever its status. */
  getRoom(roomId: number | string, options?: CallOptions): Promise<Answer<LiveRoom>> {
    return this.call("GET", roomPath(roomId), undefined, options);
  }

  private async call<T>(method: string, path: string, body: unknown, options: CallOptions = {}): Promise<Answer<T>> {
    const request = async () => {
      let token: string;
      try {
        token = await this.tokens.get();
      } catch (e) {
        if (e instanceof UnauthorizedError) throw new DanmuError("unauthorized", `${method} ${path}`, e.message, 1003);
        throw new DanmuError("http", `${method} ${path}`, `the token function failed: ${String((e as Error)?.message ?? e)}`);
      }
      try {
        return await requestJson<Answer<T>>(this.fetchFn, method, this.base + path, {
          token,
          body,
          timeoutMs: options.timeoutMs ?? this.timeoutMs,
          signal: options.signal,
        });
      } catch (e) {
        if (isTokenRefusal(e)) this.tokens.refused(token);
        throw e;
      }
    };
    try {
      return await request();
    } catch (e) {
      // A token function may have a newer token: ask it once more (it may also say stop).
      if (isTokenRefusal(e) && !this.tokens.isFixed) {
        try {
          return await request();
        } catch (again) {
          throw again instanceof DanmuError && again.kind === "unauthorized" ? e : again;
        }
      }
      throw e;
    }
  }
}

function roomPath(roomId: number | string): string {
  return `/iapi/rooms/${encodeURIComponent(String(roomId))}`;
}
