// EventFlow console: live tail, subscriptions, dead letters and replays over the /api/v1 API.
// Plain ES2020, no dependencies. Every piece of data reaches the DOM as text (textContent or
// text nodes), never as HTML.
"use strict";

const KEY_STORAGE = "eventflow.apiKey";
const MAX_TAIL_ROWS = 500;
const BACKFILL_ROWS = 50;
const STATS_INTERVAL_MS = 2000;
const REPLAY_POLL_MS = 1000;
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 10000;
const EVENT_ATTEMPTS_LIMIT = 200;
const RECENT_DELIVERIES = 10;
const DLQ_PAGE = 50;
const VIEWS = ["overview", "live", "types", "subscriptions", "dlq", "replay"];
const FINISHED_REPLAY = new Set(["completed", "cancelled", "failed"]);
/** Statuses after which the stream request is not retried on its own (the user must act). */
const NO_RETRY_STATUSES = new Set([400, 401, 403, 422]);

const state = {
  view: "live",
  messageTimer: null,
  subscriptions: [],
  dlqCursor: null,
  replayId: null,
  replayTimer: null,
  replayPolls: 0,
  detailId: null,
  previousStats: null,
  tail: {
    controller: null,
    timer: null,
    backoff: RECONNECT_MIN_MS,
    lastEventId: "",
    paused: false,
    pending: [],
    events: new Map(), // id -> event, for the rows shown and the ones waiting while paused
  },
};

/* ---------- small helpers ---------- */

// Looks an element up by id; every view is addressed by ids in index.html.
function $(id) {
  return document.getElementById(id);
}

// Builds an element from properties and children, so data only ever lands in the DOM as text.
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = String(value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Encodes one path segment or query value, since ids are user-chosen strings.
function enc(text) {
  return encodeURIComponent(text);
}

// Shortens long ids for tables; the full id stays in the title tooltip.
function shortId(id) {
  const text = String(id ?? "");
  return text.length > 12 ? `…${text.slice(-8)}` : text;
}

// Formats a timestamp as a local time of day with milliseconds, for the tail's time column.
function formatClock(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso ?? "");
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

// Formats a timestamp as a local date and time, for tables of things that last longer.
function formatDateTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

// Renders any attribute value as text: strings as they are, everything else as JSON.
function asText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

// True when an event type matches a subscription pattern (exact, `prefix*` or `*`), as the server
// decides: `*` selects every producer's event but not EventFlow's own (eventflow.*).
function patternMatches(pattern, eventType) {
  if (pattern === "*" && eventType.startsWith("eventflow.")) return false;
  return pattern.endsWith("*") ? eventType.startsWith(pattern.slice(0, -1)) : pattern === eventType;
}

/* ---------- messages ---------- */

// Shows a message in the visible message area; success messages fade after a while.
function showMessage(text, kind = "error") {
  $("message-text").textContent = text;
  $("message").className = `message ${kind}`;
  $("message").hidden = false;
  clearTimeout(state.messageTimer);
  if (kind === "success") state.messageTimer = setTimeout(hideMessage, 8000);
}

// Hides the message area (dismiss button, or after a success).
function hideMessage() {
  $("message").hidden = true;
}

// Shows any failure of an API call: the problem+json detail when there is one.
function reportError(err) {
  showMessage(err instanceof ApiError ? err.detail : String((err && err.message) || err), "error");
}

/* ---------- API access ---------- */

// An API answer that was not 2xx, carrying the problem+json detail to show.
class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

// Reads the API key of this tab; requests go without a key when none is set (development servers).
function getApiKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

// Stores (or forgets, when empty) the API key for this tab.
function setApiKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    /* storage disabled: the key only lives until the page reloads */
  }
  updateKeyButton();
}

// Adds the Authorization header to a request's headers when a key is set.
function authHeaders(extra = {}) {
  const key = getApiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
}

// Turns an error response into an ApiError with its detail; a 401/403 also opens the key form.
async function problemOf(response) {
  let detail = `${response.status} ${response.statusText}`.trim();
  try {
    const problem = await response.json();
    if (problem && typeof problem.detail === "string") detail = problem.detail;
    else if (problem && typeof problem.title === "string") detail = problem.title;
    // Where the request is wrong, as JSON pointers into it.
    if (problem && Array.isArray(problem.errors) && problem.errors.length) {
      detail += ` (${problem.errors.map((e) => `${e.pointer}: ${e.detail}`).join("; ")})`;
    }
  } catch {
    /* not JSON: keep the status line */
  }
  if (response.status === 401 || response.status === 403) showKeyForm();
  return new ApiError(response.status, detail);
}

// Calls the JSON API; returns the parsed body (null when empty) or throws an ApiError.
async function api(path, { method = "GET", body } = {}) {
  const headers = authHeaders(body === undefined ? {} : { "Content-Type": "application/json" });
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, `EventFlow cannot be reached (${err.message})`);
  }
  if (!response.ok) throw await problemOf(response);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// Fetches every subscription and remembers them, for names in other views.
async function fetchSubscriptions() {
  const { subscriptions } = await api("/api/v1/subscriptions");
  state.subscriptions = subscriptions;
  return subscriptions;
}

// Names a subscription by id for tables, falling back to its short id.
function subscriptionLabel(id) {
  const found = state.subscriptions.find((s) => s.id === id);
  return found ? found.name : shortId(id);
}

/* ---------- API key form ---------- */

// Opens the key form, because the server asked for a (better) key.
function showKeyForm() {
  $("key-form").hidden = false;
  $("key-input").focus();
}

// Shows on the header button whether a key is set.
function updateKeyButton() {
  $("key-toggle").textContent = getApiKey() ? "API key ✓" : "API key";
}

// Saves the key typed in, then reloads everything with it.
function onKeySubmit(event) {
  event.preventDefault();
  setApiKey($("key-input").value.trim());
  $("key-input").value = "";
  $("key-form").hidden = true;
  showMessage(getApiKey() ? "API key saved for this tab." : "API key cleared.", "success");
  restartTail(false);
  pollStats();
  refreshView(state.view);
}

// Forgets the key of this tab.
function onKeyForget() {
  $("key-input").value = "";
  onKeySubmit(new Event("submit"));
}

/* ---------- navigation ---------- */

// Shows one section and loads its data, so a view is fresh whenever it is opened.
function showView(name) {
  state.view = name;
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== name;
  for (const button of document.querySelectorAll(".sidenav .nav")) {
    const active = button.dataset.view === name;
    button.classList.toggle("active", active);
    if (active) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  refreshView(name);
}

// Loads the data of a view (the live tail loads itself; the overview and event types are in
// insights.js).
function refreshView(name) {
  if (name === "overview") loadOverview();
  else if (name === "types") loadEventTypes();
  else if (name === "subscriptions") loadSubscriptionsView();
  else if (name === "dlq") loadDeadLetters(true);
  else if (name === "replay") loadReplayView();
}

/* ---------- live tail: Server-Sent Events over fetch ---------- */

// Parses text/event-stream incrementally: push text in, get back the messages it completed.
function createSseParser() {
  let buffer = "";
  let data = [];
  let eventName = "";
  let lastId = ""; // the last-event-ID buffer outlives each message, as the SSE spec says

  // Applies one line; returns a message when the line is the blank one that dispatches.
  function processLine(line) {
    if (line === "") return dispatch();
    if (line.startsWith(":")) return null; // comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") eventName = value;
    else if (field === "id" && !value.includes("\0")) lastId = value;
    return null; // `retry` and unknown fields are ignored
  }

  // Completes the message being built; one without data lines is dropped (SSE spec).
  function dispatch() {
    const message = data.length ? { id: lastId, event: eventName || "message", data: data.join("\n") } : null;
    data = [];
    eventName = "";
    return message;
  }

  return {
    // Takes the next chunk of decoded text; returns the messages it completed, in order.
    push(text) {
      buffer += text;
      const messages = [];
      for (;;) {
        const match = /\r\n|\r|\n/.exec(buffer);
        if (!match) break;
        // A CR at the very end may be the first half of a CRLF split across chunks.
        if (match[0] === "\r" && match.index === buffer.length - 1) break;
        const line = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        const message = processLine(line);
        if (message) messages.push(message);
      }
      return messages;
    },
  };
}

// The non-empty tail filters as a query string.
function tailQuery() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData($("tail-filters"))) {
    const text = String(value).trim();
    if (text) params.set(name, text);
  }
  return params.toString();
}

// Shows the state of the stream next to the filters.
function setTailStatus(text, kind = "") {
  $("tail-status").textContent = text;
  $("tail-status").className = `status ${kind}`;
}

// Stops the stream and any pending reconnect.
function stopTail() {
  clearTimeout(state.tail.timer);
  const controller = state.tail.controller;
  state.tail.controller = null;
  if (controller) controller.abort();
}

// Starts the stream again; `fresh` (new filters) also forgets the rows and the last id.
function restartTail(fresh) {
  stopTail();
  if (fresh) {
    state.tail.lastEventId = "";
    clearTail();
  }
  state.tail.backoff = RECONNECT_MIN_MS;
  connectTail();
}

// Puts the newest stored events that pass the filters (the list endpoint takes the same ones)
// below what the stream brings, so the tail does not open empty. The stream started at the
// store's head before the list was read, so together they miss nothing; an event in both shows
// once.
async function backfillTail() {
  const query = tailQuery();
  const page = await api(`/api/v1/events?limit=${BACKFILL_ROWS}${query ? `&${query}` : ""}`);
  const older = page.events.filter((event) => !state.tail.events.has(event.id));
  for (const event of older) state.tail.events.set(event.id, event);
  const body = $("tail-body");
  for (const event of older) body.append(tailRow(event));
  trimTail();
}

// Opens the stream with fetch, since EventSource cannot send the Authorization header.
async function connectTail() {
  const controller = new AbortController();
  state.tail.controller = controller;
  const fresh = !state.tail.lastEventId;
  const headers = authHeaders({ Accept: "text/event-stream" });
  if (state.tail.lastEventId) headers["Last-Event-ID"] = state.tail.lastEventId;
  const query = tailQuery();
  setTailStatus("connecting…");
  let delay;
  let reason;
  try {
    const response = await fetch(`/api/v1/events/stream${query ? `?${query}` : ""}`, {
      headers,
      cache: "no-store",
      signal: controller.signal,
    });
    if (!response.ok) {
      const err = await problemOf(response);
      if (NO_RETRY_STATUSES.has(response.status)) {
        setTailStatus("stopped", "error");
        reportError(err);
        return;
      }
      throw err;
    }
    setTailStatus("live", "ok");
    state.tail.backoff = RECONNECT_MIN_MS;
    if (fresh) backfillTail().catch(reportError);
    const ending = await readTail(response.body, controller);
    delay = ending === "dropped" ? RECONNECT_MIN_MS : nextBackoff();
    reason = ending === "dropped" ? "dropped by the server" : "stream ended";
  } catch (err) {
    delay = nextBackoff();
    reason = err instanceof ApiError ? err.detail : "connection lost";
  }
  if (state.tail.controller !== controller) return; // stopped or restarted meanwhile
  scheduleReconnect(delay, reason);
}

// Reads the stream to its end; returns "dropped" when the server said we were too slow.
async function readTail(body, controller) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = createSseParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return "ended";
    if (state.tail.controller !== controller) return "stopped";
    for (const message of parser.push(decoder.decode(value, { stream: true }))) {
      if (message.id) state.tail.lastEventId = message.id;
      if (!handleTailMessage(message)) {
        reader.cancel().catch(() => {});
        return "dropped";
      }
    }
  }
}

// Acts on one SSE message; false means the server dropped us and we must reconnect.
function handleTailMessage(message) {
  if (message.event === "event") {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return true; // not JSON: skip it
    }
    receiveEvent(event);
    return true;
  }
  if (message.event === "dropped") {
    let reason = "";
    try {
      reason = JSON.parse(message.data).reason || "";
    } catch {
      reason = message.data;
    }
    showMessage(`The server dropped the live tail${reason ? ` (${reason})` : ""}; reconnecting where it stopped.`, "warn");
    return false;
  }
  return true;
}

// The wait before the next reconnect: 1 s, then doubling up to 10 s.
function nextBackoff() {
  const delay = state.tail.backoff;
  state.tail.backoff = Math.min(delay * 2, RECONNECT_MAX_MS);
  return delay;
}

// Reconnects after `delay`, saying why in the status.
function scheduleReconnect(delay, reason) {
  setTailStatus(`${reason}; reconnecting in ${Math.round(delay / 1000)} s`, "warn");
  clearTimeout(state.tail.timer);
  state.tail.timer = setTimeout(connectTail, delay);
}

// Takes one event from the stream: shown at once, or held while paused.
function receiveEvent(event) {
  if (!event || typeof event.id !== "string" || state.tail.events.has(event.id)) return; // duplicates after a reconnect
  state.tail.events.set(event.id, event);
  if (state.tail.paused) {
    state.tail.pending.push(event);
    if (state.tail.pending.length > MAX_TAIL_ROWS) state.tail.events.delete(state.tail.pending.shift().id);
    updatePendingBadge();
  } else {
    addTailRows([event]);
  }
}

// Puts events (oldest first) at the top of the table and trims it to the newest 500.
function addTailRows(events) {
  const body = $("tail-body");
  for (const event of events) body.prepend(tailRow(event));
  trimTail();
}

// Keeps the newest 500 rows, forgetting the events of the rows dropped.
function trimTail() {
  const body = $("tail-body");
  while (body.rows.length > MAX_TAIL_ROWS) {
    const last = body.rows[body.rows.length - 1];
    state.tail.events.delete(last.dataset.eventId);
    last.remove();
  }
  $("tail-empty").hidden = body.rows.length > 0;
}

// One row of the tail; clicking it opens the event's detail.
function tailRow(event) {
  const open = () => openDetail(event.id);
  return el(
    "tr",
    {
      "data-testid": "tail-row",
      "data-event-id": event.id,
      // EventFlow's own operational events (eventflow.*) are set apart.
      className: ["clickable", event.id === state.detailId ? "selected" : "", event.type.startsWith("eventflow.") ? "operational" : ""].join(" ").trim(),
      tabindex: 0,
      onclick: open,
      onkeydown: (e) => e.key === "Enter" && open(),
    },
    el("td", { className: "mono nowrap", text: formatClock(event.time) }),
    el("td", { text: event.type }),
    el("td", { text: event.source }),
    el("td", { text: event.subject ?? "" }),
    el("td", { className: "mono nowrap", title: event.id, text: shortId(event.id) }),
  );
}

// Empties the tail (new filters).
function clearTail() {
  $("tail-body").replaceChildren();
  state.tail.pending = [];
  state.tail.events.clear();
  $("tail-empty").hidden = false;
  updatePendingBadge();
}

// Pauses or resumes the tail; resuming shows the events held meanwhile.
function togglePause() {
  state.tail.paused = !state.tail.paused;
  $("tail-pause").textContent = state.tail.paused ? "Resume" : "Pause";
  $("tail-pause").classList.toggle("active", state.tail.paused);
  if (!state.tail.paused) {
    const held = state.tail.pending;
    state.tail.pending = [];
    addTailRows(held);
  }
  updatePendingBadge();
}

// Shows how many events wait while the tail is paused.
function updatePendingBadge() {
  const badge = $("tail-pending");
  badge.hidden = !state.tail.paused;
  badge.textContent = `${state.tail.pending.length} new`;
}

/* ---------- event detail ---------- */

// Opens the detail panel of an event shown in the tail.
function openDetail(eventId) {
  const event = state.tail.events.get(eventId);
  if (!event) return;
  state.detailId = eventId;
  for (const row of $("tail-body").rows) row.classList.toggle("selected", row.dataset.eventId === eventId);
  renderAttributes(event);
  $("detail-data").textContent = "data" in event ? JSON.stringify(event.data, null, 2) : event.data_base64 ? `(base64) ${event.data_base64}` : "(no data)";
  $("detail").hidden = false;
  loadEventDeliveries(event);
}

// Closes the detail panel.
function closeDetail() {
  state.detailId = null;
  $("detail").hidden = true;
  for (const row of $("tail-body").rows) row.classList.remove("selected");
}

// Fills the attributes table: envelope attributes, then EventFlow's metadata.
function renderAttributes(event) {
  const rows = [];
  for (const [name, value] of Object.entries(event)) {
    if (name === "data" || name === "data_base64" || name === "metadata") continue;
    rows.push([name, value]);
  }
  for (const [name, value] of Object.entries(event.metadata || {})) rows.push([`metadata.${name}`, value]);
  $("detail-attrs").replaceChildren(
    ...rows.map(([name, value]) => el("tr", {}, el("th", { text: name }), el("td", { className: "mono", text: asText(value) }))),
  );
}

// Shows every attempt to deliver the event, per subscription (the delivery log filtered by
// event id).
async function loadEventDeliveries(event) {
  const box = $("detail-deliveries");
  box.replaceChildren(el("p", { className: "muted", text: "Loading…" }));
  try {
    const subscriptions = await fetchSubscriptions();
    const logs = await Promise.all(
      subscriptions.map(async (subscription) => {
        const path = `/api/v1/subscriptions/${enc(subscription.id)}/deliveries?event_id=${enc(event.id)}&limit=${EVENT_ATTEMPTS_LIMIT}`;
        const page = await api(path);
        return { subscription, attempts: page.attempts };
      }),
    );
    if (state.detailId !== event.id) return;
    const relevant = logs.filter(
      ({ subscription, attempts }) => attempts.length || subscription.event_types.some((p) => patternMatches(p, event.type)),
    );
    box.replaceChildren(...(relevant.length ? relevant.map(deliveryBlock) : [el("p", { className: "muted", text: "No subscription matches this event." })]));
  } catch (err) {
    if (state.detailId === event.id) box.replaceChildren(el("p", { className: "muted", text: `Deliveries unavailable: ${err.detail || err.message}` }));
  }
}

// One subscription's attempts at delivering the event shown.
function deliveryBlock({ subscription, attempts }) {
  const list = attempts.length
    ? el("ul", { className: "attempts" }, attempts.map((a) => el("li", {}, outcomeDot(a), ` #${a.attempt} · ${attemptSummary(a)} · ${formatDateTime(a.attempted_at)}`)))
    : el("p", { className: "muted", text: "No attempt yet." });
  return el("div", { className: "delivery", "data-testid": "event-delivery" }, el("strong", { text: subscription.name }), " ", el("span", { className: "muted", text: subscription.webhook_url }), list);
}

// Status, latency and error of one attempt, as short text.
function attemptSummary(attempt) {
  const parts = [attempt.status_code ? String(attempt.status_code) : "no answer", `${Math.round(attempt.latency_ms)} ms`];
  if (attempt.error) parts.push(attempt.error);
  if (attempt.next_attempt_at) parts.push(`retry at ${formatDateTime(attempt.next_attempt_at)}`);
  return parts.join(" · ");
}

// A coloured dot for an attempt: green for 2xx, red otherwise; details in its tooltip.
function outcomeDot(attempt) {
  const ok = attempt.status_code >= 200 && attempt.status_code < 300 && !attempt.error;
  return el("span", { className: `dot ${ok ? "ok" : "bad"}`, title: `#${attempt.attempt} · ${attemptSummary(attempt)} · ${formatDateTime(attempt.attempted_at)}` });
}

/* ---------- subscriptions ---------- */

// Loads the subscriptions table with each one's recent delivery outcomes.
async function loadSubscriptionsView() {
  try {
    const subscriptions = await fetchSubscriptions();
    const logs = await Promise.all(
      subscriptions.map((s) =>
        api(`/api/v1/subscriptions/${enc(s.id)}/deliveries?limit=${RECENT_DELIVERIES}`).then(
          (page) => page.attempts,
          (err) => err,
        ),
      ),
    );
    $("subs-body").replaceChildren(...subscriptions.map((s, i) => subscriptionRow(s, logs[i])));
    $("subs-empty").hidden = subscriptions.length > 0;
  } catch (err) {
    reportError(err);
  }
}

// One subscription row: URL, types, state, breaker and recent outcomes.
function subscriptionRow(subscription, attempts) {
  const status = subscription.enabled ? "active" : "paused";
  return el(
    "tr",
    { "data-testid": "subscription-row", "data-subscription-id": subscription.id },
    el("td", { text: subscription.name }),
    el("td", { className: "mono url", title: subscription.webhook_url, text: subscription.webhook_url }),
    el("td", { text: subscription.event_types.join(", ") }),
    el("td", {}, el("span", { className: `pill ${status}`, title: subscription.disabled_reason, text: status }), subscription.disabled_reason ? el("div", { className: "muted small", text: subscription.disabled_reason }) : null),
    el("td", {}, breakerBadge(subscription.breaker)),
    el("td", {}, recentOutcomes(attempts)),
  );
}

// The circuit breaker state, when the server reports one.
function breakerBadge(breaker) {
  const value = breaker && typeof breaker === "object" ? breaker.state : breaker;
  if (typeof value !== "string") return el("span", { className: "muted", text: "—" });
  return el("span", { className: `pill breaker-${value}`, text: value.replace("_", "-") });
}

// Dots for the latest attempts (oldest to newest) and the newest one in words.
function recentOutcomes(attempts) {
  if (attempts instanceof Error) return el("span", { className: "muted", text: attempts.detail || attempts.message });
  if (!attempts.length) return el("span", { className: "muted", text: "no deliveries yet" });
  const dots = el("span", { className: "dots" }, [...attempts].reverse().map(outcomeDot));
  return el("div", {}, dots, el("div", { className: "muted small", text: `latest: ${attemptSummary(attempts[0])}` }));
}

/* ---------- new subscription, with the filter playground ---------- */

// The event type patterns typed in the form.
function formEventTypes() {
  return $("sub-types").value.split(",").map((t) => t.trim()).filter(Boolean);
}

// The form's filters: the array typed (one object is taken as an array of one); none when blank.
function formFilters() {
  const text = $("sub-filters").value.trim();
  if (!text) return [];
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`The filters are not JSON: ${err.message}`);
  }
  return Array.isArray(parsed) ? parsed : [parsed];
}

// The CloudEvent a stored event is: its attributes, with EventFlow's metadata as the extensions
// its deliveries carry (partitionkey, priority, correlationid), which filters may name.
function cloudEventOf(stored) {
  const { metadata = {}, ...event } = stored;
  if (metadata.partition_key) event.partitionkey = metadata.partition_key;
  if (metadata.priority) event.priority = metadata.priority;
  if (metadata.correlation_id) event.correlationid = metadata.correlation_id;
  return event;
}

// The stored event to test on: the one whose id is given, else the newest of the first exact type
// (or the newest of all).
async function sampleEvent() {
  const id = $("sub-event").value.trim();
  if (id) return api(`/api/v1/events/${enc(id)}`);
  const params = new URLSearchParams({ limit: "1" });
  const exact = formEventTypes().find((t) => !t.includes("*"));
  if (exact) params.set("event_type", exact);
  const { events } = await api(`/api/v1/events?${params}`);
  if (!events.length) throw new Error("There is no stored event to test on: give an event id, or send an event first.");
  return events[0];
}

// Shows the playground's verdict (pass, fail) or why it could not say (error).
function showTestResult(text, kind) {
  const box = $("sub-test-result");
  box.textContent = text;
  box.className = `col2 test-result ${kind}`;
  box.dataset.outcome = kind;
  box.hidden = false;
}

// Tries the form's event types and filters on a stored event, through /api/v1/filters/evaluate.
async function testSubscriptionFilters() {
  try {
    const stored = await sampleEvent();
    const filters = formFilters();
    const { matches } = await api("/api/v1/filters/evaluate", { method: "POST", body: { filters, event: cloudEventOf(stored) } });
    const types = formEventTypes();
    const typed = types.some((pattern) => patternMatches(pattern, stored.type));
    const what = `Event ${shortId(stored.id)} (${stored.type})`;
    if (matches && typed) showTestResult(`${what} would be delivered: its type is subscribed and it passes every filter.`, "pass");
    else if (!typed) showTestResult(`${what} would not be delivered: its type matches none of ${types.join(", ") || "the (empty) event types"}.`, "fail");
    else showTestResult(`${what} would not be delivered: it fails the filters.`, "fail");
  } catch (err) {
    showTestResult(err instanceof ApiError ? err.detail : err.message, "error");
  }
}

// Creates the subscription the form describes, then shows it in the table.
async function submitSubscription(event) {
  event.preventDefault();
  try {
    const body = {
      name: $("sub-name").value.trim(),
      webhook_url: $("sub-url").value.trim(),
      event_types: formEventTypes(),
      filters: formFilters(),
      content_mode: $("sub-mode").value,
    };
    const created = await api("/api/v1/subscriptions", { method: "POST", body });
    showMessage(`Created subscription ${created.name} (${shortId(created.id)}). Its signing secret, shown once: ${created.secret}`, "success");
    $("sub-form").reset();
    $("sub-test-result").hidden = true;
    await loadSubscriptionsView();
  } catch (err) {
    showTestResult(err instanceof ApiError ? err.detail : err.message, "error");
  }
}

/* ---------- dead letters ---------- */

// Loads the first page of dead letters (reset) or the next one (Load more).
async function loadDeadLetters(reset) {
  const params = new URLSearchParams({ limit: String(DLQ_PAGE) });
  if (!reset && state.dlqCursor) params.set("cursor", state.dlqCursor);
  try {
    if (reset) await fetchSubscriptions().catch(() => {}); // names only; the list works without them
    const page = await api(`/api/v1/dlq?${params}`);
    const rows = page.dead_letters.map(deadLetterRow);
    if (reset) $("dlq-body").replaceChildren(...rows);
    else $("dlq-body").append(...rows);
    state.dlqCursor = page.next_cursor || null;
    $("dlq-more").hidden = !state.dlqCursor;
    $("dlq-empty").hidden = $("dlq-body").rows.length > 0;
  } catch (err) {
    reportError(err);
  }
}

// One dead letter with its Retry and Delete buttons.
function deadLetterRow(letter) {
  const target = letter.kind === "webhook" ? subscriptionLabel(letter.subscription_id) : letter.handler || "handler";
  const retry = el("button", { type: "button", className: "small", "data-testid": "dlq-retry", text: "Retry" });
  const remove = el("button", { type: "button", className: "small danger", "data-testid": "dlq-delete", text: "Delete" });
  retry.addEventListener("click", () => retryDeadLetter(letter, retry));
  remove.addEventListener("click", () => deleteDeadLetter(letter, remove));
  return el(
    "tr",
    { "data-testid": "dlq-row", "data-dead-letter-id": letter.id, "data-event-id": letter.event_id },
    el("td", { className: "nowrap", text: formatDateTime(letter.failed_at) }),
    el("td", { text: letter.kind }),
    el("td", { text: letter.event_type }),
    el("td", { className: "mono nowrap", title: letter.event_id, text: shortId(letter.event_id) }),
    el("td", { title: letter.subscription_id, text: target }),
    el("td", { className: "num", text: letter.attempts }),
    el("td", { className: "num", text: letter.status_code ?? "—" }),
    el("td", { className: "error-text", title: letter.response_body ? `${letter.error}\n\n${letter.response_body}` : letter.error, text: letter.error }),
    el("td", { className: "nowrap" }, retry, " ", remove),
  );
}

// Puts a dead letter back into processing, then refreshes the list.
async function retryDeadLetter(letter, button) {
  button.disabled = true;
  try {
    await api(`/api/v1/dlq/${enc(letter.id)}/retry`, { method: "POST" });
    showMessage(`Retried ${letter.event_type} event ${shortId(letter.event_id)} (dead letter ${shortId(letter.id)}): it is back in processing.`, "success");
    await loadDeadLetters(true);
  } catch (err) {
    button.disabled = false;
    reportError(err);
  }
}

// Deletes a dead letter for good, after asking, then refreshes the list.
async function deleteDeadLetter(letter, button) {
  if (!window.confirm(`Delete the dead letter of ${letter.event_type} event ${letter.event_id}? This cannot be undone.`)) return;
  button.disabled = true;
  try {
    await api(`/api/v1/dlq/${enc(letter.id)}`, { method: "DELETE" });
    showMessage(`Deleted dead letter ${shortId(letter.id)}.`, "success");
    await loadDeadLetters(true);
  } catch (err) {
    button.disabled = false;
    reportError(err);
  }
}

/* ---------- replay ---------- */

// Formats a Date for a datetime-local input (local time, to the second).
function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

// Converts a datetime-local value (local time) to RFC 3339 in UTC, as the API wants.
function toRfc3339(localValue) {
  const date = new Date(localValue);
  if (!localValue || Number.isNaN(date.getTime())) throw new Error(`not a date and time: ${localValue}`);
  return date.toISOString();
}

// Loads what the replay view needs: defaults, the subscription choices and the recent replays.
function loadReplayView() {
  if (!$("replay-start").value) $("replay-start").value = toLocalInput(new Date(Date.now() - 3600e3));
  if (!$("replay-end").value) $("replay-end").value = toLocalInput(new Date(Date.now() + 60e3));
  loadSubscriptionChoices();
  loadReplays();
}

// Fills the subscription select, keeping the current choice.
async function loadSubscriptionChoices() {
  const select = $("replay-subscription");
  const chosen = select.value;
  try {
    const subscriptions = await fetchSubscriptions();
    select.replaceChildren(
      el("option", { value: "", text: "every matching subscription" }),
      ...subscriptions.map((s) => el("option", { value: s.id, text: `${s.name} (${s.event_types.join(", ")})${s.enabled ? "" : " — paused"}` })),
    );
    select.value = subscriptions.some((s) => s.id === chosen) ? chosen : "";
  } catch (err) {
    reportError(err);
  }
}

// Builds the replay request from the form.
function replayRequest() {
  const form = $("replay-form");
  const body = {
    stream: form.elements.stream.value.trim(),
    start_time: toRfc3339(form.elements.start.value),
    end_time: toRfc3339(form.elements.end.value),
    dry_run: form.elements.dry_run.checked,
  };
  const types = form.elements.event_types.value.split(",").map((t) => t.trim()).filter(Boolean);
  if (types.length) body.event_types = types;
  if (form.elements.subscription_id.value) body.subscription_id = form.elements.subscription_id.value;
  return body;
}

// Queues the replay of the form and follows it.
async function submitReplay(event) {
  event.preventDefault();
  try {
    const job = await api("/api/v1/events/replay", { method: "POST", body: replayRequest() });
    hideMessage();
    followReplay(job);
    loadReplays();
  } catch (err) {
    reportError(err);
  }
}

// Shows a replay and polls it every second until it ends.
function followReplay(job) {
  clearTimeout(state.replayTimer);
  state.replayId = job.id;
  state.replayPolls += 1; // a poll of an earlier follow still in flight stops at its next step
  renderReplayJob(job);
  const polls = state.replayPolls;
  if (!FINISHED_REPLAY.has(job.status)) state.replayTimer = setTimeout(() => pollReplay(job.id, polls), REPLAY_POLL_MS);
}

// Fetches the followed replay once; schedules the next poll while it runs and is still followed.
async function pollReplay(id, polls) {
  const followed = () => state.replayId === id && state.replayPolls === polls;
  if (!followed()) return;
  try {
    const job = await api(`/api/v1/replays/${enc(id)}`);
    if (!followed()) return;
    renderReplayJob(job);
    if (FINISHED_REPLAY.has(job.status)) {
      loadReplays();
      return;
    }
  } catch (err) {
    reportError(err);
    if (err.status === 404) return;
  }
  if (followed()) state.replayTimer = setTimeout(() => pollReplay(id, polls), REPLAY_POLL_MS);
}

// Cancels the followed replay.
async function cancelReplay(id) {
  try {
    const job = await api(`/api/v1/replays/${enc(id)}/cancel`, { method: "POST" });
    followReplay(job);
    loadReplays();
  } catch (err) {
    reportError(err);
  }
}

// Shows one replay job: status, counts and, while it runs, a Cancel button.
function renderReplayJob(job) {
  const finished = FINISHED_REPLAY.has(job.status);
  const figure = (label, value, testid) => el("div", { className: "figure" }, el("dt", { text: label }), el("dd", { "data-testid": testid, text: value }));
  let summary;
  if (job.dry_run) summary = `Dry run: ${job.matched} matching event(s) ${finished ? "would be" : "so far would be"} replayed (${job.deliveries} deliveries).`;
  else summary = `${job.replayed} event(s) replayed, ${job.deliveries} deliveries created${finished ? "." : " so far…"}`;
  const cancel = finished ? null : el("button", { type: "button", className: "danger", "data-testid": "replay-cancel", text: "Cancel", onclick: () => cancelReplay(job.id) });
  const parts = [
    el("div", { className: "job-head" }, el("strong", { className: "mono", text: job.id }), " ", el("span", { className: `pill status-${job.status}`, "data-testid": "replay-status", text: job.status }), " ", cancel),
    el("dl", { className: "figures inline" }, figure("Matched", job.matched, "replay-matched"), figure("Replayed", job.replayed, "replay-replayed"), figure("Deliveries", job.deliveries, "replay-deliveries")),
    el("p", { text: summary }),
    job.error ? el("p", { className: "error-text", text: job.error }) : null,
    el("p", { className: "muted small", text: `${job.stream}, ${formatDateTime(job.start_time)} → ${formatDateTime(job.end_time)}${job.event_types.length ? `, types ${job.event_types.join(", ")}` : ""}${job.subscription_id ? `, to ${subscriptionLabel(job.subscription_id)}` : ""}` }),
  ];
  $("replay-job").replaceChildren(...parts.filter(Boolean));
  $("replay-job").hidden = false;
}

// Loads the recent replays; clicking one follows it.
async function loadReplays() {
  try {
    const { replays } = await api("/api/v1/replays?limit=20");
    $("replays-body").replaceChildren(
      ...replays.map((job) =>
        el(
          "tr",
          { className: "clickable", "data-testid": "replay-row", title: "Show this replay", onclick: () => followReplay(job) },
          el("td", { className: "nowrap", text: formatDateTime(job.created_at) }),
          el("td", {}, el("span", { className: `pill status-${job.status}`, text: job.status })),
          el("td", { text: job.stream }),
          el("td", { className: "small", text: `${formatDateTime(job.start_time)} → ${formatDateTime(job.end_time)}` }),
          el("td", { text: job.dry_run ? "yes" : "no" }),
          el("td", { className: "num", text: job.matched }),
          el("td", { className: "num", text: job.replayed }),
          el("td", { className: "num", text: job.deliveries }),
        ),
      ),
    );
  } catch (err) {
    reportError(err);
  }
}

/* ---------- headline figures ---------- */

// Shows the headline figures; null (no stats endpoint, or no answer) shows dashes.
function showFigures(rate, lag, dlq) {
  $("stat-rate").textContent = rate === null ? "—" : rate.toFixed(1);
  $("stat-lag").textContent = lag === null || lag === undefined ? "—" : String(lag);
  $("stat-dlq").textContent = dlq === null || dlq === undefined ? "—" : String(dlq);
}

// Polls /api/v1/stats once; the event rate is the change of the ingest counter over time.
async function pollStats() {
  try {
    const response = await fetch("/api/v1/stats", { headers: authHeaders(), cache: "no-store" });
    if (!response.ok) {
      // 404: an EventFlow without the endpoint. Auth failures are reported by the other views.
      state.previousStats = null;
      showFigures(null, null, null);
      return;
    }
    const stats = await response.json();
    const now = performance.now();
    const total = stats.events_ingested_total;
    const previous = state.previousStats;
    let rate = null;
    if (previous && typeof total === "number" && now > previous.at) rate = Math.max(0, total - previous.total) / ((now - previous.at) / 1000);
    state.previousStats = typeof total === "number" ? { total, at: now } : null;
    showFigures(rate, stats.consumer_lag, stats.dlq_size);
  } catch {
    showFigures(null, null, null);
  }
}

// Keeps polling the figures every 2 s, one request at a time.
async function statsLoop() {
  await pollStats();
  setTimeout(statsLoop, STATS_INTERVAL_MS);
}

/* ---------- start ---------- */

// Wires every control and starts the tail and the figures.
function init() {
  $("key-toggle").addEventListener("click", () => {
    $("key-form").hidden = !$("key-form").hidden;
    if (!$("key-form").hidden) $("key-input").focus();
  });
  $("key-form").addEventListener("submit", onKeySubmit);
  $("key-forget").addEventListener("click", onKeyForget);
  $("message-close").addEventListener("click", hideMessage);
  for (const button of document.querySelectorAll(".sidenav .nav")) button.addEventListener("click", () => showView(button.dataset.view));
  $("tail-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    restartTail(true);
  });
  $("tail-pause").addEventListener("click", togglePause);
  $("tail-pending").addEventListener("click", togglePause);
  $("detail-close").addEventListener("click", closeDetail);
  $("detail-refresh").addEventListener("click", () => state.detailId && openDetail(state.detailId));
  document.addEventListener("keydown", (e) => e.key === "Escape" && !$("detail").hidden && closeDetail());
  $("subs-refresh").addEventListener("click", loadSubscriptionsView);
  $("sub-test").addEventListener("click", testSubscriptionFilters);
  $("sub-form").addEventListener("submit", submitSubscription);
  $("dlq-refresh").addEventListener("click", () => loadDeadLetters(true));
  $("dlq-more").addEventListener("click", () => loadDeadLetters(false));
  $("replay-form").addEventListener("submit", submitReplay);
  $("replays-refresh").addEventListener("click", loadReplays);
  initInsights();
  updateKeyButton();
  const asked = location.hash.slice(1);
  showView(VIEWS.includes(asked) ? asked : "live");
  restartTail(true);
  statsLoop();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
