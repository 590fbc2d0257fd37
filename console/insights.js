/* EventFlow console: the Overview and Event types pages. Their figures come from
 * GET /api/v1/stats/timeseries (counts kept as events and deliveries happen) and the event types
 * API; charts are drawn by uPlot (console/vendor). Loaded before app.js, whose helpers ($, el,
 * api, enc, state, …) these functions call when a view opens; nothing here runs on load. */

"use strict";

const INSIGHTS_REFRESH_MS = 10000;
const MINUTE_MS = 60 * 1000;
const HOUR_MS = 60 * MINUTE_MS;
const LATENCY_SAMPLE = 100;
const PALETTE = ["#2457c5", "#1f8a4c", "#a86300", "#7b3fb5", "#c53030", "#0f7c8a", "#6b7a12", "#b5487b", "#4d5b73", "#d06d1d"];

const insights = {
  charts: new Map(), // container id -> { plot, signature }
  refreshTimer: null,
  types: [],
  selectedType: null,
};

/* ---------- series ---------- */

// Bucket starts (in seconds, as uPlot wants) from `since` to now, `width` ms apart.
function bucketTimes(sinceMs, widthMs) {
  const times = [];
  const first = Math.floor(sinceMs / widthMs) * widthMs;
  for (let t = first; t <= Date.now(); t += widthMs) times.push(t / 1000);
  return times;
}

// The API's series (buckets with nothing counted left out) aligned on `times`, zeros filled in.
function aligned(timeseries, times) {
  const index = new Map(times.map((t, i) => [t, i]));
  return timeseries.series.map(({ key, points }) => {
    const values = new Array(times.length).fill(0);
    for (const { time, count } of points) {
      const at = index.get(Date.parse(time) / 1000);
      if (at !== undefined) values[at] = count;
    }
    return { key, values };
  });
}

// Running sums, top series first, so that each filled band sits on the ones below it.
function stacked(rows) {
  const sums = [];
  let below = null;
  for (const row of rows) {
    const sum = below ? row.values.map((v, i) => v + below[i]) : row.values.slice();
    sums.push({ key: row.key, values: sum, own: row.values });
    below = sum;
  }
  return sums.reverse();
}

// A timeseries query, from `since` (a span such as 60m) at `interval`.
function fetchSeries(metric, interval, since) {
  return api(`/api/v1/stats/timeseries?metric=${enc(metric)}&interval=${enc(interval)}&since=${enc(since)}`);
}

/* ---------- charts ---------- */

// Draws (or redraws) a chart in `containerId` over the window [from, to] (seconds); a new set of
// series makes a new plot. Counts start at zero.
function drawChart(containerId, series, data, { from, to, height = 240, width, axes = true } = {}) {
  const container = $(containerId);
  const signature = series.map((s) => s.label).join("\u0000");
  const known = insights.charts.get(containerId);
  // A table re-rendered since has new containers: their plots are new too.
  if (known && known.signature === signature && container.contains(known.plot.root)) {
    known.plot.setScale("x", { min: from, max: to });
    known.plot.setData(data, false);
    known.plot.redraw();
    return;
  }
  if (known) known.plot.destroy();
  container.replaceChildren();
  const options = {
    width: width || Math.max(240, container.clientWidth || 520),
    height,
    series: [{}, ...series],
    // Many series: names only, so that the legend stays a few lines; values show on hover.
    legend: { show: axes, live: series.length <= 6 },
    cursor: { show: axes },
    axes: axes ? [{}, { size: 48 }] : [{ show: false }, { show: false }],
    scales: {
      x: { time: true, auto: false, range: () => [from, to] },
      // A sparkline keeps a margin below zero, so that a quiet day still shows its line.
      y: { range: (u, min, max) => [axes ? 0 : -0.15 * Math.max(1, max), Math.max(1, max) * 1.05] },
    },
  };
  const plot = new uPlot(options, data, container);
  insights.charts.set(containerId, { plot, signature });
}

// Shows a chart's "nothing yet" line instead of an empty plot.
function noData(containerId, text) {
  const known = insights.charts.get(containerId);
  if (known) known.plot.destroy();
  insights.charts.delete(containerId);
  $(containerId).replaceChildren(el("p", { className: "empty", text }));
}

function color(n) {
  return PALETTE[n % PALETTE.length];
}

/* ---------- overview ---------- */

// Loads the overview, then again every 10 s while it is open.
async function loadOverview() {
  clearTimeout(insights.refreshTimer);
  try {
    await renderOverview();
    $("overview-status").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $("overview-status").textContent = "";
    reportError(err);
  }
  if (state.view === "overview") insights.refreshTimer = setTimeout(loadOverview, INSIGHTS_REFRESH_MS);
}

async function renderOverview() {
  const since = Date.now() - HOUR_MS;
  const [events, delivered, failed, dlq] = await Promise.all([
    fetchSeries("events", "1m", "60m"),
    fetchSeries("deliveries", "1m", "60m"),
    fetchSeries("delivery_failures", "1m", "60m"),
    fetchSeries("dlq_size", "1m", "60m"),
    fetchSubscriptions(),
  ]);
  const times = bucketTimes(since, MINUTE_MS);
  const lastHour = { from: times[0], to: Date.now() / 1000 };

  const byType = stacked(aligned(events, times));
  if (byType.length) {
    const series = byType.map((row, n) => ({
      label: row.key,
      stroke: color(byType.length - 1 - n),
      fill: `${color(byType.length - 1 - n)}33`,
      value: (u, v, seriesIndex, index) => (index === null || index === undefined ? "" : String(row.own[index])),
    }));
    drawChart("chart-events", series, [times, ...byType.map((row) => row.values)], lastHour);
  } else noData("chart-events", "No events in the last hour.");

  const lines = [];
  aligned(delivered, times).forEach((row, n) => lines.push({ label: `${subscriptionLabel(row.key)} ✓`, stroke: color(n), values: row.values, key: row.key }));
  aligned(failed, times).forEach((row) => {
    const n = Math.max(0, lines.findIndex((l) => l.key === row.key));
    lines.push({ label: `${subscriptionLabel(row.key)} ✗`, stroke: color(n), dash: [6, 4], values: row.values, key: row.key });
  });
  if (lines.length) {
    drawChart("chart-deliveries", lines.map(({ label, stroke, dash }) => ({ label, stroke, dash })), [times, ...lines.map((l) => l.values)], lastHour);
  } else noData("chart-deliveries", "No deliveries in the last hour.");

  const samples = (dlq.series[0] || { points: [] }).points;
  if (samples.length) {
    // A gauge, sampled every minute: only the minutes that have a sample are drawn.
    const xs = samples.map((p) => Date.parse(p.time) / 1000).filter((t) => t >= times[0]);
    const ys = samples.slice(samples.length - xs.length).map((p) => p.count);
    const stepped = uPlot.paths.stepped({ align: 1 });
    drawChart("chart-dlq", [{ label: "dead letters", stroke: PALETTE[4], fill: `${PALETTE[4]}22`, paths: stepped, points: { show: xs.length < 3 } }], [xs, ys], lastHour);
  } else noData("chart-dlq", "No sample yet: a worker samples the queue every minute.");

  await renderSubscriptionFigures(delivered, failed);
}

// One row per subscription: its last hour's counts and the p95 latency of its latest attempts.
async function renderSubscriptionFigures(delivered, failed) {
  const total = (timeseries, id) => {
    const found = timeseries.series.find((s) => s.key === id);
    return found ? found.points.reduce((sum, p) => sum + p.count, 0) : 0;
  };
  const rows = await Promise.all(
    state.subscriptions.map(async (subscription) => {
      const log = await api(`/api/v1/subscriptions/${enc(subscription.id)}/deliveries?limit=${LATENCY_SAMPLE}`);
      const latencies = log.attempts.map((a) => a.latency_ms).filter((ms) => typeof ms === "number").sort((a, b) => a - b);
      const p95 = latencies.length ? latencies[Math.min(latencies.length - 1, Math.ceil(latencies.length * 0.95) - 1)] : null;
      return el(
        "tr",
        {},
        el("td", { text: subscription.name }),
        el("td", { text: total(delivered, subscription.id) }),
        el("td", { text: total(failed, subscription.id) }),
        el("td", { text: p95 === null ? "—" : `${p95.toFixed(1)} ms`, title: `over its last ${latencies.length} attempts` }),
      );
    }),
  );
  $("overview-subs").replaceChildren(...rows);
}

/* ---------- event types ---------- */

// Lists the registered types with their activity; a sparkline each, of the last 24 hours.
async function loadEventTypes() {
  try {
    const [list, hourly] = await Promise.all([api("/api/v1/event-types"), fetchSeries("events", "1h", "24h"), fetchSubscriptions()]);
    insights.types = list.event_types;
    const times = bucketTimes(Date.now() - 24 * HOUR_MS, HOUR_MS);
    const spark = new Map(aligned(hourly, times).map((row) => [row.key, row.values]));
    $("types-empty").hidden = insights.types.length > 0;
    const rows = insights.types.map((type) => typeRow(type));
    $("types-body").replaceChildren(...rows);
    for (const type of insights.types) {
      const id = sparkId(type.type);
      drawChart(id, [{ label: type.type, stroke: PALETTE[0], fill: `${PALETTE[0]}22` }], [times, spark.get(type.type) || times.map(() => 0)], {
        from: times[0],
        to: times[times.length - 1],
        height: 28,
        width: 120,
        axes: false,
      });
    }
    if (insights.selectedType) openType(insights.selectedType);
  } catch (err) {
    reportError(err);
  }
}

function sparkId(name) {
  return `spark-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

function typeRow(type) {
  const row = el(
    "tr",
    { className: type.type === insights.selectedType ? "clickable selected" : "clickable", "data-type": type.type, onclick: () => openType(type.type) },
    el("td", {}, el("span", { className: "mono", text: type.type }), type.deprecated ? el("span", { className: "badge warn", text: "deprecated" }) : null),
    el("td", { text: `v${type.version}` }),
    el("td", { className: "nowrap" }, el("span", { id: sparkId(type.type), className: "sparkline" }), String(type.events_last_24h)),
    el("td", { text: type.events_last_hour }),
    el("td", { className: type.invalid_last_24h ? "bad" : "", text: type.invalid_last_24h }),
    el("td", { text: type.subscriptions.map(subscriptionLabel).join(", ") || "—" }),
  );
  return row;
}

// Shows one type: its versions, an example, and its schema in the editor.
function openType(name) {
  const type = insights.types.find((t) => t.type === name);
  if (!type) return;
  insights.selectedType = name;
  for (const row of $("types-body").children) row.classList.toggle("selected", row.dataset.type === name);
  $("type-detail").hidden = false;
  $("type-name").textContent = name;
  $("type-description").textContent = type.description || "";
  const versions = [];
  for (let v = type.version; v >= 1; v -= 1) versions.push(el("option", { value: v, text: v === type.version ? `v${v} (latest)` : `v${v}` }));
  $("type-version").replaceChildren(...versions);
  $("type-example").textContent = type.examples.length ? JSON.stringify(type.examples[0], null, 2) : "(none)";
  $("type-schema").value = JSON.stringify(type.schema, null, 2);
  $("type-result").hidden = true;
}

// Loads an older version's schema into the editor (saving it makes it the latest again).
async function showTypeVersion() {
  const name = insights.selectedType;
  try {
    const version = await api(`/api/v1/event-types/${enc(name)}/versions/${enc($("type-version").value)}`);
    $("type-schema").value = JSON.stringify(version.schema, null, 2);
  } catch (err) {
    reportError(err);
  }
}

function typeResult(text, kind) {
  $("type-result").textContent = text;
  $("type-result").className = `test-result ${kind}`;
  $("type-result").hidden = false;
}

// The declaration the editor holds, or null (with the reason shown) when it is not JSON.
function editedDeclaration() {
  const type = insights.types.find((t) => t.type === insights.selectedType);
  let schema;
  try {
    schema = JSON.parse($("type-schema").value);
  } catch (err) {
    typeResult(`Not JSON: ${err.message}`, "error");
    return null;
  }
  return { description: type.description || undefined, schema, examples: type.examples, deprecated: type.deprecated };
}

// Checks the edited schema with a dry run: valid JSON Schema, and the examples still pass.
async function checkTypeSchema() {
  const declaration = editedDeclaration();
  if (!declaration) return false;
  try {
    const planned = await api(`/api/v1/event-types/${enc(insights.selectedType)}?dry_run=true`, { method: "PUT", body: declaration });
    const current = insights.types.find((t) => t.type === insights.selectedType);
    typeResult(planned.version === current.version ? "Valid, and unchanged." : `Valid: saving makes version ${planned.version}.`, "pass");
    return true;
  } catch (err) {
    typeResult(err instanceof ApiError ? err.detail : String(err), "fail");
    return false;
  }
}

// Saves the edited schema once it checks out.
async function saveTypeSchema() {
  if (!(await checkTypeSchema())) return;
  try {
    const saved = await api(`/api/v1/event-types/${enc(insights.selectedType)}`, { method: "PUT", body: editedDeclaration() });
    showMessage(`${saved.type} saved at version ${saved.version}.`, "success");
    await loadEventTypes();
  } catch (err) {
    reportError(err);
  }
}

// Wires the event types page's controls (called by app.js's init).
function initInsights() {
  $("types-refresh").addEventListener("click", loadEventTypes);
  $("type-close").addEventListener("click", () => {
    $("type-detail").hidden = true;
    insights.selectedType = null;
    for (const row of $("types-body").children) row.classList.remove("selected");
  });
  $("type-version").addEventListener("change", showTypeVersion);
  $("type-check").addEventListener("click", checkTypeSchema);
  $("type-save").addEventListener("click", saveTypeSchema);
}
