// An app outside the repository: prints the danmu of one channel as they arrive.
// usage: DANMU__AUTH__JWT_SECRET=... node print-danmu.mjs [channel] [broker URL]
import { DanmuClient, describeError } from "danmu-client";
import WebSocket from "ws";   // Node.js 20 has no global WebSocket; Node.js 22+ and browsers need no import
import { danmuToken } from "./token.mjs";

const [channel = "demo1", baseUrl = "http://127.0.0.1:8080"] = process.argv.slice(2);
const userId = `viewer-${process.pid}`;
const client = new DanmuClient({
  baseUrl,
  userId,
  token: () => danmuToken(userId, { nickname: "Viewer" }),   // in a real app: fetched from its backend
  WebSocket,
});
client.on("send_topic_msg", (msg) => console.log(`${msg.nickname}: ${msg.content}`));
client.on("send_gift", ({ gift }) => console.log(`${gift.sender_nickname} sent ${gift.num} x ${gift.name}`));
client.on("like", (like) => console.log(`${like.nickname} liked x${like.count}`));
client.on("error", (e) => console.error("danmu:", describeError(e)));

const ack = await client.enterRoom(channel);
console.error(`in ${channel} as ${userId}: ${ack.room.members} member(s), last_seq ${ack.last_seq}`);
