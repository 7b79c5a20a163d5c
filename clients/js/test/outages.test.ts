/**
 * Faults under a real broker, as an app lives through them (docs/protocol.md 4, 7): Redis
 * unreachable while the client reconnects (the re-entry is refused with 1011 and retried: the
 * room is kept), a node that stops (its clients' returns are spread, each back in its room),
 * and two nodes behind a load balancer (moving from a stopping node to the other keeps the room
 * and recovers what was missed). The Redis tests need `redis-server` in PATH.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import type { DisconnectInfo } from "danmu-client";
import { Bigo, Broker, closeClients, eventsOf, freePort, hasRedis, msgItem, newClient, Proxy, RedisServer, sleep, waitFor } from "./harness.js";

const brokers: Broker[] = [];
const proxies: Proxy[] = [];
const redises: RedisServer[] = [];
const bigos: Bigo[] = [];

after(async () => {
  closeClients();
  bigos.forEach((b) => b.close());
  await Promise.all(proxies.map((p) => p.close()));
  await Promise.all(brokers.map((b) => b.dispose()));
  await Promise.all(redises.map((r) => r.dispose()));
});

async function broker(options: Parameters<typeof Broker.start>[0] = {}): Promise<Broker> {
  const b = await Broker.start(options);
  brokers.push(b);
  return b;
}

async function proxy(targetPort: number, port?: number): Promise<Proxy> {
  const p = await Proxy.start(targetPort, port);
  proxies.push(p);
  return p;
}

function redisEnv(url: string, node: string): Record<string, string> {
  return {
    DANMU__STORE__KIND: "redis",
    DANMU__STORE__REDIS_URL: url,
    DANMU__STORE__KEY_PREFIX: `sdk-${process.pid}-`,
    DANMU__STORE__NODE_ID: node,
  };
}

const noRedis = hasRedis() ? false : "redis-server is not in PATH";

describe("Redis unreachable", { skip: noRedis }, () => {
  test("a re-entry refused with 1011 during the outage is retried: the room is kept and recovered", async () => {
    const redis = await RedisServer.start();
    redises.push(redis);
    const redisLink = await proxy(redis.port); // the broker's link to Redis, to cut
    const clientPort = await freePort();
    const b = await broker({ publicPort: clientPort, env: redisEnv(`redis://127.0.0.1:${redisLink.port}`, "node-a") });
    const clientLink = await proxy(b.port, clientPort);
    const { client: ann, seen } = await newClient(clientLink.baseUrl, "ann", { reconnect: { minDelayMs: 200, maxDelayMs: 1000 } });
    const bigo = await Bigo.connect(b);
    bigos.push(bigo);
    await ann.enterRoom("outage-1");
    assert.equal(await bigo.push("outage-1", [msgItem("outage-1-0", Date.now(), "before")]), 200);
    await waitFor("the first danmu", () => eventsOf(seen, "send_topic_msg").length === 1);

    // The client's link fails; the broker sees it go (its exit_room is stored), then loses Redis.
    clientLink.hold();
    clientLink.cut();
    await waitFor("the client notices", () => ann.state === "reconnecting");
    await sleep(300);
    redisLink.hold();
    redisLink.cut();
    clientLink.release();

    const refused = await waitFor(
      "the re-entry refused with 1011",
      () => seen.errors.find((e) => (e as { error_code?: number }).error_code === 1011),
      20_000,
    );
    assert.equal((refused as { retryable?: boolean }).retryable, true);
    assert.equal(ann.channelName, "outage-1", "the room is kept while the store is away");
    assert.deepEqual(seen.recoveries, [], "no verdict yet: it keeps trying");
    await sleep(3000); // a few more refused retries
    const retries = seen.errors.filter((e) => (e as { error_code?: number }).error_code === 1011).length;
    redisLink.release();

    const recovery = await waitFor("the recovery once Redis is back", () => seen.recoveries[0], 30_000);
    assert.equal(recovery.error, undefined);
    assert.equal(recovery.recovered, true, "Redis kept the room: everything missed is replayed");
    assert.equal(ann.channelName, "outage-1");
    assert.ok(retries >= 2, `retried with back-off meanwhile (${retries} refusals)`);
    assert.equal(await bigo.push("outage-1", [msgItem("outage-1-1", Date.now(), "after")]), 200);
    await waitFor("a live event", () => eventsOf(seen, "send_topic_msg").some((m) => m.content === "after"), 10_000);
    await ann.sendTopicMsg("and a report");
    ann.close();
  });
});

describe("a node that stops", () => {
  test("its clients' returns are spread over the window, and each is back in its room", async (t) => {
    const b = await broker();
    const count = 12;
    const clients = await Promise.all(
      Array.from({ length: count }, (_, i) => newClient(b.baseUrl, `viewer-${i}`, { reconnect: { minDelayMs: 100, maxDelayMs: 500, restartSpreadMs: 5000 } })),
    );
    const disconnects: DisconnectInfo[] = []; // the first of each client: the kick
    for (const { client } of clients) {
      await client.enterRoom("spread-1");
      client.once("disconnected", (d) => disconnects.push(d));
    }
    assert.equal(await b.stop(), 0);
    await waitFor("every client told", () => disconnects.length === count, 10_000);
    await b.run();

    assert.ok(disconnects.every((d) => d.code === 1012 && d.reconnecting), "kicked with 1012, reconnecting");
    const delays = disconnects.map((d) => d.retryInMs!).sort((x, y) => x - y);
    t.diagnostic(`return delays after the kick (ms): ${delays.join(", ")}`);
    assert.ok(delays.every((d) => d >= 0 && d <= 5000), `within the window: ${delays}`);
    assert.ok(delays[count - 1]! - delays[0]! >= 2000, `spread over the window, not all at once: ${delays}`);
    const inTheOldBand = delays.filter((d) => d >= 400 && d <= 600).length;
    assert.ok(inTheOldBand < count / 2, `not bunched at 400-600 ms: ${delays}`);

    await waitFor(
      "every client back in its room",
      () => clients.every(({ client, seen }) => client.state === "connected" && seen.recoveries.length === 1),
      20_000,
    );
    for (const { client, seen } of clients) {
      assert.equal(client.channelName, "spread-1");
      assert.equal(seen.recoveries[0]!.error, undefined);
    }
    clients.forEach(({ client }) => client.close());
  });
});

describe("two nodes", { skip: noRedis }, () => {
  test("moving from a stopping node to the other keeps the room and recovers what was missed", async () => {
    const redis = await RedisServer.start();
    redises.push(redis);
    const lbPort = await freePort();
    const a = await broker({ publicPort: lbPort, env: redisEnv(redis.url, "node-a") });
    const b = await broker({ publicPort: lbPort, env: redisEnv(redis.url, "node-b") });
    const lb = await proxy(a.port, lbPort); // the load balancer: end_point and WebSockets
    const { client: ann, seen } = await newClient(lb.baseUrl, "ann", { reconnect: { minDelayMs: 100, maxDelayMs: 500, restartSpreadMs: 300 } });
    const bigo = await Bigo.connect(b);
    bigos.push(bigo);
    await ann.enterRoom("move-1");
    assert.equal(await bigo.push("move-1", [msgItem("move-1-0", Date.now(), "before, from node b")]), 200);
    await waitFor("the danmu across nodes", () => eventsOf(seen, "send_topic_msg").length === 1, 10_000);

    // Node a stops; the balancer sends new connections to b, and nobody gets through for a moment.
    lb.hold();
    lb.retarget(b.port);
    assert.equal(await a.stop(), 0);
    await waitFor("the client notices", () => ann.state === "reconnecting");
    assert.deepEqual(seen.kicked, ["shutdown"]);
    assert.equal(await bigo.push("move-1", [msgItem("move-1-1", Date.now(), "missed while moving")]), 200);
    await sleep(200);
    lb.release();

    const recovery = await waitFor("the recovery on node b", () => seen.recoveries[0], 20_000);
    assert.equal(recovery.recovered, true, "the same room, the same epoch, on the other node");
    assert.equal(recovery.renumbered, false);
    assert.equal(ann.channelName, "move-1");
    const missed = await waitFor("the replay", () => eventsOf(seen, "send_topic_msg").find((m) => m.content === "missed while moving"));
    const meta = seen.events.find((e) => e.event === missed)!.meta;
    assert.equal(meta.replayed, true);
    await ann.sendTopicMsg("hello from node b");
    await waitFor("a live event on node b", () => eventsOf(seen, "send_topic_msg").some((m) => m.content === "hello from node b"));
    const seqs = seen.events.map((e) => e.event.seq).filter((s) => s !== undefined) as number[];
    assert.equal(new Set(seqs).size, seqs.length, "nothing twice");
    ann.close();
  });
});
