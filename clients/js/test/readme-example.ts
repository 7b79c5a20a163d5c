// The README's example, type-checked by `npm test` (compiled, never run: it needs a broker at
// 127.0.0.1:8080). Keep it the same as the code block under README.md's "Example".
import { DanmuClient, DanmuError, describeError } from "danmu-client";
import WebSocket from "ws";

export async function readmeExample(): Promise<void> {
  const client = new DanmuClient({
    baseUrl: "http://127.0.0.1:8080",   // the broker (or its load balancer): /iapi/... lives here
    userId: "u1",
    // Asked once, cached until shortly before the JWT's exp (or a 401); null: "unauthorized, stop".
    token: async () => {
      const res = await fetch("/my-backend/danmu-token");
      if (res.status === 401) return null;
      return res.text();
    },
    WebSocket,                          // Node.js 20 only
  });

  client.on("state", (state) => console.log("connection:", state));   // connecting, connected, reconnecting, closed
  client.on("disconnected", ({ code, retryInMs }) => console.log(`lost (${code}), back in ${retryInMs} ms`));
  client.on("send_topic_msg", (msg, meta) => console.log(`${msg.nickname}: ${msg.content}`, meta.replayed ? "(replayed)" : ""));
  client.on("send_gift", ({ gift, notify_type }) => console.log(`${gift.sender_nickname} sent ${gift.num}x ${gift.name} (${notify_type})`));
  client.on("like", (like) => console.log(`${like.nickname} liked x${like.count}`));
  client.on("up", ({ room_seat }) => console.log(`${room_seat.nickname} took seat ${room_seat.id}`));
  client.on("room_status", ({ status }) => console.log("room is", status));
  client.on("kicked", ({ reason }) => console.log("kicked:", reason));   // "replaced": this user_id+sid connected elsewhere
  client.on("error", (e) => { if (e.retryable) console.log("retrying:", describeError(e)); });   // e.g. 1011
  client.on("recovery", ({ recovered, ack, error }) => {
    if (error) return console.log("out of the room:", describeError(error));   // 1007: closed meanwhile
    if (!recovered) redraw(ack!.room);   // missed events are gone: reload the room from the snapshot
  });

  const ack = await client.enterRoom("demo1", undefined, { timeoutMs: 15_000 });   // connects first; stays in the room across reconnects
  redraw(ack.room);                               // members, seats, last_seq, status

  await client.sendTopicMsg("hello 👋");
  await client.sendGift({ id: "1", name: "Rose", num: 3, receiver_id: "anchor1" });          // bc
  await client.sendGift({ id: "2", name: "Kiss", num: 1, receiver_id: "u2" }, "ptp");        // to u2 only
  try {
    await client.up(3);
  } catch (e) {
    if (e instanceof DanmuError && e.error_code === 1005) console.log("seat 3 is taken");
  }
  await client.down();
  await client.exitRoom();
  client.close();                                 // for good: make a new client to connect again

  // The live-room list (docs/protocol.md 3), with the same token as Bearer:
  const created = await client.rooms.createRoom({ title: "Evening show" });   // push_url only here
  await client.rooms.goLive(created.room_id);
  await client.rooms.linkGame(created.room_id, { game_id: "10000", game_sess: "demo1" });
  const { rooms, total } = await client.rooms.listRooms({ page: 1, page_size: 20 });
  console.log(`${total} live rooms, newest: ${rooms[0].title}, ${rooms[0].viewers} viewers`);
  await client.rooms.like(rooms[0].room_id, { signal: AbortSignal.timeout(3000) });

  function redraw(room: { members: number; seats: unknown[] }) { console.log(room.members, "members", room.seats.length, "seats"); }
}
