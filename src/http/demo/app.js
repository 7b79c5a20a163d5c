/* danmu-broker /demo page logic (plain browser JS, no framework, no build step of its own).
 *
 *  - login:      the SDK's token function asks POST /demo/token for a client JWT (docs/protocol.md
 *                section 6) when it needs one (the SDK caches it until its exp); the page keeps
 *                only the user id and nickname in localStorage, never a token
 *  - live list:  the rooms API (section 3) through the SDK's RoomsApi, refreshed every 5 s
 *  - room view:  the client protocol (section 2) through the SDK's DanmuClient, which signs
 *                frames, pings, matches acks, reconnects and recovers with last_seq/epoch;
 *                this file draws: chat, gifts, seats, likes, notices, the stage
 *  - reloads:    the room position (channel, last_seq, epoch) and the device session id are
 *                kept in sessionStorage: a reload enters the room again from where it was and
 *                the SDK replays what was missed
 *  - refusals:   every error is shown in words (the SDK's describeError), with its code
 *
 * The SDK is /demo/danmu-client.js, the browser bundle of clients/js (built there with
 * `npm run bundle`; the broker embeds it like this file).
 *
 * Everything that comes from the network is untrusted: it is only ever written with
 * textContent / setAttribute, never innerHTML. This file is ASCII-only on purpose
 * (non-ASCII characters are written as \u escapes).
 */
import { DanmuClient, describeError } from "/demo/danmu-client.js";

(function () {
  "use strict";

  // ---------------------------------------------------------------- constants

  var PAGE_SIZE = 10;
  var LIST_REFRESH_MS = 5000;
  var DEFAULT_SEATS = 8;
  var CHAT_LOG_MAX = 500;
  var STAGE_MAX = 80;          // danmu on the stage at once; the oldest go first
  var STAGE_QUEUE_MAX = 40;    // danmu waiting for a free lane; beyond that the oldest skip the stage
  var STAGE_CROSS_MS = 7000;   // time for a danmu to cross the stage
  var LANE_HEIGHT = 30;
  var HEARTS_MAX = 30;
  var GIFT_BANNER_MS = 4000;
  var DEFAULT_NOTICE_S = 10;
  var TOAST_MS = 6000;
  var MAX_CONTENT_CHARS = 500;
  var STORAGE_KEY = "danmu-demo-session";       // localStorage: { user_id, nickname }
  var POSITION_KEY = "danmu-demo-position";     // sessionStorage: { user_id, position }
  var SID_KEY = "danmu-demo-sid";               // sessionStorage: this tab's device session id
  var TIMES = "\u00d7";        // multiplication sign
  var HEART = "\u2665";
  // Gift ids are not specified by the protocol; these are demo ids, 0 for any other name.
  var GIFT_IDS = { Rose: 1, Heart: 2, Lollipop: 3, Rocket: 4, Castle: 5 };

  // ---------------------------------------------------------------- state

  var state = {
    userId: null, nickname: null,
    sid: tabSid(),                           // one device session id per tab, kept across reloads
    client: null,           // the SDK's DanmuClient of this session
    rooms: null,            // the SDK's RoomsApi of this session
    // room
    channel: null,          // the channel we want to be in (null = none)
    memberCount: 0, likeCount: 0,
    names: new Map(),       // user_id -> nickname, learned from events
    // lobby
    page: 1, total: null, listTimer: null, listLoading: false,
    listReloadWanted: false,  // a reload was asked for while one was in flight
    liveRooms: new Map(),   // channel_name -> room object (from the list / create answer)
    myRoom: null,
    // timers for banners
    giftTimer: null, noticeTimer: null,
    laneFreeAt: [],
    stageQueue: [], stageTimer: null   // danmu waiting for a free lane, in arrival (seq) order
  };

  // ---------------------------------------------------------------- small helpers

  function $(id) { return document.getElementById(id); }

  function randomHex(bytes) {
    var a = new Uint8Array(bytes);
    (window.crypto || window.msCrypto).getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join("");
  }

  function tabSid() {
    try {
      var sid = sessionStorage.getItem(SID_KEY);
      if (!sid) { sid = randomHex(16); sessionStorage.setItem(SID_KEY, sid); }
      return sid;
    } catch (e) {
      return randomHex(16);   // storage off: one per page load
    }
  }

  function isSet(v) { return v !== undefined && v !== null; }

  function firstSet() {
    for (var i = 0; i < arguments.length; i++) { if (isSet(arguments[i])) return arguments[i]; }
    return undefined;
  }

  /** The first argument that is set and not "" (the broker sends "" for a free seat's user). */
  function firstNonEmpty() {
    for (var i = 0; i < arguments.length; i++) { if (isSet(arguments[i]) && arguments[i] !== "") return arguments[i]; }
    return undefined;
  }

  function toNumber(v) {
    if (!isSet(v) || v === "") return null;
    var n = Number(v);
    return isFinite(n) ? n : null;
  }

  function str(v) { return isSet(v) ? String(v) : ""; }

  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) e.className = className;
    if (isSet(text)) e.textContent = String(text);
    return e;
  }

  function rememberName(userId, nickname) {
    if (isSet(userId) && userId !== "" && nickname) state.names.set(String(userId), String(nickname));
  }

  function nameOf(userId) {
    if (!isSet(userId) || userId === "") return "";
    return state.names.get(String(userId)) || String(userId);
  }

  /** The display name of an event's sender: nickname, else a known name, else the id. */
  function displayName(ev) {
    rememberName(ev.user_id, ev.nickname);
    return ev.nickname || nameOf(ev.user_id) || "?";
  }

  function isMe(userId) { return isSet(userId) && state.userId !== null && String(userId) === state.userId; }

  // ---------------------------------------------------------------- toast

  /** Shows a message in #toast for a few seconds; identical messages already shown are not repeated. */
  function toast(message, kind) {
    var box = $("toast");
    var text = String(message);
    for (var c = box.firstElementChild; c; c = c.nextElementSibling) {
      if (c.textContent === text) return;
    }
    var item = el("div", "toast-msg" + (kind === "info" ? " info" : ""), text);
    box.appendChild(item);
    while (box.childElementCount > 5) box.firstElementChild.remove();
    setTimeout(function () { item.remove(); }, TOAST_MS);
  }

  function info(message) { toast(message, "info"); }

  // ---------------------------------------------------------------- HTTP

  /** fetch + JSON for /demo/token (not part of the broker's API, so not in the SDK); never throws. */
  function request(method, path, body) {
    var init = { method: method, headers: { "Accept": "application/json" }, cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { ok: res.ok, status: res.status, data: data };
      });
    }, function (err) {
      return { ok: false, status: 0, data: null, networkError: String(err) };
    });
  }

  /** Words for a failed SDK call or a refusal: the SDK's describeError, and the broker's code. */
  function errorText(e) {
    if (!e) return "error";
    if (e.name !== "DanmuError") return String(e.message || e);
    var words = describeError(e);
    return e.error_code ? words + " (" + e.error_code + ")" : words;
  }

  /** Words for a WebSocket close code (docs/protocol.md 2.7). */
  function closeText(code) {
    switch (code) {
      case 1000: return "closed";
      case 1006: return "the network failed";
      case 1009: return "a message was too large";
      case 1012: return "the server restarts";
      case 1013: return "this page fell too far behind";
      case 4000: return "the server stopped answering";
      default: return "closed (" + code + ")";
    }
  }

  /** An SDK call that reports failures in #toast: answers its result, or null on failure. */
  function api(promise) {
    return promise.then(function (data) { return data || {}; }, function (e) { toast(errorText(e)); return null; });
  }

  /** Reports a failed room report in #toast; for promises whose answer the page does not need. */
  function reportFailure(e) { toast(errorText(e)); }

  // ---------------------------------------------------------------- login / session

  /**
   * The SDK's token function for this user: POST /demo/token. The SDK asks it once, caches the
   * JWT until shortly before its exp, and asks again after a refusal. 404 (demo.enabled off)
   * answers null: "unauthorized, stop", so the SDK does not retry a login that cannot work.
   */
  function demoToken(userId, nickname) {
    return function () {
      return request("POST", "/demo/token", { user_id: userId, nickname: nickname }).then(function (r) {
        if (r.status === 404) { toast("/demo/token is off (demo.enabled: false)"); return null; }
        if (r.ok && r.data && r.data.token) return String(r.data.token);
        var why = r.data && r.data.error_reason ? r.data.error_reason : r.status ? "HTTP " + r.status : "network error";
        throw new Error("/demo/token: " + why);   // the SDK tries again later
      });
    };
  }

  /** Logs in with the boxes' user id and nickname; true once the session started. */
  function login() {
    var userId = $("user-id").value.trim();
    var nickname = $("nickname").value.trim() || userId;
    if (!userId) { toast("enter a user id"); return false; }
    startSession(userId, nickname, true);
    return true;
  }

  function startSession(userId, nickname, save) {
    goOffline();
    if (state.userId !== String(userId)) {   // another user: the room created here is not theirs
      state.myRoom = null;
      showMyRoom();
    }
    state.userId = String(userId);
    state.nickname = nickname;
    state.client = newClient(state.userId, nickname);
    state.rooms = state.client.rooms;        // the same token cache
    rememberName(userId, nickname);
    if (save) {
      try { localStorage.setItem(STORAGE_KEY, JSON.stringify({ user_id: userId, nickname: nickname })); } catch (e) { /* private mode */ }
    }
    var me = $("me");
    me.textContent = "logged in as " + nickname + " (" + userId + ")";
    me.className = "logged-in";
    startRoomList();
    goOnline();
    if (state.channel) joinChannel(state.channel, savedPosition(state.channel));   // logged in again while in a channel
  }

  /** Restores the saved user unless the page URL asks for another one. */
  function restoreSession(urlUser) {
    var saved = null;
    try { saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null"); } catch (e) { saved = null; }
    if (!saved || !saved.user_id) return false;
    if (urlUser && urlUser !== String(saved.user_id)) return false;
    $("user-id").value = saved.user_id;
    $("nickname").value = saved.nickname || "";
    startSession(saved.user_id, saved.nickname || saved.user_id, false);
    return true;
  }

  // ---------------------------------------------------------------- the room position across reloads

  /** Keeps where this tab is in its room (the SDK's position), for a reload to recover from. */
  function savePosition() {
    if (!state.client) return;
    var p = state.channel ? state.client.position : null;
    try {
      if (p && p.channel_name === state.channel) sessionStorage.setItem(POSITION_KEY, JSON.stringify({ user_id: state.userId, position: p }));
      else sessionStorage.removeItem(POSITION_KEY);
    } catch (e) { /* storage off */ }
  }

  /** The kept position in `channel` of this user, or undefined. */
  function savedPosition(channel) {
    var saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(POSITION_KEY) || "null"); } catch (e) { saved = null; }
    if (!saved || !saved.position || saved.user_id !== state.userId) return undefined;
    if (channel !== undefined && saved.position.channel_name !== channel) return undefined;
    return saved.position;
  }

  // ---------------------------------------------------------------- live-room list

  function startRoomList() {
    clearInterval(state.listTimer);
    state.page = 1;
    loadRooms();
    state.listTimer = setInterval(loadRooms, LIST_REFRESH_MS);
  }

  /**
   * Reloads the current page of the list. Asked while a load is in flight, it loads once more
   * after that one: the answer in flight may predate the change (a like, a join) that asked.
   */
  function loadRooms() {
    if (!state.rooms) return;
    if (state.listLoading) { state.listReloadWanted = true; return; }
    state.listLoading = true;
    state.listReloadWanted = false;
    state.rooms.listRooms({ page: state.page, page_size: PAGE_SIZE }).then(renderRooms, function (e) {
      // A broker without the live-room list (section 3) answers 404: say so once, quietly,
      // instead of a toast every refresh. Channels can still be joined by name.
      if (e && e.status === 404) renderListMissing();
      else toast(errorText(e));
    }).then(function () {
      state.listLoading = false;
      if (state.listReloadWanted) loadRooms();
    });
  }

  /** Reloads the list when `channel` is a live room's (its viewers or status just changed). */
  function reloadIfRoom(channel) {
    if (channel && state.liveRooms.has(channel)) loadRooms();
  }

  function renderListMissing() {
    var list = $("room-list");
    list.textContent = "";
    var tr = el("tr", "empty-row");
    var td = el("td", null, "this broker serves no live-room list; join a channel by name on the right");
    td.colSpan = 5;
    tr.appendChild(td);
    list.appendChild(tr);
    renderPager(0);
  }

  function rememberLiveRoom(room) {
    if (!room || !isSet(room.room_id)) return;
    var channel = isSet(room.channel_name) ? String(room.channel_name) : String(room.room_id);
    state.liveRooms.set(channel, room);
  }

  function renderRooms(data) {
    var rooms = Array.isArray(data.rooms) ? data.rooms : [];
    state.total = toNumber(data.total);
    if (rooms.length === 0 && state.page > 1) {   // the last page emptied: step back
      state.page -= 1;
      loadRooms();
      return;
    }
    var list = $("room-list");
    list.textContent = "";
    rooms.forEach(function (room) {
      rememberLiveRoom(room);
      // After a reload the page no longer knows which room this user created: take it back
      // from the list, so that it can be closed here (the push URL is only in the create answer).
      if (!state.myRoom && isMe(room.owner_id)) { state.myRoom = room; showMyRoom(); }
      else if (state.myRoom && String(state.myRoom.room_id) === String(room.room_id)) state.myRoom.status = room.status;
      list.appendChild(roomRow(room));
    });
    if (rooms.length === 0) {
      var tr = el("tr", "empty-row");
      var td = el("td", null, "no live rooms");
      td.colSpan = 5;
      tr.appendChild(td);
      list.appendChild(tr);
    }
    renderPager(rooms.length);
  }

  function roomRow(room) {
    var channel = isSet(room.channel_name) ? String(room.channel_name) : String(room.room_id);
    var tr = el("tr", "room" + (channel === state.channel ? " current" : ""));
    tr.setAttribute("data-room-id", str(room.room_id));
    tr.setAttribute("data-channel-name", channel);

    var titleTd = el("td");
    titleTd.appendChild(el("div", "room-title", room.title || "(untitled)"));
    titleTd.appendChild(el("div", "room-channel", "#" + channel + (room.owner_id ? " \u00b7 " + room.owner_id : "")));
    tr.appendChild(titleTd);
    tr.appendChild(el("td", "room-viewers", str(firstSet(room.viewers, 0))));
    tr.appendChild(el("td", "room-likes", str(firstSet(room.likes, 0))));

    // The play URLs are long and alike but for their ends: one short link each, the whole URL
    // in its href and tooltip (copy it with the browser's "copy link").
    var urls = room.play_urls || {};
    var urlTd = el("td", "play-urls");
    ["rtmp", "flv", "hls"].forEach(function (k) {
      if (!urls[k]) return;
      var a = el("a", "play-url", k);
      a.setAttribute("data-kind", k);
      a.href = String(urls[k]);
      a.title = String(urls[k]);
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      urlTd.appendChild(a);
    });
    tr.appendChild(urlTd);

    var actions = el("td");
    var join = el("button", "room-join", "join");
    join.type = "button";
    join.addEventListener("click", function () { $("channel").value = channel; joinChannel(channel); });
    var like = el("button", "room-like secondary", HEART + " like");
    like.type = "button";
    like.addEventListener("click", function () { likeRoom(room.room_id); });
    actions.appendChild(join);
    actions.appendChild(like);
    tr.appendChild(actions);
    return tr;
  }

  function renderPager(shown) {
    var pages = state.total !== null ? Math.max(1, Math.ceil(state.total / PAGE_SIZE)) : null;
    $("page-info").textContent = "page " + state.page + (pages ? " / " + pages : "") +
      (state.total !== null ? " \u00b7 " + state.total + " live" : "");
    $("page-prev").disabled = state.page <= 1;
    $("page-next").disabled = pages !== null ? state.page >= pages : shown < PAGE_SIZE;
  }

  function changePage(delta) {
    var next = state.page + delta;
    if (next < 1) return;
    state.page = next;
    loadRooms();
  }

  function likeRoom(roomId) {
    return api(state.rooms.like(roomId)).then(function (data) {
      if (data) loadRooms();
      return data;
    });
  }

  function createRoom() {
    var title = $("room-title").value.trim();
    if (!title) { toast("enter a room title"); return; }
    api(state.rooms.createRoom({ title: title })).then(function (data) {
      if (!data) return;
      var room = {
        room_id: data.room_id,
        channel_name: isSet(data.channel_name) ? String(data.channel_name) : String(data.room_id),
        stream_id: data.stream_id, push_url: data.push_url, title: title,
        owner_id: state.userId, status: "new"
      };
      state.myRoom = room;
      rememberLiveRoom(room);
      showMyRoom();
      $("room-title").value = "";
      info("room " + room.room_id + " created; push to the URL, or press Go live");
    });
  }

  /** Links a BIGO game_sess to my room: its danmu then go to the room's channel (section 3 /game). */
  function linkGame() {
    var room = state.myRoom;
    var gameSess = $("game-sess").value.trim();
    if (!room) return;
    if (!gameSess) { toast("enter a game_sess"); return; }
    api(state.rooms.linkGame(room.room_id, { game_sess: gameSess })).then(function (data) {
      if (!data) return;
      room.game_sess = str(data.game_sess || gameSess);
      showMyRoom();
      info("danmu of game_sess " + room.game_sess + " now go to channel " + room.channel_name);
    });
  }

  function showMyRoom() {
    var room = state.myRoom;
    $("my-room").hidden = !room;
    if (!room) return;
    $("my-room-id").textContent = str(room.room_id);
    $("my-room-channel").textContent = room.channel_name;
    $("my-room-status").textContent = str(room.status) + (room.game_sess ? " \u00b7 game_sess " + room.game_sess : "");
    $("my-push-url").textContent = str(room.push_url);
    $("my-push").hidden = !room.push_url;
    $("go-live").disabled = room.status !== "new";
  }

  function myRoomAction(action) {
    var room = state.myRoom;
    if (!room) return;
    var call = action === "live" ? state.rooms.goLive(room.room_id) : state.rooms.closeRoom(room.room_id);
    api(call).then(function (data) {
      if (!data) return;
      room.status = data.status ? String(data.status) : action === "live" ? "live" : "closed";
      info("room " + room.room_id + (action === "live" ? " is live" : " closed"));
      if (action === "close") state.myRoom = null;
      showMyRoom();
      loadRooms();
    });
  }

  // ---------------------------------------------------------------- connection indicator

  /** Shows the SDK's connection state: connecting, connected, reconnecting, or offline; `detail` says more. */
  function setConn(status, detail) {
    if (status === "idle" || status === "closed") status = "offline";
    var c = $("conn-status");
    c.textContent = detail ? status + " (" + detail + ")" : status;
    c.className = status;
    c.setAttribute("data-state", status);
  }

  // ---------------------------------------------------------------- the SDK's client

  /** A DanmuClient for this session, its events wired to the page. */
  function newClient(userId, nickname) {
    var client = new DanmuClient({ baseUrl: location.origin, userId: userId, token: demoToken(userId, nickname), sid: state.sid });
    var mine = function () { return client === state.client; };
    client.on("state", function (s) { if (mine()) setConn(s); });
    client.on("event", function (ev, meta) {
      if (!mine()) return;
      onRoomEvent(ev, meta.replayed);
      savePosition();
    });
    client.on("disconnected", function (d) {
      if (!mine()) return;
      var retry = d.reconnecting && isSet(d.retryInMs) ? "back in " + (d.retryInMs / 1000).toFixed(1) + " s" : "";
      if (d.reconnecting) setConn("reconnecting", closeText(d.code) + (retry ? ", " + retry : ""));
      if (state.channel && d.reconnecting) logLine("system-line", "connection lost: " + closeText(d.code) + "; reconnecting" + (retry ? ", " + retry : "") + "\u2026");
    });
    client.on("kicked", function (frame) {
      if (!mine()) return;
      var reason = frame.reason || "unknown";
      // `replaced` (this user+sid connected elsewhere): the SDK does not fight it, the page is
      // offline now. `shutdown`/`reconnect` (the node restarts or lost its peers): the SDK
      // reconnects and recovers by itself, after retry_after_ms when the broker says.
      var words = reason === "replaced" ? "this user connected again with the same device session elsewhere: this page is offline now"
        : reason === "shutdown" ? "the server restarts: reconnecting"
        : reason === "reconnect" ? "the server lost its peers: reconnecting"
        : "kicked: " + reason;
      if (isSet(frame.retry_after_ms) && reason !== "replaced") words += " in " + (frame.retry_after_ms / 1000).toFixed(1) + " s";
      if (reason === "replaced") toast(words); else info(words);
      logLine("system-line", "kicked by the server: " + words);
    });
    client.on("recovery", function (r) { if (mine()) onRecovery(r); });
    client.on("error", function (e) {
      if (!mine()) return;
      if (e.kind === "unauthorized" || e.kind === "closed" || e.error_code === 1003) {
        toast(errorText(e));
        if (e.kind === "unauthorized" || e.error_code === 1003) toast("log in again");
      } else if (e.kind === "refused" && e.retryable) {
        info(errorText(e));                    // e.g. 1011 while the store is away: the SDK retries
        if (e.for === "enter_room_report") logLine("system-line", "entering " + state.channel + ": " + errorText(e));
      }
      // Failed attempts (network, timeouts) show in the connection indicator.
    });
    return client;
  }

  function goOnline() {
    if (state.client) state.client.connect().catch(function () { /* told through the "error" event */ });
  }

  /** Closes the client for good (an SDK client never connects again after close()). */
  function goOffline() {
    if (state.client) state.client.close();
    setConn("offline");
  }

  // ---------------------------------------------------------------- joining / leaving

  /** Joins `name`; with `from` (a kept position), from there: the SDK replays what was missed. */
  function joinChannel(name, from) {
    name = String(name || "").trim();
    if (!name) { toast("enter a channel name"); return; }
    if (!state.client) { toast("log in first"); return; }
    state.channel = name;
    resetRoomView();
    logLine("system-line", (from ? "back to " : "joining ") + name + (from ? " from seq " + from.last_seq : "") + "\u2026");
    // Connects first when offline; waits for the connection; retries what may pass (1011).
    state.client.enterRoom(name, from).then(function (ack) {
      if (state.channel !== name) return;   // another join meanwhile
      if (!from) showRecovered(null);       // with `from`, the recovery event said how it went
      logLine("system-line", "joined " + name);
      showSnapshot(ack);
      savePosition();
    }, function (e) {
      if (state.channel !== name || e.kind === "closed") return;
      enterFailed(name, e);
    });
  }

  /** After a reconnect the SDK entered again: say whether everything was replayed. */
  function onRecovery(r) {
    if (r.channel_name !== state.channel) return;
    if (r.error) { enterFailed(r.channel_name, r.error); return; }   // 1007 closed, ...: for good
    showRecovered(r.recovered);
    logLine("system-line", "back in " + state.channel + ", recovered: " + r.recovered);
    // Recovered: the replayed events update the view. Not: the snapshot is the room now.
    showSnapshot(r.ack);
  }

  function enterFailed(name, e) {
    toast(errorText(e));
    logLine("system-line", "could not enter " + name + ": " + errorText(e));
    state.channel = null;
    resetRoomView();
    savePosition();
  }

  /** Draws the room from the enter ack's snapshot: seats, members, status. */
  function showSnapshot(ack) {
    var room = ack && ack.room ? ack.room : {};
    renderSeats(room.seats);
    setMemberCount(memberCountFrom(room.members));
    if (isSet(room.status)) setRoomStatus(room.status);
    reloadIfRoom(state.channel);   // its viewers count now includes us
  }

  function showRecovered(value) {
    var r = $("recovered");
    r.textContent = value === null ? "" : "recovered: " + value;
    r.className = "stat" + (value === null ? "" : value ? " rec-true" : " rec-false");
  }

  function leaveChannel() {
    if (!state.channel) return;
    var channel = state.channel;
    state.client.exitRoom().catch(function () { /* offline: the broker already dropped us */ });
    logLine("system-line", "left " + channel);
    state.channel = null;
    resetRoomView();
    savePosition();
    reloadIfRoom(channel);
  }

  /** Clears the per-room parts of the view (the chat log is kept: it only grows). */
  function resetRoomView() {
    var stage = $("stage");
    Array.prototype.slice.call(stage.querySelectorAll(".danmu, .heart")).forEach(function (e) { e.remove(); });
    state.laneFreeAt = [];
    clearStageQueue();
    hideBanner("gift-banner");
    hideBanner("notice-banner");
    if (state.channel) renderSeats(undefined); else clearSeats();
    setMemberCount(0);
    state.likeCount = 0;
    $("like-count").textContent = "0";
    var room = state.channel ? state.liveRooms.get(state.channel) : null;
    setRoomStatus(room && room.status ? room.status : "-");
    showRecovered(null);
    renderStageChannel();
    Array.prototype.slice.call(document.querySelectorAll("#room-list tr.room")).forEach(function (tr) {
      tr.classList.toggle("current", tr.getAttribute("data-channel-name") === state.channel);
    });
  }

  function renderStageChannel() {
    var room = state.channel ? state.liveRooms.get(state.channel) : null;
    $("stage-channel").textContent = !state.channel ? "not in a room"
      : "# " + state.channel + (room && room.title ? " \u00b7 " + room.title : "");
  }

  // ---------------------------------------------------------------- room events

  var EVENT_HANDLERS = {
    send_topic_msg: onTopicMsg,
    send_gift: onGift,
    enter_room: onEnterRoom,
    exit_room: onExitRoom,
    up: onSeatUp,
    down: onSeatDown,
    room_notice: onNotice,
    room_status: onRoomStatus,
    like: onLike,
    danmu: onDanmuItem,
    hang_up: onHangUp
  };

  /**
   * Dispatches a room event from the SDK, which already dropped duplicates and other rooms'
   * numbered events. `inSnapshot`: a replayed event the enter ack's snapshot already covers
   * (shown, but it does not change seats or the member count again).
   */
  function onRoomEvent(m, inSnapshot) {
    var handler = EVENT_HANDLERS[m.action];
    if (!handler) { console.debug("unhandled event", m); return; }
    if (isSet(m.channel_name) && String(m.channel_name) !== state.channel) {
      if (m.action === "hang_up") handler(m, false);   // a call ended elsewhere still concerns us
      return;
    }
    handler(m, inSnapshot);
  }

  function onTopicMsg(m) {
    var text = displayName(m) + ": " + str(m.content);
    var mine = isMe(m.user_id);
    logLine("danmu" + (mine ? " mine" : ""), text, m);
    launchDanmu(text, m, mine);
  }

  function giftText(m) {
    var g = m.gift || {};
    rememberName(g.sender_id, g.sender_nickname);
    rememberName(g.receiver_id, g.receiver_nickname);
    var sender = g.sender_nickname || nameOf(g.sender_id) || "someone";
    var receiver = g.receiver_nickname || nameOf(g.receiver_id) || "the host";
    var num = isSet(g.num) ? g.num : 1;
    var name = g.name || ("gift " + str(g.id));
    return sender + " sent " + receiver + " " + num + TIMES + " " + name;
  }

  function onGift(m) {
    var text = giftText(m);
    logLine("gift-line" + (m.notify_type === "ptp" ? " ptp" : ""), text, m);
    showBanner("gift-banner", text, GIFT_BANNER_MS);
  }

  function onEnterRoom(m, inSnapshot) {
    logLine("member-line", displayName(m) + " entered", m);
    if (!inSnapshot) setMemberCount(state.memberCount + 1);
  }

  function onExitRoom(m, inSnapshot) {
    logLine("member-line", displayName(m) + " left", m);
    if (inSnapshot) return;
    setMemberCount(Math.max(0, state.memberCount - 1));
    freeSeatsOf(m.user_id, m.room_seat);
  }

  function onSeatUp(m, inSnapshot) {
    var s = m.room_seat || {};
    rememberName(s.user_id, s.nickname);
    logLine("seat-line", (s.nickname || nameOf(s.user_id) || "someone") + " took seat " + str(s.id), m);
    if (inSnapshot || !isSet(s.id)) return;
    if (isSet(s.user_id) && s.user_id !== "") freeSeatsOf(s.user_id, null);   // one seat per user
    setSeat(s.id, s.user_id, s.nickname);
  }

  function onSeatDown(m, inSnapshot) {
    var s = m.room_seat || {};
    var seatEl = isSet(s.id) ? findSeat(s.id) : null;
    var who = firstNonEmpty(s.user_id, m.user_id, seatEl ? seatEl.getAttribute("data-user-id") : null);
    logLine("seat-line", (nameOf(who) || "someone") + " left seat " + str(s.id), m);
    if (inSnapshot) return;
    if (isSet(s.id)) setSeat(s.id, "", "");
    else if (isSet(who)) freeSeatsOf(who, null);
  }

  function onNotice(m, inSnapshot) {
    var text = str(m.content) + (m.client_url ? " (" + m.client_url + ")" : "");
    logLine("notice-line", "notice: " + text, m);
    var ms = (toNumber(m.expire_time) || DEFAULT_NOTICE_S) * 1000;
    var ts = toNumber(m.ts);
    if (inSnapshot && ts !== null) ms -= Date.now() - ts;   // a replayed notice only shows what is left of it
    if (ms > 0) showBanner("notice-banner", text, ms);
  }

  function onRoomStatus(m) {
    var status = str(m.status);
    setRoomStatus(status);
    logLine("status-line", "room status: " + status, m);
    if (status === "closed" || status === "banned") info("room " + state.channel + " is " + status);
    reloadIfRoom(state.channel);   // closed and banned rooms leave the list
  }

  function onLike(m) {
    var count = toNumber(m.count) || 1;
    state.likeCount += count;
    $("like-count").textContent = String(state.likeCount);
    logLine("like-line", displayName(m) + " liked " + TIMES + count, m);
    floatHearts(Math.min(count, 5));
  }

  function onDanmuItem(m) {
    var item = m.item && typeof m.item === "object" ? m.item : {};
    var who = item.nick_name || item.user || "?";
    var text = "[" + str(item.type || "?") + "] " + who + (item.content ? ": " + item.content : "");
    logLine("danmu-event-line", text, m);
  }

  function onHangUp(m) {
    logLine("system-line", nameOf(m.user_id) + " hung up", m);
  }

  // ---------------------------------------------------------------- chat log

  /** Appends one line to #chat-log (keeps at most CHAT_LOG_MAX, dropping the oldest). */
  function logLine(className, text, ev) {
    var log = $("chat-log");
    var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    var li = el("li", className, text);
    if (ev) setEventAttrs(li, ev);
    log.appendChild(li);
    while (log.childElementCount > CHAT_LOG_MAX) log.firstElementChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function setEventAttrs(node, ev) {
    node.setAttribute("data-seq", str(ev.seq));
    node.setAttribute("data-ts", str(ev.ts));
  }

  // ---------------------------------------------------------------- stage (danmu overlay)

  /** The first lane free at `now` (its last danmu has fully entered the stage), or -1. */
  function freeLane(stageHeight, now) {
    var lanes = Math.max(1, Math.floor((stageHeight - LANE_HEIGHT) / LANE_HEIGHT));
    for (var i = 0; i < lanes; i++) {
      if ((state.laneFreeAt[i] || 0) <= now) return i;
    }
    return -1;
  }

  /** Milliseconds until some lane is free again. */
  function nextLaneFreeIn(stageHeight, now) {
    var lanes = Math.max(1, Math.floor((stageHeight - LANE_HEIGHT) / LANE_HEIGHT));
    var soonest = Infinity;
    for (var i = 0; i < lanes; i++) soonest = Math.min(soonest, state.laneFreeAt[i] || 0);
    return Math.max(20, soonest - now);
  }

  /**
   * Queues a danmu for the stage. Danmu never overlap: each waits for a free lane, in the
   * order they arrived (which is seq order, hence ts order for BIGO danmu). When more arrive
   * than the stage can show, the oldest waiting ones skip the stage (the chat log has them
   * all). The user's own messages jump the queue.
   */
  function launchDanmu(text, ev, mine) {
    var entry = { text: text, ev: ev, mine: mine };
    if (mine) state.stageQueue.unshift(entry); else state.stageQueue.push(entry);
    while (state.stageQueue.length > STAGE_QUEUE_MAX) state.stageQueue.shift();
    drainStage();
  }

  function drainStage() {
    clearTimeout(state.stageTimer);
    state.stageTimer = null;
    var stage = $("stage");
    var height = stage.clientHeight || 300;
    while (state.stageQueue.length > 0) {
      var lane = freeLane(height, Date.now());
      if (lane < 0) break;
      var next = state.stageQueue.shift();
      flyDanmu(stage, lane, next.text, next.ev, next.mine);
    }
    if (state.stageQueue.length > 0) state.stageTimer = setTimeout(drainStage, nextLaneFreeIn(height, Date.now()));
  }

  function clearStageQueue() {
    clearTimeout(state.stageTimer);
    state.stageTimer = null;
    state.stageQueue = [];
  }

  function flyDanmu(stage, lane, text, ev, mine) {
    var item = el("div", "danmu" + (mine ? " mine" : ""), text);
    setEventAttrs(item, ev);
    var existing = stage.querySelectorAll(".danmu");
    for (var i = 0; i <= existing.length - STAGE_MAX; i++) existing[i].remove();
    stage.appendChild(item);

    var now = Date.now();
    var stageWidth = stage.clientWidth || 600;
    var width = item.offsetWidth;
    var speed = Math.max(stageWidth, 300) / STAGE_CROSS_MS;   // px per ms
    var distance = stageWidth + width;
    var duration = distance / speed;
    state.laneFreeAt[lane] = now + (width + 40) / speed;       // its tail is in, plus a gap
    item.style.top = (6 + lane * LANE_HEIGHT) + "px";

    var remove = function () { item.remove(); };
    if (item.animate) {
      var anim = item.animate(
        [{ transform: "translateX(0)" }, { transform: "translateX(" + (-distance) + "px)" }],
        { duration: duration, easing: "linear", fill: "forwards" });
      anim.onfinish = remove;
    }
    setTimeout(remove, duration + 1000);   // fallback if the animation never finishes
  }

  function floatHearts(n) {
    for (var i = 0; i < n; i++) setTimeout(floatHeart, i * 150);
  }

  function floatHeart() {
    var stage = $("stage");
    if (stage.querySelectorAll(".heart").length >= HEARTS_MAX) return;
    var h = el("span", "heart", HEART);
    h.style.right = (20 + Math.random() * 40) + "px";
    h.style.setProperty("--drift", Math.round(Math.random() * 80 - 40) + "px");
    h.addEventListener("animationend", function () { h.remove(); });
    stage.appendChild(h);
    setTimeout(function () { h.remove(); }, 3000);
  }

  function showBanner(id, text, ms) {
    var b = $(id);
    b.textContent = text;
    b.hidden = false;
    b.style.animation = "none";            // restart the pop-in animation
    void b.offsetWidth;
    b.style.animation = "";
    var key = id === "gift-banner" ? "giftTimer" : "noticeTimer";
    clearTimeout(state[key]);
    state[key] = setTimeout(function () { hideBanner(id); }, ms);
  }

  function hideBanner(id) {
    var b = $(id);
    b.hidden = true;
    b.textContent = "";
  }

  // ---------------------------------------------------------------- status, members, seats

  function setRoomStatus(status) {
    var s = $("room-status");
    s.textContent = str(status) || "-";
    s.setAttribute("data-status", str(status));
  }

  function memberCountFrom(v) {
    if (Array.isArray(v)) return v.length;
    return toNumber(v) || 0;
  }

  function setMemberCount(n) {
    state.memberCount = n;
    $("member-count").textContent = String(n);
  }

  /** Renders the seat grid from the snapshot: an array of seats, a seat count, or else the default 8 (ids 1..8). */
  function renderSeats(seats) {
    var box = $("seats");
    box.textContent = "";
    if (Array.isArray(seats) && seats.length > 0) {
      seats.forEach(function (s, i) {
        s = s || {};
        rememberName(s.user_id, s.nickname);
        box.appendChild(seatElement(firstSet(s.id, i + 1), s.user_id, s.nickname));
      });
      return;
    }
    var count = typeof seats === "number" || typeof seats === "string" ? toNumber(seats) : null;
    if (count === null) count = DEFAULT_SEATS;
    for (var n = 1; n <= count; n++) box.appendChild(seatElement(n, "", ""));
  }

  function clearSeats() { $("seats").textContent = ""; }

  function seatElement(id, userId, nickname) {
    var s = el("div", "seat");
    s.setAttribute("data-seat-id", str(id));
    fillSeat(s, userId, nickname);
    return s;
  }

  function fillSeat(s, userId, nickname) {
    var taken = isSet(userId) && userId !== "" && userId !== 0;
    s.setAttribute("data-user-id", taken ? String(userId) : "");
    s.textContent = taken ? (nickname || nameOf(userId)) : "free";
    s.title = taken ? "user " + userId : "take this seat";
    s.classList.toggle("free", !taken);
    s.classList.toggle("taken", taken);
    s.classList.toggle("mine", taken && isMe(userId));
  }

  function findSeat(id) {
    var seats = $("seats").querySelectorAll(".seat");
    for (var i = 0; i < seats.length; i++) {
      if (seats[i].getAttribute("data-seat-id") === String(id)) return seats[i];
    }
    return null;
  }

  function setSeat(id, userId, nickname) {
    var s = findSeat(id);
    if (!s) {                                   // a seat the snapshot did not list
      s = seatElement(id, "", "");
      $("seats").appendChild(s);
    }
    fillSeat(s, userId, nickname);
  }

  /** Frees every seat held by userId, and the seat roomSeat.id when it is free or held by userId. */
  function freeSeatsOf(userId, roomSeat) {
    var uid = isSet(userId) ? String(userId) : null;
    Array.prototype.forEach.call($("seats").querySelectorAll(".seat"), function (s) {
      if (uid !== null && uid !== "" && s.getAttribute("data-user-id") === uid) fillSeat(s, "", "");
    });
    if (roomSeat && isSet(roomSeat.id)) {
      var s = findSeat(roomSeat.id);
      var holder = s ? s.getAttribute("data-user-id") : null;
      if (s && (holder === "" || uid === null || holder === uid)) fillSeat(s, "", "");
    }
  }

  function onSeatClick(ev) {
    var s = ev.target.closest(".seat");
    if (!s) return;
    if (!state.channel) { toast("join a channel first"); return; }
    var holder = s.getAttribute("data-user-id");
    if (holder) {
      if (!isMe(holder)) toast("seat " + s.getAttribute("data-seat-id") + " is taken");
      return;
    }
    var raw = s.getAttribute("data-seat-id");
    var id = toNumber(raw);
    state.client.up(id !== null ? id : raw).catch(reportFailure);
  }

  // ---------------------------------------------------------------- user actions in the room

  function requireChannel() {
    if (!state.channel) { toast("join a channel first"); return false; }
    return true;
  }

  function sendChat() {
    if (!requireChannel()) return;
    var input = $("chat-input");
    var content = input.value.trim();
    if (!content) return;
    if (Array.from(content).length > MAX_CONTENT_CHARS) { toast("message too long (max " + MAX_CONTENT_CHARS + ")"); return; }
    input.value = "";
    state.client.sendTopicMsg(content).catch(function (e) {
      if (!input.value) input.value = content;   // not sent: give the text back
      reportFailure(e);
    });
  }

  /** The live room behind the current channel, from the list, else asked for when the name is a room id. */
  function currentLiveRoom() {
    var channel = state.channel;
    var known = state.liveRooms.get(channel);
    if (known) return Promise.resolve(known);
    if (!/^\d+$/.test(channel)) return Promise.resolve(null);
    return state.rooms.getRoom(channel).then(function (room) {
      if (!isSet(room.room_id)) return null;
      rememberLiveRoom(room);
      return room;
    }, function () { return null; });
  }

  function likeCurrent() {
    if (!requireChannel()) return;
    currentLiveRoom().then(function (room) {
      if (!room) return;                         // not a live room's channel: likes go nowhere
      likeRoom(room.room_id).then(function (data) { if (data) floatHeart(); });
    });
  }

  function sendGift() {
    if (!requireChannel()) return;
    var receiver = $("gift-receiver").value.trim();
    if (!receiver) {
      var room = state.liveRooms.get(state.channel);
      if (room && isSet(room.owner_id)) receiver = String(room.owner_id);
    }
    if (!receiver) { toast("enter the receiver's user id"); return; }
    var name = $("gift-name").value.trim() || "Rose";
    var num = Math.max(1, Math.floor(toNumber($("gift-num").value) || 1));
    var notify = $("gift-notify").value === "ptp" ? "ptp" : "bc";
    var gift = { id: GIFT_IDS[name] || 0, name: name, num: num, receiver_id: receiver };
    state.client.sendGift(gift, notify).then(function () {
      if (notify === "ptp") info("private gift sent to " + nameOf(receiver));
    }, reportFailure);
  }

  function leaveSeat() {
    if (!requireChannel()) return;
    state.client.down().catch(reportFailure);
  }

  // ---------------------------------------------------------------- wiring

  function onSubmit(id, fn) {
    $(id).addEventListener("submit", function (ev) { ev.preventDefault(); fn(); });
  }

  function onClick(id, fn) {
    $(id).addEventListener("click", function (ev) { ev.preventDefault(); fn(); });
  }

  function init() {
    onSubmit("login-form", login);
    onSubmit("create-form", createRoom);
    onSubmit("join-form", function () { joinChannel($("channel").value); });
    onSubmit("chat-form", sendChat);
    onSubmit("gift-form", sendGift);
    onClick("leave", leaveChannel);
    onClick("like", likeCurrent);
    onClick("down", leaveSeat);
    onClick("page-prev", function () { changePage(-1); });
    onClick("page-next", function () { changePage(1); });
    onClick("go-live", function () { myRoomAction("live"); });
    onClick("close-room", function () { myRoomAction("close"); });
    onSubmit("game-form", linkGame);
    onClick("join-my-room", function () {
      if (!state.myRoom) return;
      $("channel").value = state.myRoom.channel_name;
      joinChannel(state.myRoom.channel_name);
    });
    $("seats").addEventListener("click", onSeatClick);
    window.addEventListener("pagehide", function () {
      // Where we were, for a reload; then the exit frame before the close: the others see
      // exit_room at once.
      savePosition();
      if (state.channel && state.client) state.client.exitRoom().catch(function () {});
      goOffline();
    });
    window.addEventListener("pageshow", function (ev) {
      // Back from the back/forward cache: pagehide left the room and closed the client, for
      // good: a new one, back in the room from where it was.
      if (!ev.persisted || !state.userId) return;
      startSession(state.userId, state.nickname, false);
    });

    clearSeats();
    renderStageChannel();
    renderPager(0);
    setConn("offline");

    // One URL does it all: ?user_id=&nickname=&channel= logs in as that user (the saved
    // session when it is the same user, else a new demo token) and joins the channel.
    var params = new URLSearchParams(location.search);
    var urlUser = params.get("user_id");
    var urlChannel = params.get("channel");
    if (urlUser) $("user-id").value = urlUser;
    if (params.get("nickname")) $("nickname").value = params.get("nickname");
    if (urlChannel) $("channel").value = urlChannel;
    if (restoreSession(urlUser) || (urlUser && login())) {
      var kept = savedPosition();
      if (urlChannel) joinChannel(urlChannel, savedPosition(urlChannel));
      else if (kept) { $("channel").value = kept.channel_name; joinChannel(kept.channel_name, kept); }   // a reload
    }
  }

  init();
})();
