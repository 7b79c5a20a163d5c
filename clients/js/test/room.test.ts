/**
 * The room protocol through the SDK against the real broker (docs/protocol.md 2.3, 2.4): joining,
 * chat, `bc` and `ptp` gifts, seats, calls, BIGO danmu as typed events, refusals as rejected
 * promises, the same events with and without `batch=1`, and both sides' WebSockets with
 * permessage-deflate (docs/protocol.md 2.8), which `ws` offers.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { DanmuError, type SendGiftEvent } from "danmu-client";
import WebSocket from "ws";
import { Bigo, Broker, closeClients, eventsOf, giftItem, heartItem, msgItem, newClient, waitFor } from "./harness.js";

describe("a room through the SDK", () => {
  let broker: Broker;
  let bigo: Bigo;

  before(async () => {
    broker = await Broker.start();
    bigo = await Bigo.connect(broker);
  });

  after(async () => {
    closeClients();
    bigo?.close();
    await broker?.dispose();
  });

  test("two users join, chat, and see each other enter and leave", async () => {
    const { client: ann, seen: annSeen } = await newClient(broker.baseUrl, "ann");
    const { client: bob, seen: bobSeen } = await newClient(broker.baseUrl, "bob");
    const connected = await ann.connect();
    assert.match(connected.online_token, /^[0-9a-f]{32}$/);
    assert.equal(connected.ping_interval, 15);

    const annAck = await ann.enterRoom("chat-1");
    assert.equal(annAck.room.channel_name, "chat-1");
    assert.equal(annAck.room.members, 1);
    assert.equal(annAck.room.seats.length, 8);
    assert.equal(annAck.recovered, undefined, "a first entry carries no last_seq");

    const bobAck = await bob.enterRoom("chat-1"); // connects first
    assert.equal(bob.state, "connected");
    assert.equal(bobAck.room.members, 2);
    const entered = await waitFor("ann sees bob enter", () => eventsOf(annSeen, "enter_room")[0]);
    assert.equal(entered.user_id, "bob");
    assert.equal(entered.nickname, "nick-bob");
    assert.equal(entered.seq, bobAck.last_seq);

    const sent = await ann.sendTopicMsg("hello 👋 你好");
    assert.equal(sent.for, "send_topic_msg_report");
    assert.equal(typeof sent.seq, "number");
    for (const seen of [annSeen, bobSeen]) {
      const msg = await waitFor("the chat message", () => eventsOf(seen, "send_topic_msg")[0]);
      assert.equal(msg.content, "hello 👋 你好");
      assert.equal(msg.user_id, "ann");
      assert.equal(msg.seq, sent.seq);
    }

    // Typed listeners get the event and whether it was replayed.
    const typed: string[] = [];
    bob.on("send_topic_msg", (event, meta) => typed.push(`${event.nickname}: ${event.content} ${meta.replayed}`));
    await ann.sendTopicMsg("second");
    await waitFor("bob's typed listener", () => typed.length === 1);
    assert.deepEqual(typed, ["nick-ann: second false"]);

    await bob.exitRoom();
    assert.equal(bob.channelName, null);
    const left = await waitFor("ann sees bob leave", () => eventsOf(annSeen, "exit_room")[0]);
    assert.equal(left.user_id, "bob");
    assert.equal(left.room_seat, null);
    // Seed 001 2.4's relay acknowledgement of another user's exit: recorded and acked.
    const relayed = await ann.relayExit("bob");
    assert.equal(relayed.for, "exit_room_report");

    // Nothing seen twice, every seq increasing.
    const seqs = annSeen.events.map((e) => e.event.seq).filter((s) => s !== undefined) as number[];
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    assert.equal(new Set(seqs).size, seqs.length);
    ann.close();
    bob.close();
    assert.equal(ann.state, "closed");
  });

  test("gifts: bc reaches every member with a seq, ptp only the receiver", async () => {
    const { client: ann, seen: annSeen } = await newClient(broker.baseUrl, "ann");
    const { client: bob, seen: bobSeen } = await newClient(broker.baseUrl, "bob");
    const { client: cat, seen: catSeen } = await newClient(broker.baseUrl, "cat");
    for (const c of [ann, bob, cat]) await c.enterRoom("gifts-1");

    const bc = await bob.sendGift({ id: "g1", name: "Rose", num: 3, receiver_id: "ann", image_url: "http://img/rose.png" });
    assert.equal(typeof bc.seq, "number");
    for (const seen of [annSeen, bobSeen, catSeen]) {
      const gift = await waitFor("the bc gift", () => eventsOf(seen, "send_gift")[0]);
      assert.equal(gift.notify_type, "bc");
      assert.deepEqual(
        [gift.gift.id, gift.gift.name, gift.gift.num, gift.gift.sender_id, gift.gift.receiver_id, gift.gift.image_url],
        ["g1", "Rose", 3, "bob", "ann", "http://img/rose.png"],
      );
    }

    const ptp = await bob.sendGift({ id: "g2", name: "Kiss", num: 1, receiver_id: "ann" }, "ptp");
    assert.equal(ptp.seq, undefined, "a ptp gift is not numbered");
    const kiss = await waitFor("ann's ptp gift", () => eventsOf(annSeen, "send_gift").find((g) => g.notify_type === "ptp"));
    assert.equal(kiss.gift.name, "Kiss");
    assert.equal(kiss.seq, undefined);
    await ann.sendTopicMsg("after the kiss"); // everyone's next event: cat must have no ptp before it
    await waitFor("cat's next message", () => eventsOf(catSeen, "send_topic_msg").length === 1);
    assert.deepEqual(eventsOf(catSeen, "send_gift").map((g: SendGiftEvent) => g.notify_type), ["bc"]);
    assert.deepEqual(eventsOf(bobSeen, "send_gift").map((g) => g.notify_type), ["bc"]);

    await assert.rejects(bob.sendGift({ id: "g3", name: "Kiss", num: 1, receiver_id: "nobody" }, "ptp"), (e: DanmuError) => {
      assert.equal(e.kind, "refused");
      assert.equal(e.error_code, 1004);
      assert.equal(e.for, "send_gift_report");
      return true;
    });
    for (const c of [ann, bob, cat]) c.close();
  });

  test("seats: up, a taken seat refused with 1005, down", async () => {
    const { client: ann, seen: annSeen } = await newClient(broker.baseUrl, "ann");
    const { client: bob } = await newClient(broker.baseUrl, "bob");
    await ann.enterRoom("seats-1");
    await bob.enterRoom("seats-1");

    const up = await bob.up(3);
    assert.deepEqual([up.room_seat.id, up.room_seat.user_id, up.room_seat.status], [3, "bob", 1]);
    const seen = await waitFor("ann sees the up", () => eventsOf(annSeen, "up")[0]);
    assert.deepEqual([seen.room_seat.id, seen.room_seat.nickname], [3, "nick-bob"]);

    await assert.rejects(ann.up(3), (e: DanmuError) => e.error_code === 1005 && e.for === "up_report");
    const annUp = await ann.up(); // no seat_id: the lowest free one
    assert.equal(annUp.room_seat.id, 1);

    const down = await bob.down();
    assert.deepEqual([down.room_seat.id, down.room_seat.status], [3, 0]);
    await waitFor("ann sees the down", () => eventsOf(annSeen, "down")[0]?.room_seat.id === 3);
    await assert.rejects(bob.down(), (e: DanmuError) => e.error_code === 1004);

    // A newcomer's snapshot shows the seat ann holds.
    const { client: cat } = await newClient(broker.baseUrl, "cat");
    const snapshot = await cat.enterRoom("seats-1");
    assert.deepEqual(
      snapshot.room.seats.filter((s) => s.status === 1).map((s) => [s.id, s.user_id]),
      [[1, "ann"]],
    );
    for (const c of [ann, bob, cat]) c.close();
  });

  test("a call: hang_up reaches the peer only", async () => {
    const { client: ann } = await newClient(broker.baseUrl, "ann");
    const { client: bob, seen: bobSeen } = await newClient(broker.baseUrl, "bob");
    const { client: dan } = await newClient(broker.baseUrl, "dan");
    await ann.enterRoom("call:ann-bob");
    await bob.enterRoom("call:ann-bob");
    await assert.rejects(dan.enterRoom("call:ann-bob"), (e: DanmuError) => e.error_code === 1007);
    assert.equal(dan.channelName, null, "a refused enter leaves the client in no room");

    await ann.hangUp("bob");
    const hangUp = await waitFor("bob's hang_up", () => eventsOf(bobSeen, "hang_up")[0]);
    assert.deepEqual([hangUp.user_id, hangUp.receiver_id, hangUp.channel_name], ["ann", "bob", "call:ann-bob"]);
    for (const c of [ann, bob, dan]) c.close();
  });

  test("ws's permessage-deflate offer is taken by both WebSockets, and a batch=1 array of danmu comes compressed", async () => {
    const agreed: string[] = [];
    class Recording extends WebSocket {
      constructor(url: string) {
        super(url);
        this.once("open", () => agreed.push(this.extensions));
      }
    }
    const { client, seen } = await newClient(broker.baseUrl, "zipped", { WebSocket: Recording });
    const channel = "gs-zipped";
    await client.enterRoom(channel);
    const compressed = 'danmu_client_bytes_out_total{compressed="true"}';
    const before = await broker.metric(compressed);
    const t = Date.now();
    const items = Array.from({ length: 20 }, (_, i) => msgItem(`${channel}-${i}`, t + i, `${i}: ${"弹幕 danmu ".repeat(12)}`));
    assert.equal(await bigo.push(channel, items), 200);
    await waitFor("twenty danmu", () => eventsOf(seen, "send_topic_msg").length >= 20);
    assert.deepEqual(eventsOf(seen, "send_topic_msg").map((m) => m.content), items.map((i) => i.content));
    // ws names the agreed extensions (its parameters, server_no_context_takeover and
    // client_no_context_takeover, are checked in tests/compression.rs).
    assert.deepEqual(agreed, ["permessage-deflate"]);
    assert.equal(bigo.extensions, "permessage-deflate", "the BIGO ingress took the offer too");
    assert.ok((await broker.metric(compressed)) > before, "the room's array went compressed");
    client.close();
  });

  for (const batch of [true, false]) {
    test(`BIGO danmu arrive as typed events in ts order (batch ${batch})`, async () => {
      const { client, seen } = await newClient(broker.baseUrl, `viewer-${batch}`, { batch });
      const channel = `gs-typed-${batch}`;
      await client.enterRoom(channel);
      const t = Date.now();
      // One push, out of ts order within it: the room orders by ts within its reorder window.
      const rescode = await bigo.push(channel, [
        msgItem(`${channel}-2`, t + 2, "second"),
        msgItem(`${channel}-1`, t + 1, "first"),
        giftItem(`${channel}-3`, t + 3),
        heartItem(`${channel}-4`, t + 4),
        { type: "fans_club", user: "viewer-9", nick_name: "Fan", user_img: "", ts: String(t + 5), data_seq: `${channel}-5`, level: 3 },
      ]);
      assert.equal(rescode, 200);
      await waitFor("five danmu and the status", () => seen.events.length >= 6);
      // The push's status 2 (game mounted) is a change for a new room: a room_status, ordered
      // by the push's own timestamp among the items.
      assert.deepEqual(
        seen.events.map((e) => e.event.action).filter((a) => a !== "room_status"),
        ["send_topic_msg", "send_topic_msg", "send_gift", "like", "danmu"],
      );
      assert.deepEqual(eventsOf(seen, "room_status").map((s) => s.status), ["game"]);
      assert.deepEqual(eventsOf(seen, "send_topic_msg").map((m) => [m.content, m.nickname]), [["first", "Viewer"], ["second", "Viewer"]]);
      const gift = eventsOf(seen, "send_gift")[0]!;
      assert.deepEqual([gift.gift.name, gift.gift.num, gift.gift.receiver_id, gift.notify_type], ["Rose", 3, "anchor-1", "bc"]);
      const like = eventsOf(seen, "like")[0]!;
      assert.deepEqual([like.user_id, like.count], ["viewer-3", 5]);
      const other = eventsOf(seen, "danmu")[0]!;
      assert.deepEqual([other.item.type, other.item.level], ["fans_club", 3]);
      const status = await bigo.push(channel, [], 3);
      assert.equal(status, 200);
      const closed = await waitFor("room_status closed", () => eventsOf(seen, "room_status").find((s) => s.status === "closed"));
      assert.equal(closed.channel_name, channel);
      client.close();
    });
  }

  test("frames the rate limit drops unanswered fail with 1006 instead of hanging", async () => {
    const limited = await Broker.start({ env: { DANMU__CLIENT__RATE_PER_S: "3" } });
    try {
      const { client } = await newClient(limited.baseUrl, "flood", { requestTimeoutMs: 8000 });
      await client.enterRoom("flood-1");
      await new Promise((resolve) => setTimeout(resolve, 1100)); // a full bucket again
      const started = Date.now();
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => client.sendTopicMsg(`flood ${i}`)));
      const elapsed = Date.now() - started;
      const acked = results.filter((r) => r.status === "fulfilled").length;
      const refused = results.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason as DanmuError);
      assert.equal(acked, 3, "a burst of rate_per_s frames passes");
      assert.equal(refused.length, 5);
      assert.ok(refused.every((e) => e.kind === "refused" && e.error_code === 1006 && e.for === "send_topic_msg_report"), String(refused));
      // The broker answers one 1006; the SDK's probe ping a second later settles the others.
      assert.ok(elapsed < 3000, `settled in ${elapsed} ms, not at the request timeout`);
      await client.sendTopicMsg("after the flood");
      client.close();
    } finally {
      await limited.dispose();
    }
  });

  test("refusals reject the report's promise; reports while offline fail at once", async () => {
    const { client } = await newClient(broker.baseUrl, "eve");
    await assert.rejects(client.sendTopicMsg("too early"), (e: DanmuError) => e.kind === "not_connected");
    await client.connect();
    await assert.rejects(client.sendTopicMsg("nowhere"), (e: DanmuError) => e.error_code === 1004);
    await client.enterRoom("refusals-1");
    await assert.rejects(client.sendTopicMsg("x".repeat(501)), (e: DanmuError) => e.error_code === 1001);
    await assert.rejects(client.report("dance_report", {}), (e: DanmuError) => e.error_code === 1009 && e.for === "dance_report");
    const pong = await client.ping();
    assert.equal(pong.action, "pong");
    client.close();
    await assert.rejects(client.sendTopicMsg("closed"), (e: DanmuError) => e.kind === "closed");
  });
});
