/**
 * The SDK in a real headless Chromium whose page is hidden (its window minimised), against the
 * real broker with its default heartbeat (`ping_interval` 15 s, idle timeout 20 s).
 *
 * Chrome throttles the timers of hidden pages: after 5 minutes hidden, chained timers wake up
 * once a minute ("intensive wake-up throttling"), which a `setInterval` heartbeat cannot
 * survive against a 20 s idle timeout. The test shortens Chrome's 5 minutes with its own
 * feature parameter (`DANMU_TEST_THROTTLE_GRACE_S`, default 10; `chrome` keeps Chrome's
 * default) and keeps the page hidden for `DANMU_TEST_HIDDEN_S` (default 130). A plain
 * `setInterval` in the same page is the control: the test fails unless it was throttled, so a
 * pass means the SDK's heartbeat kept the connection through real throttling.
 *
 * `DANMU_TEST_SDK_BUNDLE` names another bundle to load instead of the committed one (e.g. an
 * older SDK, to measure it). Skipped when Chromium is not installed.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";

import { Chromium, chromiumPath, PageFront } from "./browser.js";
import { Bigo, Broker, freePort, mintToken, msgItem, sleep, waitFor } from "./harness.js";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const chromium = chromiumPath();
const hiddenS = Number(process.env.DANMU_TEST_HIDDEN_S ?? 130);
const graceS = process.env.DANMU_TEST_THROTTLE_GRACE_S ?? "10";

const cleanup: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** The page: the SDK in a room, and what it saw, timed from the page's start (ms). */
const PAGE = `<!doctype html><meta charset="utf-8"><title>hidden tab</title>
<script type="module">
  import { DanmuClient } from "/hidden/danmu-client.js";
  const q = new URLSearchParams(location.search);
  const t0 = performance.now();
  const at = (window.at = () => Math.round(performance.now() - t0));
  const report = (window.report = { ticks: [], pings: [], states: [], disconnects: [], events: [], visibility: [], entered: false });
  setInterval(() => report.ticks.push(at()), 1000); // the control: a plain interval
  document.addEventListener("visibilitychange", () => report.visibility.push([document.visibilityState, at()]));
  class RecordingWebSocket extends WebSocket {
    send(data) {
      if (String(data).includes('"action":"ping"')) report.pings.push(at());
      super.send(data);
    }
  }
  const client = new DanmuClient({ baseUrl: location.origin, userId: q.get("user"), token: q.get("token"), WebSocket: RecordingWebSocket });
  client.on("state", (s) => report.states.push([s, at()]));
  client.on("disconnected", (d) => report.disconnects.push([d.code, d.reason, at()]));
  client.on("send_topic_msg", (m, meta) => report.events.push([m.content, meta.replayed, document.visibilityState, at()]));
  client.enterRoom("hidden-1").then(() => (report.entered = true));
</script>`;

interface Report {
  ticks: number[];
  pings: number[];
  states: [string, number][];
  disconnects: [number, string, number][];
  events: [string, boolean, string, number][];
  visibility: [string, number][];
  entered: boolean;
  /** When the report was read. */
  now: number;
}

function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - times[i]!);
}

test(
  `a hidden page keeps its connection through Chrome's timer throttling (${hiddenS} s hidden)`,
  { skip: chromium ? false : "chromium is not installed (apt-get install chromium)", timeout: (hiddenS + 120) * 1000 },
  async (t) => {
    const frontPort = await freePort();
    const broker = await Broker.start({ publicPort: frontPort }); // default ping_interval 15 s, idle timeout 20 s
    cleanup.push(() => broker.dispose());
    const bundle = process.env.DANMU_TEST_SDK_BUNDLE || join(REPO, "src", "http", "demo", "danmu-client.js");
    const front = await PageFront.start(
      broker.port,
      {
        "/hidden/page.html": { type: "text/html; charset=utf-8", body: PAGE },
        "/hidden/danmu-client.js": { type: "text/javascript; charset=utf-8", body: readFileSync(bundle, "utf8") },
      },
      frontPort,
    );
    cleanup.push(() => front.close());
    const flags = graceS === "chrome" ? [] : [`--enable-features=IntensiveWakeUpThrottling:grace_period_seconds/${graceS}`];
    const browser = await Chromium.launch(chromium!, flags);
    cleanup.push(() => browser.close());

    const token = await mintToken("hidden-viewer");
    const page = await browser.open(`${front.origin}/hidden/page.html?user=hidden-viewer&token=${encodeURIComponent(token)}`);
    await waitFor("the page in its room", () => page.evaluate<boolean>("window.report?.entered === true"), 20_000);
    assert.equal(await page.evaluate<string>("document.visibilityState"), "visible");

    await page.hide();
    assert.equal(await page.evaluate<string>("document.visibilityState"), "hidden");
    const hiddenAt = await page.evaluate<number>("Math.round(performance.now())");
    await sleep((hiddenS - 10) * 1000);
    // A danmu while the page is still hidden: it arrives at once (network events are not throttled).
    const bigo = await Bigo.connect(broker); // now: an idle BIGO connection is closed after 30 s
    cleanup.push(() => bigo.close());
    assert.equal(await bigo.push("hidden-1", [msgItem("hidden-1-0", Date.now(), "while hidden")]), 200);
    await sleep(10_000);
    const hidden = await page.evaluate<Report>("({ ...window.report, now: window.at() })");
    const start = hidden.visibility.find(([v]) => v === "hidden")?.[1] ?? hiddenAt;
    const tickGaps = gaps([...hidden.ticks.filter((x) => x >= start), hidden.now]);
    const pingGaps = gaps([...hidden.pings.filter((x) => x >= start - 15_000)]);
    t.diagnostic(`hidden for ${hiddenS} s (throttling grace ${graceS} s); control setInterval(1 s): ${hidden.ticks.filter((x) => x >= start).length} wake-ups, longest gap ${Math.max(...tickGaps)} ms`);
    t.diagnostic(`SDK pings while hidden: ${pingGaps.length + 1}, gaps ${pingGaps.join(", ")} ms; disconnects ${JSON.stringify(hidden.disconnects)}`);
    t.diagnostic(`danmu while hidden: ${JSON.stringify(hidden.events)}; states ${JSON.stringify(hidden.states)}`);

    assert.ok(Math.max(...tickGaps) >= 15_000, `the page was throttled (else this test proves nothing): control gaps ${tickGaps}`);
    assert.deepEqual(hidden.disconnects, [], "the connection was never lost");
    assert.deepEqual(hidden.states.map(([s]) => s), ["connecting", "connected"]);
    assert.ok(Math.max(...pingGaps) <= 17_000, `a ping every ping_interval, throttled or not: ${pingGaps}`);
    assert.deepEqual(hidden.events.map(([content, replayed, visibility]) => [content, replayed, visibility]), [["while hidden", false, "hidden"]]);

    // Shown again: the SDK checks its link at once instead of waiting for the next heartbeat.
    await page.show();
    await waitFor("a link check as the page is shown", async () => {
      const r = await page.evaluate<Report>("window.report");
      return r.pings.length > hidden.pings.length;
    }, 5_000);
  },
);
