/**
 * The SDK's pure parts without a broker: the frame signature (checked against a frame the
 * broker accepted, from docs/protocol-by-example.md), answer matching by `for`
 * in order with placeholders for abandoned frames, the room position that drives recovery and
 * de-duplication, the back-off, the broker's clock, and a JWT's expiry.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Backoff, frameSign, md5Hex, RoomPosition, type EnterRoomAck } from "danmu-client";
import { AnswerQueue } from "../dist/answers.js";
import { ServerClock } from "../dist/clock.js";
import { expiryOf } from "../dist/token.js";

describe("sign", () => {
  test("md5 is lower-case hex of the UTF-8 bytes", () => {
    assert.equal(md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e");
    assert.equal(md5Hex("你好"), "7eca689f0d3389d9dea66ae112e5cfd7");
  });

  test("a ping the broker accepted has the sign the SDK computes", () => {
    // docs/protocol-by-example.md, `ping`: online_token 31faec3e..., sid sid-1, timestamp 1795619147363.
    const sign = frameSign("ping", "31faec3e80675c505aa3d9647635f3ef", "sid-1", 1795619147363);
    assert.equal(sign, "232986e5f400e1970f55ebea0a9e36fb");
  });
});

describe("answers are matched by `for` in order", () => {
  const entry = (action: string, log: string[]) => ({
    action,
    resolve: (a: string) => log.push(`${action} ok ${a}`),
    reject: (e: Error) => log.push(`${action} failed ${e.message}`),
  });

  test("an answer settles the oldest waiting frame of its action", () => {
    const q = new AnswerQueue<string>();
    const log: string[] = [];
    const a1 = entry("send_topic_msg_report", log);
    const a2 = entry("send_topic_msg_report", log);
    q.add(a1);
    q.add(a2);
    const first = q.take("send_topic_msg_report");
    assert.equal(first?.entry, a1);
    assert.deepEqual(first?.dropped, []);
    assert.equal(q.take("send_topic_msg_report")?.entry, a2);
    assert.equal(q.size, 0);
  });

  test("waiting frames before the answered one were dropped unanswered", () => {
    const q = new AnswerQueue<string>();
    const log: string[] = [];
    const chat = entry("send_topic_msg_report", log);
    const up = entry("up_report", log);
    const down = entry("down_report", log);
    [chat, up, down].forEach((e) => q.add(e));
    const found = q.take("down_report");
    assert.equal(found?.entry, down);
    assert.deepEqual(found?.dropped, [chat, up]);
    assert.equal(q.size, 0);
  });

  test("an abandoned frame keeps its place: its late answer is dropped, not pinned on the next", () => {
    const q = new AnswerQueue<string>();
    const log: string[] = [];
    const timedOut = q.add(entry("send_topic_msg_report", log));
    const up = entry("up_report", log);
    const next = entry("send_topic_msg_report", log);
    q.add(up);
    q.add(next);
    q.abandon(timedOut);
    assert.equal(q.waiting, 2);
    const late = q.take("send_topic_msg_report");
    assert.deepEqual(late, { entry: null, dropped: [] }, "the late answer lands on the placeholder");
    assert.equal(q.take("up_report")?.entry, up);
    assert.equal(q.take("send_topic_msg_report")?.entry, next);
  });

  test("placeholders are not reported as dropped, nor drained as live", () => {
    const q = new AnswerQueue<string>();
    const log: string[] = [];
    const gone = q.add(entry("up_report", log));
    const chat = entry("send_topic_msg_report", log);
    q.add(chat);
    q.abandon(gone);
    const down = entry("down_report", log);
    q.add(down);
    assert.deepEqual(q.take("down_report")?.dropped, [chat]);
    const a = q.add(entry("ping", log));
    q.abandon(a);
    assert.deepEqual(q.drain(), []);
  });

  test("an answer for nothing waiting takes nothing", () => {
    const q = new AnswerQueue<string>();
    q.add(entry("ping", []));
    assert.equal(q.take("up_report"), undefined);
    assert.equal(q.size, 1);
    assert.equal(q.takeOldest()?.entry?.action, "ping");
  });
});

function ack(last_seq: number, extra: Partial<EnterRoomAck> = {}): EnterRoomAck {
  return {
    action: "ack",
    for: "enter_room_report",
    error_code: 0,
    error_reason: "",
    room: { channel_name: "r", members: 1, seats: [], last_seq },
    last_seq,
    ...extra,
  };
}

describe("room position", () => {
  test("a first entry sends no last_seq and starts after its own enter_room", () => {
    const p = new RoomPosition("r");
    assert.deepEqual(p.enterFields(), {});
    p.entered(ack(7, { room: { channel_name: "r", members: 1, seats: [], last_seq: 7, epoch: "e1" } }), {});
    assert.deepEqual(p.enterFields(), { last_seq: 7, epoch: "e1" });
    assert.deepEqual(p.accept(7), { deliver: false, replayed: false });
    assert.deepEqual(p.accept(8), { deliver: true, replayed: false });
    assert.deepEqual(p.accept(8), { deliver: false, replayed: false }, "a duplicate is dropped");
    assert.deepEqual(p.accept(undefined), { deliver: true, replayed: false }, "ptp events carry no seq");
  });

  test("a recovered re-entry delivers the replay, marked, then live events", () => {
    const p = new RoomPosition("r");
    p.entered(ack(4, { epoch: "e1" }), {});
    const sent = p.enterFields();
    assert.deepEqual(sent, { last_seq: 4, epoch: "e1" });
    const outcome = p.entered(ack(7, { recovered: true, epoch: "e1" }), sent);
    assert.deepEqual(outcome, { recovered: true, renumbered: false });
    assert.deepEqual([5, 6, 8].map((s) => p.accept(s)), [
      { deliver: true, replayed: true },
      { deliver: true, replayed: true },
      { deliver: true, replayed: false },
    ]);
  });

  test("a new epoch is not recovered, whatever the ack says, and numbering starts again", () => {
    const p = new RoomPosition("r", { last_seq: 40, epoch: "e1" });
    const outcome = p.entered(ack(3, { recovered: true, epoch: "e2" }), p.enterFields());
    assert.deepEqual(outcome, { recovered: false, renumbered: true });
    assert.equal(p.epoch, "e2");
    assert.deepEqual(p.accept(4), { deliver: true, replayed: false });
  });

  test("without epochs, a seq that went backwards means a restarted room", () => {
    const p = new RoomPosition("r", { last_seq: 12 });
    const outcome = p.entered(ack(3, { recovered: false }), p.enterFields());
    assert.deepEqual(outcome, { recovered: false, renumbered: true });
    // The old broker replays what the new room holds: delivered once, as replayed.
    assert.deepEqual([1, 2, 4].map((s) => p.accept(s)), [
      { deliver: true, replayed: true },
      { deliver: true, replayed: true },
      { deliver: true, replayed: false },
    ]);
  });
});

describe("back-off", () => {
  const draws = (values: number[]) => () => values.shift() ?? 1;

  test("full jitter: a uniform draw under a ceiling that doubles per failure, up to the maximum", () => {
    const b = new Backoff({ minDelayMs: 100, maxDelayMs: 1000 }, () => 1);
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => b.next()), [100, 200, 400, 800, 1000, 1000]);
    b.reset();
    assert.equal(b.next(), 100);
    const low = new Backoff({ minDelayMs: 100, maxDelayMs: 1000 }, () => 0);
    assert.equal(low.next(), 0, "from 0: full jitter, not ±20 %");
  });

  test("after 1012 the return is spread over restartSpreadMs; retry_after_ms is taken as it is", () => {
    const b = new Backoff({ minDelayMs: 100, restartSpreadMs: 5000 }, draws([0.2, 0.8]));
    assert.deepEqual([b.delayAfter({ closeCode: 1012 }), b.delayAfter({ closeCode: 1012 })], [1000, 4000]);
    assert.equal(b.delayAfter({ closeCode: 1012, retryAfterMs: 1234 }), 1234);
  });

  test("after 1013 at least slowFloorMs, from a raised ceiling", () => {
    const b = new Backoff({ minDelayMs: 500, slowFloorMs: 2000 }, () => 1);
    assert.equal(b.delayAfter({ closeCode: 1013 }), 2000 + 2000);
    assert.equal(b.failures, 3);
  });
});

describe("the broker's clock", () => {
  test("a Date header is taken to the second; a finer pong sample is not undone by it", () => {
    const c = new ServerClock();
    assert.equal(c.synced, false);
    const server = () => Date.now() + 60_250; // the broker's clock, 60.25 s ahead
    c.sampleDate(new Date(server()).toUTCString());
    assert.ok(Math.abs(c.now() - server()) <= 1000, "to the second");
    c.samplePong(server(), 10);
    assert.ok(Math.abs(c.now() - server()) <= 10, "a pong is exact to half its round trip");
    c.sampleDate(new Date(server()).toUTCString()); // agrees within its second
    assert.ok(Math.abs(c.now() - server()) <= 10, "the coarser Date does not undo the pong's estimate");
    c.sampleDate(new Date(Date.now() - 600_000).toUTCString());
    assert.ok(Math.abs(c.now() - (Date.now() - 600_000)) <= 1000, "a Date that disagrees wins");
  });
});

describe("tokens", () => {
  test("a JWT's exp is read from its payload; a token without one never expires", () => {
    const jwt = (claims: object) => `h.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.s`;
    assert.equal(expiryOf(jwt({ sub: "ann", exp: 1_800_000_000 })), 1_800_000_000_000);
    assert.equal(expiryOf(jwt({ sub: "ann" })), Infinity);
    assert.equal(expiryOf("not a jwt"), Infinity);
  });
});
