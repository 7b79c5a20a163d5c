/**
 * The client's life-cycle on fake sockets and fake timers (`fakes.ts`): back-off (full jitter,
 * reset only after a stable link, 1012, 1013, `retry_after_ms`), the pong deadline and the
 * heartbeat, late answers, reports that wait for the connection and the re-entry, the
 * re-entry's retries (1011, 1006, 1010, timeouts) and final refusals (1001, 1003, 1007), the
 * clock, cancellation, `close()` during an attempt, the token cache, and the browser's
 * online/offline/visibility. Every timing here is exact: nothing waits for a real clock.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, mock, test } from "node:test";

import { DanmuError, UnauthorizedError } from "danmu-client";
import { enterAck, FakeHttp, FakeLifecycle, fakeClient, FakeSocket, flush, restoreTimers, T0, tick, useFakeTimers } from "./fakes.js";

beforeEach(() => useFakeTimers());
afterEach(() => restoreTimers());

/** A client connected on a fake socket, in `channel` when given. */
async function connected(http = new FakeHttp(), options: Parameters<typeof fakeClient>[1] = {}, channel?: string) {
  const made = fakeClient(http, options);
  const { client } = made;
  const entered = channel ? client.enterRoom(channel) : client.connect();
  await flush();
  const ws = FakeSocket.latest();
  ws.accept(http.serverOffsetMs);
  if (channel) ws.ack("enter_room_report", enterAck(channel, 5));
  await entered;
  return { ...made, http, ws };
}

function rejectsWith(kind: string, code?: number) {
  return (e: unknown) => {
    assert.ok(e instanceof DanmuError, String(e));
    assert.equal(e.kind, kind, e.message);
    if (code !== undefined) assert.equal(e.error_code, code, e.message);
    return true;
  };
}

describe("back-off", () => {
  test("a link that drops right after connecting keeps backing off: full jitter under a doubling ceiling", async () => {
    mock.method(Math, "random", () => 0.999);
    const { client, seen, ws } = await connected(new FakeHttp(), { reconnect: { minDelayMs: 500, maxDelayMs: 4000 } });
    let socket = ws;
    for (let i = 0; i < 5; i++) {
      socket.drop(1006);
      await tick(seen.disconnects[i]!.retryInMs! + 1);
      socket = FakeSocket.latest();
      socket.accept(); // connected, then lost again at once: not a stable link
    }
    assert.deepEqual(
      seen.disconnects.map((d) => d.retryInMs),
      [500, 999, 1998, 3996, 3996],
      "the ceiling doubles up to maxDelayMs, reset by no short-lived connection",
    );
    client.close();
  });

  test("the back-off resets only after the link stayed up for stableAfterMs", async () => {
    mock.method(Math, "random", () => 0.999);
    const { client, seen, ws } = await connected(new FakeHttp(), { stableAfterMs: 5000, reconnect: { minDelayMs: 500, maxDelayMs: 8000 } });
    ws.drop(1006);
    await tick(600);
    FakeSocket.latest().accept();
    FakeSocket.latest().drop(1006);
    await tick(1100);
    FakeSocket.latest().accept();
    await tick(5000); // stable: pings answered meanwhile
    FakeSocket.latest().pong();
    FakeSocket.latest().drop(1006);
    assert.deepEqual(seen.disconnects.map((d) => d.retryInMs), [500, 999, 500]);
    client.close();
  });

  test("full jitter spreads the delays over the whole window, from 0", async () => {
    const draws = [0, 0.25, 0.5, 0.75];
    mock.method(Math, "random", () => draws.shift() ?? 0.5);
    const { client, seen, ws } = await connected(new FakeHttp(), { reconnect: { minDelayMs: 1000, maxDelayMs: 1000 } });
    let socket = ws;
    for (let i = 0; i < 4; i++) {
      socket.drop(1006);
      await tick(seen.disconnects[i]!.retryInMs! + 1);
      socket = FakeSocket.latest();
      socket.accept();
    }
    assert.deepEqual(seen.disconnects.map((d) => d.retryInMs), [0, 250, 500, 750]);
    client.close();
  });

  test("kicked shutdown with retry_after_ms: the client waits exactly that long", async () => {
    const { client, seen, ws, http } = await connected();
    const before = http.endPointCalls().length;
    ws.receive({ action: "kicked", reason: "shutdown", retry_after_ms: 3210 });
    ws.drop(1012, "shutdown");
    assert.equal(seen.disconnects[0]!.retryInMs, 3210);
    await tick(3200);
    assert.equal(http.endPointCalls().length, before, "not before retry_after_ms");
    await tick(20);
    assert.equal(http.endPointCalls().length, before + 1);
    client.close();
  });

  test("1012 without retry_after_ms: the return is spread over restartSpreadMs, not 400-600 ms", async () => {
    const draws = [0.1, 0.9];
    mock.method(Math, "random", () => draws.shift() ?? 0.5);
    const a = await connected(new FakeHttp(), { reconnect: { restartSpreadMs: 5000 } });
    a.ws.drop(1012, "shutdown");
    const b = await connected(new FakeHttp(), { reconnect: { restartSpreadMs: 5000 } });
    b.ws.drop(1012, "shutdown");
    assert.deepEqual([a.seen.disconnects[0]!.retryInMs, b.seen.disconnects[0]!.retryInMs], [500, 4500]);
    a.client.close();
    b.client.close();
  });

  test("1013 (too slow) waits longer: at least slowFloorMs", async () => {
    mock.method(Math, "random", () => 0);
    const { client, seen, ws } = await connected(new FakeHttp(), { reconnect: { slowFloorMs: 2000 } });
    ws.drop(1013, "too slow");
    assert.equal(seen.disconnects[0]!.retryInMs, 2000);
    client.close();
  });
});

describe("heartbeat and pong deadline", () => {
  test("a ping per ping_interval, the next one set by its pong", async () => {
    const { client, ws } = await connected();
    await tick(14_900);
    assert.equal(ws.frames("ping").length, 0);
    await tick(200);
    assert.equal(ws.frames("ping").length, 1);
    await tick(2000);
    ws.pong();
    await tick(12_800);
    assert.equal(ws.frames("ping").length, 1, "15 s after the previous ping, not after its pong");
    await tick(200);
    assert.equal(ws.frames("ping").length, 2);
    client.close();
  });

  test("no answer to a ping within pongTimeoutMs: the link is closed and replaced", async () => {
    mock.method(Math, "random", () => 0.5);
    const { client, seen, ws } = await connected(new FakeHttp(), { pongTimeoutMs: 10_000 });
    await tick(15_050); // the ping goes out
    assert.equal(ws.frames("ping").length, 1);
    await tick(9_900);
    assert.equal(seen.disconnects.length, 0);
    await tick(200);
    assert.deepEqual(seen.disconnects.map((d) => d.code), [4000], "found dead 10 s after the ping, not ~45 s");
    assert.equal(ws.closedWith?.code, 4000);
    assert.equal(client.state, "reconnecting");
    await tick(seen.disconnects[0]!.retryInMs! + 10);
    assert.equal(FakeSocket.all.length, 2, "a new connection");
    client.close();
  });

  test("any frame after the ping counts as life (the rate limit may have dropped the ping)", async () => {
    const { client, seen, ws } = await connected();
    await tick(15_050);
    await tick(3000);
    ws.receive({ action: "error", for: "", error_code: 1006, error_reason: "rate limited" });
    await tick(8000);
    assert.equal(seen.disconnects.length, 0);
    client.close();
  });

  test("the page shown again, or the network back: the link is checked at once", async () => {
    const lifecycle = new FakeLifecycle();
    const { client, ws } = await connected(new FakeHttp(), { lifecycle });
    await tick(3000);
    lifecycle.hide();
    assert.equal(ws.frames("ping").length, 0);
    lifecycle.show();
    assert.equal(ws.frames("ping").length, 1, "a ping as the page is shown");
    ws.pong();
    lifecycle.goOffline();
    assert.equal(ws.frames("ping").length, 2, "a ping when the network may be gone");
    client.close();
    assert.equal(lifecycle.watched, false, "close() stops listening");
  });
});

describe("the clock", () => {
  test("the first end_point refused as 1010 sets the clock from its Date and is retried at once", async () => {
    const http = new FakeHttp();
    http.serverOffsetMs = -3_600_000; // the device's clock is an hour ahead
    const { client } = fakeClient(http);
    const connecting = client.connect();
    await flush();
    const calls = http.endPointCalls();
    assert.equal(calls.length, 2, "refused, then retried at once");
    const ts = Number(calls[1]!.searchParams.get("timestamp"));
    assert.ok(Math.abs(ts - (Date.now() - 3_600_000)) <= 1500, `the retry is on the broker's clock: ${ts - Date.now()}`);
    const ws = FakeSocket.latest();
    assert.ok(Math.abs(Number(new URL(ws.url).searchParams.get("timestamp")) - (Date.now() - 3_600_000)) <= 1500);
    ws.accept(-3_600_000);
    await connecting;
    client.ping().catch(() => {});
    const ping = ws.frames("ping")[0]!;
    assert.equal(ping.timestamp, Date.now() - 3_600_000, "frames are signed with server_time once connected");
    client.close();
  });

  test("each pong refreshes the clock", async () => {
    const { client, ws } = await connected();
    await tick(15_050);
    ws.pong(42_000); // the broker's clock moved 42 s (or the device's did)
    client.ping().catch(() => {});
    const ts = Number(ws.frames("ping")[1]!.timestamp);
    assert.ok(Math.abs(ts - (Date.now() + 42_000)) <= 50, "within half the ping's round trip");
    client.close();
  });

  test("a report refused with 1010 resyncs the clock and is sent again once", async () => {
    const { client, ws, http } = await connected();
    const sent = client.sendTopicMsg("hello", "r1");
    http.serverOffsetMs = 200_000;
    ws.refuse("send_topic_msg_report", 1010, "timestamp out of window");
    await flush();
    const again = ws.frames("send_topic_msg_report");
    assert.equal(again.length, 2, "sent again after the resync");
    assert.ok(Math.abs(Number(again[1]!.timestamp) - (Date.now() + 200_000)) <= 1500);
    ws.ack("send_topic_msg_report", { seq: 9 });
    assert.equal((await sent).seq, 9);
    client.close();
  });
});

describe("answers", () => {
  test("a late answer lands on its timed-out report, never on the next one", async () => {
    const { client, ws } = await connected(new FakeHttp(), { requestTimeoutMs: 5000 }, "r1");
    const first = client.sendTopicMsg("first");
    await tick(5000);
    await assert.rejects(first, rejectsWith("timeout"));
    const up = client.up(2);
    const second = client.sendTopicMsg("second");
    const settled: string[] = [];
    void up.then(() => settled.push("up"), () => settled.push("up failed"));
    void second.then((a) => settled.push(`second ${a.seq}`), () => settled.push("second failed"));
    ws.ack("send_topic_msg_report", { seq: 6 }); // the late answer of "first"
    await flush();
    assert.deepEqual(settled, [], "neither pinned on `second` nor failing `up` as dropped");
    ws.ack("up_report", { room_seat: { id: 2 } });
    ws.ack("send_topic_msg_report", { seq: 7 });
    await flush();
    assert.deepEqual(settled, ["up", "second 7"]);
    client.close();
  });

  test("an aborted report keeps its place the same way", async () => {
    const { client, ws } = await connected(new FakeHttp(), {}, "r1");
    const abort = new AbortController();
    const first = client.sendTopicMsg("first", undefined, { signal: abort.signal });
    abort.abort();
    await assert.rejects(first, rejectsWith("aborted"));
    const second = client.sendTopicMsg("second");
    ws.refuse("send_topic_msg_report", 1001, "late refusal of first");
    ws.ack("send_topic_msg_report", { seq: 8 });
    assert.equal((await second).seq, 8);
    client.close();
  });
});

describe("reports while reconnecting", () => {
  test("they wait for the connection and the re-entry, then go out after it", async () => {
    mock.method(Math, "random", () => 0.5);
    const { client, ws, seen } = await connected(new FakeHttp(), {}, "r1");
    ws.drop(1006);
    const msg = client.sendTopicMsg("while away");
    await tick(seen.disconnects[0]!.retryInMs! + 10);
    const next = FakeSocket.latest();
    next.accept();
    assert.deepEqual(next.actions(), ["enter_room_report"], "the re-entry first; the report waits for its ack");
    next.ack("enter_room_report", enterAck("r1", 9, { recovered: true }));
    await flush();
    assert.deepEqual(next.actions(), ["enter_room_report", "send_topic_msg_report"]);
    next.ack("send_topic_msg_report", { seq: 10 });
    assert.equal((await msg).seq, 10);
    client.close();
  });

  test("a report that finds no connection within its timeout fails with timeout and is never sent", async () => {
    const http = new FakeHttp();
    const { client, ws } = await connected(http, { requestTimeoutMs: 3000 }, "r1");
    http.handler = () => null; // end_point hangs
    ws.drop(1006);
    const msg = client.sendTopicMsg("lost", undefined, { timeoutMs: 2000 });
    await tick(2000);
    await assert.rejects(msg, rejectsWith("timeout"));
    http.handler = null;
    await tick(20_000);
    const later = FakeSocket.latest();
    if (later !== ws) {
      later.accept();
      later.ack("enter_room_report", enterAck("r1", 9, { recovered: true }));
      await flush();
      assert.deepEqual(later.frames("send_topic_msg_report"), []);
    }
    client.close();
  });

  test("`connected` fires once the re-entry went out: a report sent on it reaches the broker after the enter", async () => {
    mock.method(Math, "random", () => 0.5);
    const { client, ws, seen } = await connected(new FakeHttp(), {}, "r1");
    let onConnected: string[] = [];
    client.on("connected", () => {
      onConnected = FakeSocket.latest().actions();
      void client.sendTopicMsg("hi").catch(() => {});
    });
    ws.drop(1006);
    await tick(seen.disconnects[0]!.retryInMs! + 10);
    const next = FakeSocket.latest();
    next.accept();
    assert.deepEqual(onConnected, ["enter_room_report"]);
    next.ack("enter_room_report", enterAck("r1", 9, { recovered: true }));
    await flush();
    assert.deepEqual(next.actions(), ["enter_room_report", "send_topic_msg_report"]);
    client.close();
  });
});

describe("the re-entry", () => {
  async function reentering(options: Parameters<typeof fakeClient>[1] = {}) {
    mock.method(Math, "random", () => 0.5);
    const c = await connected(new FakeHttp(), options, "r1");
    c.ws.drop(1006);
    await tick(c.seen.disconnects[0]!.retryInMs! + 10);
    const next = FakeSocket.latest();
    next.accept();
    return { ...c, next };
  }

  test("1011 (store unreachable) is retried with back-off: the room is kept", async () => {
    const { client, seen, next } = await reentering({ reconnect: { minDelayMs: 1000, maxDelayMs: 8000 } });
    next.refuse("enter_room_report", 1011, "temporarily unavailable");
    assert.equal(client.channelName, "r1");
    assert.deepEqual(seen.errors.at(-1), { kind: "refused", code: 1011, retryable: true });
    await tick(500 + 10);
    assert.equal(next.frames("enter_room_report").length, 2, "retried after a full-jitter delay");
    next.refuse("enter_room_report", 1011, "temporarily unavailable");
    await tick(999);
    assert.equal(next.frames("enter_room_report").length, 2);
    await tick(10);
    assert.equal(next.frames("enter_room_report").length, 3, "the delay grows");
    assert.deepEqual(next.frames("enter_room_report")[2], { ...next.frames("enter_room_report")[2], last_seq: 5, epoch: "e1" });
    next.ack("enter_room_report", enterAck("r1", 9, { recovered: true }));
    await flush();
    assert.deepEqual(seen.recoveries, [{ recovered: true }]);
    assert.equal(client.channelName, "r1");
    client.close();
  });

  test("1006 on the re-entry is retried too", async () => {
    const { client, seen, next } = await reentering();
    next.receive({ action: "error", for: "", error_code: 1006, error_reason: "rate limited" });
    await tick(1000);
    assert.equal(next.frames("enter_room_report").length, 2);
    next.ack("enter_room_report", enterAck("r1", 9, { recovered: true }));
    await flush();
    assert.deepEqual(seen.recoveries, [{ recovered: true }]);
    client.close();
  });

  test("an unanswered re-entry replaces the connection (retried there, with back-off)", async () => {
    const { client, seen, next } = await reentering({ requestTimeoutMs: 4000, pongTimeoutMs: 60_000 });
    await tick(4010);
    assert.equal(next.closedWith?.code, 4000);
    assert.equal(seen.disconnects.at(-1)!.code, 4000);
    assert.equal(client.channelName, "r1");
    await tick(seen.disconnects.at(-1)!.retryInMs! + 10);
    const third = FakeSocket.latest();
    third.accept();
    assert.equal(third.frames("enter_room_report").length, 1);
    client.close();
  });

  for (const [code, what] of [
    [1007, "room closed"],
    [1003, "token invalid"],
    [1001, "bad parameters"],
  ] as const) {
    test(`${code} (${what}) is final: the room is dropped and a recovery event says why`, async () => {
      const { client, seen, next } = await reentering();
      next.refuse("enter_room_report", code, what);
      await tick(20_000);
      assert.equal(client.channelName, null);
      assert.deepEqual(seen.recoveries, [{ recovered: false, error: code }]);
      assert.equal(next.frames("enter_room_report").length, 1, "not retried");
      assert.equal(client.state, "connected", "the connection stays");
      client.close();
    });
  }

  test("enterRoom with a timeout stops entering when it passes, and leaves if the broker acks late", async () => {
    const { client, ws } = await connected();
    const entering = client.enterRoom("r2", undefined, { timeoutMs: 3000 });
    ws.refuse("enter_room_report", 1011);
    await tick(3000);
    await assert.rejects(entering, rejectsWith("timeout"));
    assert.equal(client.channelName, null);
    const tried = ws.frames("enter_room_report").length;
    ws.refuse("enter_room_report", 1011); // the retry in flight is refused too
    await tick(20_000);
    assert.equal(ws.frames("enter_room_report").length, tried, "no more retries for a room the app gave up");

    const abort = new AbortController();
    const again = client.enterRoom("r3", undefined, { signal: abort.signal });
    abort.abort();
    await assert.rejects(again, rejectsWith("aborted"));
    ws.ack("enter_room_report", enterAck("r3", 2)); // the broker took it after all
    assert.deepEqual(ws.frames("exit_room_report").map((f) => f.channel_name), ["r3"]);
    client.close();
  });
});

describe("cancellation and close()", () => {
  test("connect() with a timeout settles while the broker is unreachable; the client keeps trying", async () => {
    const http = new FakeHttp();
    http.handler = () => ({ status: 503, body: {} });
    const { client, seen } = fakeClient(http, { reconnect: { minDelayMs: 100, maxDelayMs: 400 } });
    const connecting = client.connect({ timeoutMs: 2000 });
    await tick(2000);
    await assert.rejects(connecting, rejectsWith("timeout"));
    assert.equal(client.state, "reconnecting");
    assert.ok(seen.errors.every((e) => e.retryable), "each failed attempt is told as retryable");
    http.handler = null;
    await tick(500);
    FakeSocket.latest().accept();
    assert.equal(client.state, "connected");
    client.close();
  });

  test("connect() with an AbortSignal", async () => {
    const http = new FakeHttp();
    http.handler = () => null;
    const { client } = fakeClient(http);
    const abort = new AbortController();
    const connecting = client.connect({ signal: abort.signal });
    abort.abort();
    await assert.rejects(connecting, rejectsWith("aborted"));
    client.close();
  });

  for (const stage of ["token", "end_point", "socket"] as const) {
    test(`close() during an attempt (${stage}) ends it: no socket, no retry, every call fails with closed`, async () => {
      const http = new FakeHttp();
      let releaseToken: (t: string) => void = () => {};
      const token = stage === "token" ? () => new Promise<string>((resolve) => (releaseToken = resolve)) : "header.eyJzdWIiOiJhbm4ifQ.sig";
      if (stage === "end_point") http.handler = () => null;
      const { client, seen } = fakeClient(http, { token });
      const connecting = client.connect();
      const entering = client.enterRoom("r1");
      await flush();
      client.close();
      releaseToken("header.eyJzdWIiOiJhbm4ifQ.sig");
      await assert.rejects(connecting, rejectsWith("closed"));
      await assert.rejects(entering, rejectsWith("closed"));
      const sockets = FakeSocket.all.length;
      if (stage === "socket") {
        assert.equal(sockets, 1);
        assert.ok(FakeSocket.latest().closedWith, "the socket being opened is closed");
        FakeSocket.latest().accept(); // too late: ignored
      }
      await tick(60_000);
      assert.equal(FakeSocket.all.length, stage === "socket" ? 1 : 0, "no socket opened after close()");
      assert.equal(client.state, "closed");
      assert.equal(seen.states.at(-1), "closed");
      await assert.rejects(client.enterRoom("r1"), rejectsWith("closed"), "close() is final");
      await assert.rejects(client.connect(), rejectsWith("closed"));
      await assert.rejects(client.sendTopicMsg("x"), rejectsWith("closed"));
    });
  }

  test("close() while connected fails the waiting reports with closed", async () => {
    const { client, ws } = await connected(new FakeHttp(), {}, "r1");
    const msg = client.sendTopicMsg("bye");
    client.close();
    await assert.rejects(msg, rejectsWith("closed"));
    assert.equal(ws.closedWith?.code, 1000);
  });
});

describe("tokens", () => {
  test("a token function is asked once, not before every attempt; again near its exp", async () => {
    mock.method(Math, "random", () => 0.5);
    const exp = Math.floor(T0 / 1000) + 120;
    let asked = 0;
    const token = () => {
      asked += 1;
      return `h.${Buffer.from(JSON.stringify({ sub: "ann", exp: exp + asked * 3600 })).toString("base64url")}.s`;
    };
    const { client, seen, ws } = await connected(new FakeHttp(), { token });
    let socket = ws;
    for (let i = 0; i < 3; i++) {
      socket.drop(1006);
      await tick(seen.disconnects[i]!.retryInMs! + 10);
      socket = FakeSocket.latest();
      socket.accept();
    }
    assert.equal(asked, 1, "cached across reconnects");
    await tick(3_650_000, 1000); // the link is found dead and replaced meanwhile; 30 s before exp
    assert.equal(asked, 1);
    await tick(60_000, 1000);
    assert.equal(asked, 2, "asked again once the cached one is about to expire");
    client.close();
  });

  test("a refused token is asked again; the function can answer null: unauthorized, stop", async () => {
    const http = new FakeHttp();
    http.badTokens.add("h.old.s");
    const answers: (string | null)[] = ["h.old.s", null];
    const { client, seen } = fakeClient(http, { token: () => answers.shift() ?? null, reconnect: { minDelayMs: 100, maxDelayMs: 100 } });
    const connecting = client.connect();
    await tick(500);
    await assert.rejects(connecting, rejectsWith("unauthorized", 1003));
    assert.equal(client.state, "closed");
    assert.equal(http.endPointCalls().length, 1, "no attempt after the function said stop");
    assert.ok(seen.errors.some((e) => e.kind === "unauthorized" && !e.retryable));
  });

  test("a function that throws UnauthorizedError stops the client too; other failures are retried", async () => {
    const http = new FakeHttp();
    let calls = 0;
    const token = () => {
      calls += 1;
      if (calls === 1) throw new Error("backend down");
      throw new UnauthorizedError("logged out");
    };
    const { client } = fakeClient(http, { token, reconnect: { minDelayMs: 100, maxDelayMs: 100 } });
    const connecting = client.connect();
    await tick(500);
    await assert.rejects(connecting, rejectsWith("unauthorized"));
    assert.equal(calls, 2);
  });

  test("a function that answers the token just refused stops instead of retrying forever", async () => {
    const http = new FakeHttp();
    http.badTokens.add("h.same.s");
    const { client } = fakeClient(http, { token: () => "h.same.s", reconnect: { minDelayMs: 100, maxDelayMs: 100 } });
    const connecting = client.connect();
    await tick(1000);
    await assert.rejects(connecting, rejectsWith("unauthorized"));
    assert.equal(http.endPointCalls().length, 1);
  });
});

describe("the browser's life-cycle", () => {
  test("offline: no attempts at the short delay; online: an attempt at once", async () => {
    mock.method(Math, "random", () => 0.5);
    const lifecycle = new FakeLifecycle();
    const { client, ws, http } = await connected(new FakeHttp(), { lifecycle, reconnect: { minDelayMs: 500, maxDelayMs: 30_000 } });
    lifecycle.goOffline();
    ws.drop(1006);
    const calls = http.endPointCalls().length;
    await tick(10_000);
    assert.equal(http.endPointCalls().length, calls, "waits for the network instead of burning attempts");
    lifecycle.goOnline();
    await flush();
    assert.equal(http.endPointCalls().length, calls + 1, "tries as soon as the network is back");
    client.close();
  });

  test("the page shown while waiting to reconnect: an attempt at once", async () => {
    mock.method(Math, "random", () => 0.999);
    const lifecycle = new FakeLifecycle();
    const { client, ws, http } = await connected(new FakeHttp(), { lifecycle, reconnect: { minDelayMs: 8000, maxDelayMs: 8000 } });
    lifecycle.hide();
    ws.drop(1006);
    const calls = http.endPointCalls().length;
    await tick(1000);
    assert.equal(http.endPointCalls().length, calls);
    lifecycle.show();
    await flush();
    assert.equal(http.endPointCalls().length, calls + 1);
    client.close();
  });
});

describe("errors", () => {
  test("codes carry a retryable mark and words", async () => {
    const { ERROR_CODE_INFO, describeError } = await import("danmu-client");
    assert.deepEqual(
      Object.entries(ERROR_CODE_INFO).filter(([, i]) => i.retryable).map(([c]) => Number(c)),
      [1006, 1010, 1011, 2005],
    );
    assert.equal(new DanmuError("refused", "up_report", "seat taken", 1005).retryable, false);
    assert.equal(new DanmuError("refused", "enter_room_report", "unavailable", 1011).retryable, true);
    assert.equal(new DanmuError("refused", "GET /iapi/rooms/1", "no such room", 2001, 404).retryable, false);
    assert.equal(new DanmuError("timeout", "ping", "no answer").retryable, true);
    assert.equal(new DanmuError("closed", "", "closed").retryable, false);
    assert.equal(describeError(new DanmuError("refused", "up_report", "seat taken", 1005)), "that seat is taken");
    assert.equal(describeError(new DanmuError("refused", "POST /iapi/rooms/1/game", "taken", 2004, 409)), "that game session is linked to another room");
  });
});
