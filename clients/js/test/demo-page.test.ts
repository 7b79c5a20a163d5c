/**
 * The broker's demo page (`/demo`, src/http/demo/app.js) on the SDK, in a real headless
 * Chromium: it logs in through a token function (`/demo/token`; no token in localStorage),
 * keeps its room position across leaving and coming back (sessionStorage: the SDK replays what
 * was missed, `recovered: true`), and shows a refusal in words. The page is the one the broker
 * binary embeds: rebuild the broker after changing it. Skipped when Chromium is not installed.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";

import { Chromium, chromiumPath, type Page } from "./browser.js";
import { Bigo, Broker, msgItem, waitFor } from "./harness.js";

const chromium = chromiumPath();
const cleanup: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** The chat log's lines; none while the page is between documents. */
const chatLines = (page: Page) =>
  page.evaluate<string[]>("Array.from(document.querySelectorAll('#chat-log li')).map((li) => li.textContent)").catch(() => [] as string[]);
const set = (id: string, value: string) => `document.getElementById(${JSON.stringify(id)}).value = ${JSON.stringify(value)};`;

test(
  "the demo page logs in with a token function, keeps its room across leaving and coming back, and says refusals in words",
  { skip: chromium ? false : "chromium is not installed (apt-get install chromium)", timeout: 90_000 },
  async () => {
    const broker = await Broker.start({ env: { DANMU__DEMO__ENABLED: "true" } });
    cleanup.push(() => broker.dispose());
    const browser = await Chromium.launch(chromium!);
    cleanup.push(() => browser.close());
    const bigo = await Bigo.connect(broker);
    cleanup.push(() => bigo.close());
    const page = await browser.open(`${broker.baseUrl}/demo`);
    const connected = () => page.evaluate<boolean>("document.getElementById('conn-status')?.dataset.state === 'connected'");

    const ready = () => page.evaluate<boolean>("(document.getElementById('stage-channel')?.textContent ?? '') !== ''").catch(() => false); // app.js ran
    await waitFor("the page", ready, 10_000);
    await page.evaluate(`${set("user-id", "ann")} ${set("nickname", "Ann")} document.getElementById('login').click(); true`);
    await waitFor("the connection", connected, 10_000);
    const saved = await page.evaluate<Record<string, unknown>>("JSON.parse(localStorage.getItem('danmu-demo-session'))");
    assert.deepEqual(saved, { user_id: "ann", nickname: "Ann" }, "only who, never a token");

    await page.evaluate(`${set("channel", "reload-1")} document.getElementById('join').click(); true`);
    await waitFor("joined", async () => (await chatLines(page)).includes("joined reload-1"), 10_000);
    assert.equal(await bigo.push("reload-1", [msgItem("reload-1-0", Date.now(), "before")]), 200);
    await waitFor("the danmu", async () => (await chatLines(page)).includes("Viewer: before"), 10_000);

    // Away (the page leaves the room and closes its client), a danmu meanwhile, and back.
    await page.navigate("about:blank");
    await waitFor("away", () => page.evaluate<boolean>("location.href === 'about:blank'").catch(() => false), 10_000);
    assert.equal(await bigo.push("reload-1", [msgItem("reload-1-1", Date.now(), "missed while away")]), 200);
    await page.navigate(`${broker.baseUrl}/demo`);
    await waitFor("back in the room", async () => (await chatLines(page)).includes("joined reload-1"), 15_000);
    const lines = await chatLines(page);
    assert.ok(lines.some((l) => /^back to reload-1 from seq \d+/.test(l)), lines.join("\n"));
    assert.ok(lines.includes("Viewer: missed while away"), `what was missed is replayed: ${lines.join(" | ")}`);
    assert.ok(!lines.includes("Viewer: before"), "nothing from before the position");
    assert.equal(await page.evaluate<string>("document.getElementById('recovered').textContent"), "recovered: true");

    // A refusal, in words: a private gift to someone not in the room (1004).
    await page.evaluate(`${set("gift-receiver", "nobody")} ${set("gift-notify", "ptp")} document.getElementById('send-gift').click(); true`);
    const toast = await waitFor("the refusal", () => page.evaluate<string>("document.getElementById('toast').textContent"), 10_000);
    assert.equal(toast, "not in that room (or holding no seat, or the receiver is not there) (1004)");
  },
);
