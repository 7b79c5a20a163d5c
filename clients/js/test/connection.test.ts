/**
 * The connection's life through the SDK against the real broker (docs/protocol.md 2.1, 2.2, 2.6):
 * tokens, heartbeats, a second connection of the same user_id and sid kicking the first, and
 * recovery: after a network cut the broker still has the room and replays what was missed
 * (`recovered: true`); after a broker restart the room's numbering started again and the app
 * is told to reload (`recovered: false`).
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import type { DanmuError } from "danmu-client";
import { Bigo, Broker, closeClients, eventsOf, freePort, mintToken, msgItem, newClient, Proxy, sleep, waitFor } from "./harness.js";

const brokers: Broker[] = [];
const proxies: Proxy[] = [];

async function broker(options: Parameters<typeof Broker.start>[0] = {}): Promise<Broker> {
  const b = await Broker.start(options);
  brokers.push(b);
  return b;
}

after(async () => {
  closeClients();
  await Promise.all(proxies.map((p) => p.close()));
  await Promise.all(brokers.map((b) => b.dispose()));
});

describe("connecting", () => {
  test("a token the broker refuses ends connect() with 1003 and no retries", async () => {
    const b = await broker();
    const badToken = await mintToken("ann", "Ann", "not-the-secret");
    const { client, seen } = await newClient(b.baseUrl, "ann", { token: badToken });
    await assert.rejects(client.connect(), (e: DanmuError) => e.kind === "refused" && e.error_code === 1003 && e.status === 401);
    assert.equal(client.state, "closed");
    await sleep(300);
    assert.deepEqual(seen.states, ["connecting", "closed"], "no reconnect attempts with a refused token");
  });

  test("a token function whose token is refused is asked again, and its new token cached", async () => {
    const b = await broker();
    const good = await mintToken("ann", "Ann");
    const bad = await mintToken("ann", "Ann", "not-the-secret");
    let asked = 0;
    const { client } = await newClient(b.baseUrl, "ann", { token: () => (++asked === 1 ? bad : good) });
    const frame = await client.connect();
    assert.equal(frame.action, "connected");
    assert.equal(asked, 2);
    const info = await client.userInfo();
    assert.deepEqual([info.user_id, info.current_room_id], ["ann", ""]);
    await client.enterRoom("info-1");
    assert.equal((await client.userInfo()).current_room_id, "info-1");
    client.close();
  });

  test("heartbeats at the server's ping_interval keep an idle connection open", async () => {
    const b = await broker({ env: { DANMU__CLIENT__PING_INTERVAL_S: "1", DANMU__CLIENT__IDLE_TIMEOUT_MS: "2500" } });
    const { client, seen } = await newClient(b.baseUrl, "ann");
    let disconnects = 0;
    client.on("disconnected", () => disconnects++);
    const frame = await client.connect();
    assert.equal(frame.ping_interval, 1);
    await client.enterRoom("idle-1");
    await sleep(4000); // past the idle timeout, saying nothing but pings
    assert.equal(disconnects, 0);
    assert.equal(client.state, "connected");
    assert.deepEqual(seen.states, ["connecting", "connected"]);
    await client.sendTopicMsg("still here");
    client.close();
  });

  test("a second connection of the same user_id and sid kicks the first, which stays closed", async () => {
    const b = await broker();
    const first = await newClient(b.baseUrl, "ann", { sid: "phone" });
    const second = await newClient(b.baseUrl, "ann", { sid: "phone" });
    const other = await newClient(b.baseUrl, "bob");
    await first.client.enterRoom("kick-1");
    await other.client.enterRoom("kick-1");
    const closed = new Promise<void>((resolve) => first.client.on("state", (s) => s === "closed" && resolve()));

    await second.client.connect();
    await closed;
    assert.deepEqual(first.seen.kicked, ["replaced"]);
    assert.equal(first.client.channelName, null);
    assert.ok(first.seen.errors.some((e) => (e as DanmuError).kind === "closed"), "told why it stopped");
    // The kicked connection left the room like any dropped one.
    const left = await waitFor("bob sees ann leave", () => eventsOf(other.seen, "exit_room")[0]);
    assert.equal(left.user_id, "ann");
    await sleep(500);
    assert.equal(first.client.state, "closed", "no reconnect that would kick the new connection");
    assert.equal(second.client.state, "connected");
    assert.deepEqual(second.seen.kicked, []);
    second.client.close();
    other.client.close();
  });
});

describe("recovery", () => {
  for (const batch of [true, false]) {
    test(`after a network cut the client re-enters with last_seq and gets every missed event, recovered: true (batch ${batch})`, async () => {
      // Clients reach the broker through the proxy (its end_point names the proxy); BIGO directly.
      const proxyPort = await freePort();
      const b = await broker({ publicPort: proxyPort });
      const proxy = await Proxy.start(b.port, proxyPort);
      proxies.push(proxy);
      const { client: ann, seen } = await newClient(proxy.baseUrl, "ann", { batch });
      const bigo = await Bigo.connect(b);
      await ann.enterRoom("net-1");
      assert.equal(await bigo.push("net-1", [msgItem("net-1-0", Date.now(), "before")]), 200);
      await waitFor("the first danmu", () => eventsOf(seen, "send_topic_msg").length === 1);
      const before = ann.position!;

      proxy.hold();
      proxy.cut();
      await waitFor("the disconnect", () => ann.state === "reconnecting");
      await sleep(200); // the broker notices the lost connection: ann's exit_room goes into history
      for (const i of [1, 2, 3]) {
        assert.equal(await bigo.push("net-1", [msgItem(`net-1-${i}`, Date.now(), `missed ${i}`)]), 200);
      }
      await sleep(200);
      proxy.release();

      const recovery = await waitFor("the recovery", () => ann.state === "connected" && seen.recoveries[0], 10_000);
      assert.equal(recovery.recovered, true);
      assert.equal(recovery.renumbered, false);
      assert.equal(recovery.channel_name, "net-1");
      await waitFor("the replay", () => eventsOf(seen, "send_topic_msg").length === 4);
      assert.deepEqual(
        eventsOf(seen, "send_topic_msg").map((m) => m.content),
        ["before", "missed 1", "missed 2", "missed 3"],
      );
      const replayed = seen.events.filter((e) => e.meta.replayed);
      assert.deepEqual(
        replayed.map((e) => e.event.action),
        ["exit_room", "send_topic_msg", "send_topic_msg", "send_topic_msg"],
        "her own departure and the missed danmu are replayed, marked as such",
      );
      assert.ok(replayed.every((e) => e.event.seq! > before.last_seq && e.event.seq! < recovery.ack!.last_seq));

      assert.equal(await bigo.push("net-1", [msgItem("net-1-4", Date.now(), "live again")]), 200);
      await waitFor("a live event", () => eventsOf(seen, "send_topic_msg").length === 5);
      assert.equal(seen.events[seen.events.length - 1]!.meta.replayed, false);
      const seqs = seen.events.map((e) => e.event.seq).filter((s) => s !== undefined) as number[];
      assert.equal(new Set(seqs).size, seqs.length, "nothing delivered twice");
      assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), "in seq order");
      assert.deepEqual(seen.states, ["connecting", "connected", "reconnecting", "connected"]);
      ann.close();
      bigo.close();
    });
  }

  test("a position kept across clients (a page reload) recovers with enterRoom(name, from)", async () => {
    const b = await broker();
    const bigo = await Bigo.connect(b);
    const first = await newClient(b.baseUrl, "ann");
    await first.client.enterRoom("reload-1");
    assert.equal(await bigo.push("reload-1", [msgItem("reload-1-0", Date.now(), "seen")]), 200);
    await waitFor("the first danmu", () => eventsOf(first.seen, "send_topic_msg").length === 1);
    const kept = first.client.position!;
    assert.equal(kept.channel_name, "reload-1");
    first.client.close();
    await sleep(100);
    assert.equal(await bigo.push("reload-1", [msgItem("reload-1-1", Date.now(), "missed")]), 200);
    await sleep(150);

    const second = await newClient(b.baseUrl, "ann");
    const ack = await second.client.enterRoom(kept.channel_name, kept);
    assert.equal(ack.recovered, true);
    assert.deepEqual(second.seen.recoveries.map((r) => r.recovered), [true]);
    const missed = await waitFor("the replay", () => eventsOf(second.seen, "send_topic_msg")[0]);
    assert.equal(missed.content, "missed");
    assert.ok(second.seen.events.every((e) => e.meta.replayed && e.event.seq! > kept.last_seq));
    second.client.close();
    bigo.close();
  });

  test("after the broker restarts the room's numbering starts again: recovered false, and live events flow", async () => {
    const b = await broker();
    const { client: ann, seen } = await newClient(b.baseUrl, "ann");
    const disconnects: number[] = [];
    ann.on("disconnected", (d) => disconnects.push(d.code));
    await ann.enterRoom("restart-1");
    const { client: bob } = await newClient(b.baseUrl, "bob");
    await bob.enterRoom("restart-1");
    await bob.sendTopicMsg("before the restart");
    await waitFor("the message", () => eventsOf(seen, "send_topic_msg").length === 1);
    bob.close();

    assert.equal(await b.stop(), 0, "the broker drains and exits 0");
    await waitFor("the client notices", () => ann.state === "reconnecting");
    assert.deepEqual(seen.kicked, ["shutdown"]);
    assert.equal(disconnects[0], 1012, "closed with 1012 (service restart)");
    await sleep(300); // a few attempts against a broker that is not there
    await b.run();

    const recovery = await waitFor("the recovery", () => seen.recoveries[0], 10_000);
    assert.equal(recovery.recovered, false, "the new room does not hold what was missed: the app reloads");
    assert.equal(recovery.renumbered, true);
    assert.equal(recovery.ack!.room.channel_name, "restart-1");
    assert.equal(ann.channelName, "restart-1", "still in the room");

    const { client: cat } = await newClient(b.baseUrl, "cat");
    await cat.enterRoom("restart-1");
    await cat.sendTopicMsg("after the restart");
    const msg = await waitFor("a live event in the new numbering", () =>
      eventsOf(seen, "send_topic_msg").find((m) => m.content === "after the restart"),
    );
    assert.ok(msg.seq! < 5, `numbered anew: seq ${msg.seq}`);
    ann.close();
    cat.close();
  });

  test(
    "after a restart, a room that numbered past last_seq is still not recovered",
    async () => {
      const proxyPort = await freePort();
      const b = await broker({ publicPort: proxyPort });
      const proxy = await Proxy.start(b.port, proxyPort);
      proxies.push(proxy);
      const { client: ann, seen } = await newClient(proxy.baseUrl, "ann");
      await ann.enterRoom("epoch-1");
      await ann.sendTopicMsg("old numbering");
      await waitFor("the message", () => eventsOf(seen, "send_topic_msg").length === 1);

      // The client cannot come back until the new room has more events than it had seen.
      proxy.hold();
      proxy.cut();
      await b.stop();
      await b.run();
      const bigo = await Bigo.connect(b);
      const t = Date.now();
      const items = Array.from({ length: 10 }, (_, i) => msgItem(`epoch-1-${i}`, t + i, `new numbering ${i}`));
      assert.equal(await bigo.push("epoch-1", items), 200);
      await sleep(300);
      proxy.release();

      const recovery = await waitFor("the recovery", () => seen.recoveries[0], 10_000);
      ann.close();
      bigo.close();
      assert.equal(recovery.recovered, false, "seqs of the old numbering mean nothing in the new one");
    },
  );
});
