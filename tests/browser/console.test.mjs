#!/usr/bin/env node
// Real-browser test of the EventFlow web console (system Chromium driven by playwright-core).
//
//   node tests/browser/console.test.mjs --url http://127.0.0.1:PORT [--api-key KEY] \
//        --webhook-fail-url URL [--screenshots DIR]
//
// The server must run with MAX_RETRIES=0 (so a failing delivery is dead-lettered at once) and
// accept the loopback webhook URL (APP_ENV=development or WEBHOOK_ALLOW_PRIVATE_NETWORKS=true);
// --webhook-fail-url must answer every POST with an error status.
// CONSOLE_DIR=path/to/console serves index.html, app.js and app.css from disk instead of from the
// server (to work on the console without rebuilding); CHROMIUM overrides /usr/bin/chromium.
// Exit code 0 when every step passes; otherwise the failed step is printed, failure.png saved, 1.

import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const WAIT_MS = 15_000; // longest any single wait may take
const DEAD_LETTER_WAIT_MS = 30_000; // a dead letter needs the worker to try the delivery once
const WHOLE_RUN_MS = 240_000; // the run is killed past this, whatever it waits for

const { values: options } = parseArgs({
  options: {
    url: { type: "string" },
    "api-key": { type: "string" },
    "webhook-fail-url": { type: "string" },
    screenshots: { type: "string", default: "console-screenshots" },
  },
});
if (!options.url || !options["webhook-fail-url"]) {
  console.error("usage: node console.test.mjs --url URL [--api-key KEY] --webhook-fail-url URL [--screenshots DIR]");
  process.exit(2);
}
const BASE = options.url.replace(/\/+$/, "");
const API_KEY = options["api-key"] || "";
const SHOTS = path.resolve(options.screenshots);
const RUN = `run-${Date.now().toString(36)}`; // marks this run's events and subscription

// ---------- helpers ----------

// Calls the EventFlow API from Node; throws with the problem detail on an unexpected status.
async function api(method, apiPath, body, expected = [200, 201, 202, 204]) {
  const headers = { Accept: "application/json" };
  if (API_KEY) headers.Authorization = `Bearer ${API_KEY}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`${BASE}${apiPath}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const text = await response.text();
  if (!expected.includes(response.status)) {
    throw new Error(`${method} ${apiPath} answered ${response.status}: ${text.slice(0, 300)}`);
  }
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

// Posts one event and returns it as stored.
async function postEvent(type, data, subject) {
  const { body } = await api("POST", "/api/v1/events", { type, source: "browser-test", subject, data });
  return body;
}

// Repeats `probe` until it returns something truthy, or fails after `timeout` ms.
async function until(what, probe, timeout = WAIT_MS, every = 250) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}

// Runs one named step, printing its outcome and time.
async function step(name, body) {
  const started = Date.now();
  currentStep = name;
  await body();
  console.log(`ok   ${name} (${Date.now() - started} ms)`);
}
let currentStep = "start";

// Serves the console files from CONSOLE_DIR instead of the server, for development.
async function routeConsoleFromDisk(context, dir) {
  const files = {
    "/": ["index.html", "text/html"],
    "/console/app.js": ["app.js", "text/javascript"],
    "/console/insights.js": ["insights.js", "text/javascript"],
    "/console/app.css": ["app.css", "text/css"],
    "/console/vendor/uPlot.iife.min.js": ["vendor/uPlot.iife.min.js", "text/javascript"],
    "/console/vendor/uPlot.min.css": ["vendor/uPlot.min.css", "text/css"],
  };
  await context.route(
    (url) => url.origin === new URL(BASE).origin && url.pathname in files,
    async (route) => {
      const [file, type] = files[new URL(route.request().url()).pathname];
      route.fulfill({ status: 200, contentType: `${type}; charset=utf-8`, body: await readFile(path.join(dir, file)) });
    },
  );
}

// A datetime-local value `offsetMs` from now, in the browser's own time zone.
function localInputValue(page, offsetMs) {
  return page.evaluate((offset) => {
    const d = new Date(Date.now() + offset);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }, offsetMs);
}

// Waits until the text of a data-testid element passes `test`; a timeout says what was shown.
async function waitForText(page, testid, test, what) {
  const locator = page.getByTestId(testid);
  try {
    await until(what, async () => test((await locator.textContent({ timeout: 1000 })) ?? ""));
  } catch (err) {
    const shown = await locator.textContent({ timeout: 1000 }).catch(() => "(absent)");
    const message = await page.locator('[data-testid="message"]:visible #message-text').textContent({ timeout: 500 }).catch(() => "");
    throw new Error(`${err.message}; ${testid} shows ${JSON.stringify(shown)}${message ? `; message: ${JSON.stringify(message.trim())}` : ""}`);
  }
}

// The tail row of one event.
function tailRow(page, id) {
  return page.locator(`tr[data-testid="tail-row"][data-event-id="${id}"]`);
}

// ---------- the run ----------

const watchdog = setTimeout(() => {
  console.error(`FAIL the whole run took longer than ${WHOLE_RUN_MS} ms (step: ${currentStep})`);
  process.exit(1);
}, WHOLE_RUN_MS);

let browser;
let page;
let subscriptionId;
const pageErrors = [];

try {
  await mkdir(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
    timeout: WAIT_MS,
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  if (process.env.CONSOLE_DIR) await routeConsoleFromDisk(context, path.resolve(process.env.CONSOLE_DIR));
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on("pageerror", (err) => pageErrors.push(err.message));
  page.on("dialog", (dialog) => dialog.accept());

  await step("open the console and go to Live", async () => {
    await page.goto(`${BASE}/`, { timeout: WAIT_MS });
    if ((await page.title()) !== "EventFlow console") throw new Error(`unexpected title ${await page.title()}`);
    if (API_KEY) {
      if (await page.getByTestId("key-form").isHidden()) await page.getByTestId("key-toggle").click();
      await page.getByTestId("key-input").fill(API_KEY);
      await page.getByTestId("key-save").click();
    }
    await page.getByTestId("nav-live").click();
    // Events sent before the stream is open would not be tailed: wait for it.
    await waitForText(page, "tail-status", (text) => text === "live", "the live tail to connect");
  });

  const stored = [];
  await step("three events appear in the live tail", async () => {
    for (let n = 1; n <= 3; n++) stored.push(await postEvent("browser.test", { run: RUN, n, note: "<b>not html</b>" }, `${RUN}-${n}`));
    for (const event of stored) await tailRow(page, event.id).waitFor({ timeout: WAIT_MS });
    const first = (await page.getByTestId("tail-row").first().getAttribute("data-event-id"));
    if (first !== stored[2].id) throw new Error(`the newest event is not at the top (top row: ${first})`);
    await page.screenshot({ path: path.join(SHOTS, "live-tail.png") });
  });

  await step("pause holds new events and resume shows them", async () => {
    await page.getByTestId("tail-pause").click();
    const held = await postEvent("browser.test", { run: RUN, n: 4, held: true }, `${RUN}-4`);
    await waitForText(page, "tail-pending", (text) => text === "1 new", "the 1 new counter");
    if (!(await page.getByTestId("tail-pending").isVisible())) throw new Error("the 1 new counter is not visible");
    if ((await tailRow(page, held.id).count()) !== 0) throw new Error("an event reached the table while paused");
    await page.getByTestId("tail-pause").click(); // now labelled Resume
    await tailRow(page, held.id).waitFor({ timeout: WAIT_MS });
    if (await page.getByTestId("tail-pending").isVisible()) throw new Error("the counter stayed after resume");
    stored.push(held);
  });

  await step("a row opens the event detail with its data", async () => {
    const event = stored[0];
    await tailRow(page, event.id).click();
    const detail = page.getByTestId("event-detail");
    await detail.waitFor({ state: "visible", timeout: WAIT_MS });
    await until("the event data in the detail", async () => {
      const shown = JSON.parse(await page.getByTestId("event-data").textContent());
      return JSON.stringify(shown) === JSON.stringify(event.data);
    });
    const attributes = await page.locator("#detail-attrs").textContent();
    if (!attributes.includes(event.id) || !attributes.includes("browser-test")) throw new Error("the attributes table lacks the id or source");
    // The markup in the data must be text, not HTML.
    if ((await detail.locator("b").count()) !== 0) throw new Error("event data was rendered as HTML");
    await until("the deliveries section to load", async () => !(await page.getByTestId("event-deliveries").textContent()).includes("Loading"));
    await page.screenshot({ path: path.join(SHOTS, "event-detail.png") });
  });

  await step("a dead letter is retried from the Dead letters view", async () => {
    const { body: subscription } = await api("POST", "/api/v1/subscriptions", {
      name: `browser-test ${RUN}`,
      event_types: ["browser.fail"],
      webhook_url: options["webhook-fail-url"],
    });
    subscriptionId = subscription.id;
    const failing = await postEvent("browser.fail", { run: RUN, fails: true }, `${RUN}-fail`);
    const query = `/api/v1/dlq?subscription_id=${encodeURIComponent(subscriptionId)}&limit=1000`;
    const letter = await until(
      "the dead letter of the failing delivery",
      async () => (await api("GET", query)).body.dead_letters.find((l) => l.event_id === failing.id),
      DEAD_LETTER_WAIT_MS,
      500,
    );
    await page.getByTestId("nav-dlq").click();
    const row = page.locator(`tr[data-testid="dlq-row"][data-dead-letter-id="${letter.id}"]`);
    await row.waitFor({ timeout: WAIT_MS });
    await row.getByTestId("dlq-retry").click();
    await page.getByTestId("message").filter({ hasText: "Retried" }).waitFor({ timeout: WAIT_MS });
    // Retrying removes the dead letter and schedules the delivery again with a fresh budget: the
    // letter is gone and a new attempt of the same delivery reaches the delivery log.
    await until("the retried dead letter to leave the queue", async () => {
      const { status } = await api("GET", `/api/v1/dlq/${encodeURIComponent(letter.id)}`, undefined, [200, 404]);
      return status === 404;
    });
    await until("a second attempt of the retried delivery", async () => {
      const { body } = await api("GET", `/api/v1/subscriptions/${encodeURIComponent(subscriptionId)}/deliveries?limit=100`);
      return body.attempts.filter((a) => a.delivery_id === letter.delivery_id).length >= 2;
    });
    // With MAX_RETRIES=0 the retried delivery fails into a new dead letter: Refresh shows it.
    await until("the new dead letter of the retried delivery", async () => {
      const { body } = await api("GET", query);
      return body.dead_letters.some((l) => l.event_id === failing.id && l.id !== letter.id);
    });
    await page.locator("#dlq-refresh").click();
    await page.locator(`tr[data-testid="dlq-row"][data-event-id="${failing.id}"]`).waitFor({ timeout: WAIT_MS });
    await page.screenshot({ path: path.join(SHOTS, "dead-letters.png") });
  });

  let formSubscriptionId;
  await step("the subscription form tries its filters on stored events, then creates it", async () => {
    await page.getByTestId("nav-subscriptions").click();
    await page.locator("#sub-new summary").click();
    await page.locator("#sub-name").fill(`browser-form ${RUN}`);
    await page.locator("#sub-url").fill(options["webhook-fail-url"]);
    await page.locator("#sub-types").fill("browser.test");
    const verdict = async (eventId, filters, outcome) => {
      await page.getByTestId("sub-filters").fill(filters);
      await page.getByTestId("sub-event").fill(eventId);
      await page.getByTestId("sub-test-result").evaluate((box) => { box.dataset.outcome = ""; });
      await page.getByTestId("sub-test").click();
      const box = page.getByTestId("sub-test-result");
      await until(`the playground to answer ${outcome}`, async () => (await box.getAttribute("data-outcome")) === outcome);
      return box.textContent();
    };
    const filters = `[{"sql": "data.run = '${RUN}' AND data.n = 2"}, {"prefix": {"subject": "${RUN}"}}]`;
    await verdict(stored[1].id, filters, "pass");
    await verdict(stored[0].id, filters, "fail");
    const wrong = await verdict(stored[1].id, `[{"sql": "data.n ="}]`, "error");
    if (!wrong.includes("/filters/0/sql")) throw new Error(`the invalid filter's problem names no pointer: ${wrong}`);
    await page.getByTestId("sub-filters").fill(filters);
    await page.screenshot({ path: path.join(SHOTS, "subscription-form.png") });
    await page.getByTestId("sub-submit").click();
    const row = page.locator(`tr[data-testid="subscription-row"]`, { hasText: `browser-form ${RUN}` });
    await row.waitFor({ timeout: WAIT_MS });
    formSubscriptionId = await row.getAttribute("data-subscription-id");
    const { body: created } = await api("GET", `/api/v1/subscriptions/${encodeURIComponent(formSubscriptionId)}`);
    if (created.filters.length !== 2) throw new Error(`the subscription was saved with filters ${JSON.stringify(created.filters)}`);
  });

  await step("an operational event appears in the live tail", async () => {
    await api("PATCH", `/api/v1/subscriptions/${encodeURIComponent(formSubscriptionId)}`, { enabled: false });
    await page.getByTestId("nav-live").click();
    const row = page.locator(`tr.operational[data-testid="tail-row"]`, { hasText: "eventflow.subscription.disabled" });
    await row.first().waitFor({ timeout: WAIT_MS });
    await api("DELETE", `/api/v1/subscriptions/${encodeURIComponent(formSubscriptionId)}`, undefined, [204, 404]);
  });

  await step("a dry-run replay from the form counts the events", async () => {
    await page.getByTestId("nav-replay").click();
    await page.locator("#replay-stream").fill(stored[0].metadata.stream);
    await page.locator("#replay-start").fill(await localInputValue(page, -3600_000));
    await page.locator("#replay-end").fill(await localInputValue(page, 5 * 60_000));
    await page.locator("#replay-types").fill("browser.test");
    await page.getByTestId("replay-dry").check();
    await page.getByTestId("replay-submit").click();
    await waitForText(page, "replay-status", (text) => text === "completed", "the dry run to complete");
    const matched = Number(await page.getByTestId("replay-matched").textContent());
    if (!(matched >= stored.length)) throw new Error(`the dry run matched ${matched} events; at least ${stored.length} expected`);
    await page.screenshot({ path: path.join(SHOTS, "replay.png") });
  });

  await step("the overview charts the last hour's events and deliveries", async () => {
    await page.getByTestId("nav-overview").click();
    // The counts reach the store within a second; the page refreshes every 10 s.
    await until("the events chart to name browser.test", async () => {
      const legend = await page.getByTestId("chart-events").textContent({ timeout: 1000 });
      if (legend.includes("browser.test")) return true;
      await page.getByTestId("nav-overview").click();
      return false;
    });
    if ((await page.locator('[data-testid="chart-events"] canvas').count()) !== 1) throw new Error("the events chart has no canvas");
    await waitForText(page, "chart-deliveries", (text) => text.includes("✗"), "the deliveries chart to show failures");
    const row = page.locator('[data-testid="overview-subs"] tr', { hasText: `browser-test ${RUN}` });
    await row.waitFor({ timeout: WAIT_MS });
    const failed = Number(await row.locator("td").nth(2).textContent());
    if (!(failed >= 1)) throw new Error(`the failing subscription shows ${failed} failures`);
    await page.screenshot({ path: path.join(SHOTS, "overview.png") });
  });

  await step("the event types page shows a type's activity and edits its schema", async () => {
    const type = `browser.order.${RUN}`;
    const schema = { type: "object", required: ["order_id"], properties: { order_id: { type: "string" }, total: { type: "number" } } };
    await api("PUT", `/api/v1/event-types/${encodeURIComponent(type)}`, { description: "An order, from the browser test", schema, examples: [{ order_id: "o-1", total: 12.5 }] });
    for (const n of [1, 2]) await postEvent(type, { order_id: `o-${n}`, total: n });
    await page.getByTestId("nav-types").click();
    const row = page.locator(`[data-testid="types-body"] tr[data-type="${type}"]`);
    await until("the type's row to count its two events", async () => {
      await row.waitFor({ timeout: 1000 });
      if ((await row.locator("td").nth(3).textContent()) === "2") return true;
      await page.locator("#types-refresh").click();
      return false;
    });
    await row.click();
    await waitForText(page, "type-example", (text) => text.includes("o-1"), "the example");
    const editor = page.getByTestId("type-schema");
    await editor.fill(JSON.stringify({ type: "objekt" }));
    await page.getByTestId("type-check").click();
    await waitForText(page, "type-result", (text) => text.includes("/schema/type"), "the editor to point at the broken keyword");
    await editor.fill(JSON.stringify({ ...schema, required: ["order_id", "total"] }, null, 2));
    await page.getByTestId("type-check").click();
    await waitForText(page, "type-result", (text) => text.includes("version 2"), "the editor to validate the change");
    await page.getByTestId("type-save").click();
    await waitForText(page, "message", (text) => text.includes("saved at version 2"), "the save");
    const { body: saved } = await api("GET", `/api/v1/event-types/${encodeURIComponent(type)}`);
    if (saved.version !== 2 || saved.schema.required.length !== 2) throw new Error(`saved ${JSON.stringify(saved)}`);
    await page.screenshot({ path: path.join(SHOTS, "event-types.png") });
    await api("DELETE", `/api/v1/event-types/${encodeURIComponent(type)}`, undefined, [204]);
  });

  if (pageErrors.length) {
    currentStep = "no script errors in the page";
    throw new Error(`uncaught errors in the page: ${pageErrors.join(" | ")}`);
  }
  console.log(`PASS screenshots in ${SHOTS}`);
  process.exitCode = 0;
} catch (err) {
  console.error(`FAIL ${currentStep}: ${err.message}`);
  if (pageErrors.length) console.error(`page errors: ${pageErrors.join(" | ")}`);
  if (page) await page.screenshot({ path: path.join(SHOTS, "failure.png") }).catch(() => {});
  process.exitCode = 1;
} finally {
  if (subscriptionId) await api("DELETE", `/api/v1/subscriptions/${encodeURIComponent(subscriptionId)}`, undefined, [204, 404]).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  clearTimeout(watchdog);
}
