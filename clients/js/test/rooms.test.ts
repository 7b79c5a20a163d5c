/**
 * The live-room API through the SDK against the real broker (docs/protocol.md 3): an anchor
 * creates a room, takes it live, links a BIGO game session; a viewer lists it, likes it and
 * enters its channel, where the linked session's danmu and the room's status changes arrive.
 * Refusals come back as `DanmuError`s with the broker's codes.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { type DanmuError, RoomsApi } from "danmu-client";
import { Bigo, Broker, closeClients, eventsOf, mintToken, msgItem, newClient, waitFor } from "./harness.js";

describe("live rooms", () => {
  let broker: Broker;

  before(async () => {
    broker = await Broker.start();
  });

  after(async () => {
    closeClients();
    await broker?.dispose();
  });

  test("create, go live, list, get, like, link a game, enter, close", async () => {
    const { client: anchor } = await newClient(broker.baseUrl, "anchor-ann");
    const { client: viewer, seen } = await newClient(broker.baseUrl, "viewer-bob");

    const created = await anchor.rooms.createRoom({ title: "晚间直播 evening", location: "Shanghai" });
    assert.equal(created.error_code, 0);
    assert.equal(created.status, "new");
    assert.equal(created.owner_id, "anchor-ann");
    assert.equal(created.channel_name, String(created.room_id));
    assert.match(created.push_url, /^rtmp:\/\/.+\/live\/.+txSecret=/);
    assert.equal((await viewer.rooms.listRooms()).total, 0, "a new room is not listed");

    const live = await anchor.rooms.goLive(created.room_id);
    assert.equal(live.status, "live");
    const list = await viewer.rooms.listRooms({ page: 1, page_size: 10 });
    assert.deepEqual([list.total, list.page, list.page_size], [1, 1, 10]);
    const listed = list.rooms[0]!;
    assert.deepEqual([listed.room_id, listed.title, listed.location], [created.room_id, "晚间直播 evening", "Shanghai"]);
    assert.match(listed.play_urls.flv, /\.flv$/);
    assert.equal((await viewer.rooms.like(created.room_id)).likes, 1);
    assert.equal((await viewer.rooms.getRoom(created.room_id)).likes, 1);

    const linked = await anchor.rooms.linkGame(created.room_id, { game_id: "10000", game_sess: "gs-linked-1" });
    assert.equal(linked.game_sess, "gs-linked-1");

    const ack = await viewer.enterRoom(listed.channel_name);
    assert.equal(ack.room.channel_name, listed.channel_name);
    await waitFor("one viewer", async () => (await viewer.rooms.getRoom(created.room_id)).viewers === 1);
    const bigo = await Bigo.connect(broker);
    assert.equal(await bigo.push("gs-linked-1", [msgItem("linked-1", Date.now(), "to the linked room")]), 200);
    const msg = await waitFor("the linked game's danmu", () => eventsOf(seen, "send_topic_msg")[0]);
    assert.deepEqual([msg.content, msg.channel_name], ["to the linked room", listed.channel_name]);
    bigo.close();

    const closed = await anchor.rooms.closeRoom(created.room_id);
    assert.equal(closed.status, "closed");
    const status = await waitFor("room_status closed", () => eventsOf(seen, "room_status").find((s) => s.status === "closed"));
    assert.equal(status.channel_name, listed.channel_name);
    assert.equal((await viewer.rooms.listRooms()).total, 0);
    await assert.rejects(viewer.sendTopicMsg("in a closed room"), (e: DanmuError) => e.error_code === 1007);
    anchor.close();
    viewer.close();
  });

  test("refusals carry the broker's error codes and HTTP statuses", async () => {
    const rooms = (token: string) => new RoomsApi({ baseUrl: broker.baseUrl, token });
    const ann = rooms(await mintToken("ann"));
    const bob = rooms(await mintToken("bob"));
    const room = await ann.createRoom({ title: "Ann's" });

    const refused = async (call: Promise<unknown>, code: number, status: number) =>
      assert.rejects(call, (e: DanmuError) => {
        assert.equal(e.kind, "refused");
        assert.deepEqual([e.error_code, e.status], [code, status], e.message);
        assert.ok(e.error_reason.length > 0);
        return true;
      });
    await refused(bob.goLive(room.room_id), 2002, 403);
    await refused(ann.getRoom(999_999), 2001, 404);
    await refused(ann.like(room.room_id), 2003, 409); // not live yet
    await refused(ann.createRoom({ title: "" }), 1001, 400);
    await refused(rooms(await mintToken("ann", "Ann", "wrong-secret")).listRooms(), 1003, 401);
    await ann.closeRoom(room.room_id);
    await refused(ann.goLive(room.room_id), 2003, 409);
  });

  test("the token may be a function: cached, and asked again after a 401", async () => {
    let asked = 0;
    const good = await mintToken("carol");
    const bad = await mintToken("carol", "Carol", "wrong-secret");
    const api = new RoomsApi({ baseUrl: broker.baseUrl, token: async () => (++asked === 1 ? bad : good) });
    await api.listRooms(); // refused with the first token: asked again, retried once
    await api.listRooms({ page: 2 });
    assert.equal(asked, 2);
    let stop = 0;
    const refused = new RoomsApi({ baseUrl: broker.baseUrl, token: () => (++stop === 1 ? bad : null) });
    await assert.rejects(refused.listRooms(), (e: DanmuError) => e.kind === "refused" && e.status === 401);
    assert.equal(stop, 2, "asked once more, and it said stop");
  });
});
