// The dashboard: the cluster now, live over /ws/dashboard/, and its history in two charts.
//
// The page is rendered with the first summary and the default range's series (the same
// figures /api/v1/cluster/summary/ answers); every `summary` message redraws the figures and
// moves the utilisation chart's last point, which is always "now". Other ranges are fetched
// from the API.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { LiveSocket, formatDuration, readJson, statusIndicator } from "./live.js";

const initial = readJson("dashboard-data");
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const $ = (selector, root = document) => root.querySelector(selector);

let summary = initial.summary;
let history = { utilisation: initial.utilisation, queue: initial.queue, hours: initial.hours };
// Every summary this page received, as a utilisation point: the chart's newest stretch, finer
// than the stored samples (one a minute) and moving the moment a job starts or ends.
const LIVE_POINTS = 1800; // an hour of summaries at one every two seconds
const live = [];

function livePoint(s) {
  const t = s.totals;
  return {
    ts: s.at,
    gpus_total: t.gpus,
    gpus_allocated: t.gpus_in_use,
    gpus_used: t.gpus_busy,
    cpu_slots_total: t.cpu_slots,
    cpu_slots_allocated: t.cpu_slots_in_use,
    cpu_slots_used: t.cpu_slots_busy,
  };
}

function remember(s) {
  if (live.length && live[live.length - 1].ts >= s.at) return;
  live.push(livePoint(s));
  if (live.length > LIVE_POINTS) live.shift();
}
remember(summary);

// ---- Figures --------------------------------------------------------------------------

const pct = (part, whole) => (whole ? (100 * part) / whole : null);
const fmtPct = (v) => (v == null ? "—" : `${Math.round(v)}%`);
const fmtWait = (s) => (s == null ? "—" : formatDuration(s));

function el(tag, text, className) {
  const element = document.createElement(tag);
  if (text !== undefined && text !== null) element.textContent = String(text);
  if (className) element.className = className;
  return element;
}

function row(...cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", cell));
  return tr;
}

function emptyRow(columns, text) {
  const td = el("td", text, "muted");
  td.colSpan = columns;
  return row(td);
}

function renderTiles(s) {
  const t = s.totals;
  $('[data-testid="gpus-in-use"]').textContent = `${t.gpus_in_use} / ${t.gpus}`;
  $('[data-role="gpus-busy"]').textContent = t.gpus ? `${t.gpus_busy.toFixed(1)} busy (measured)` : "no GPUs online";
  $('[data-testid="slots-in-use"]').textContent = `${t.cpu_slots_in_use} / ${t.cpu_slots}`;
  $('[data-role="slots-busy"]').textContent = t.cpu_slots ? `${t.cpu_slots_busy.toFixed(1)} busy (measured)` : "no CPU slots online";
  $('[data-testid="queued"]').textContent = String(s.queue.queued);
  $('[data-role="active"]').textContent = `${s.queue.active} scheduled or running`;
  $('[data-testid="wait"]').textContent = `${fmtWait(s.queue.wait_median_s)} · ${fmtWait(s.queue.wait_p95_s)}`;
  $('[data-role="wait-window"]').textContent = `${s.queue.started} started in the last ${s.queue.window_hours} h`;
  const states = s.node_states;
  const total = Object.values(states).reduce((a, b) => a + b, 0);
  $('[data-testid="nodes-online"]').textContent = `${states.online} / ${total}`;
  const out = total - states.online;
  $('[data-role="nodes-out"]').textContent = out ? `${out} draining, cordoned, unhealthy or offline` : "all in service";
  $("#tiles").dataset.state = "ready";
}

function renderPools(s) {
  const body = $("#pools tbody");
  if (!s.pools.length) {
    body.replaceChildren(emptyRow(4, "No node has reported yet."));
    return;
  }
  body.replaceChildren(
    ...s.pools.map((p) => {
      const tr = row(p.name, p.nodes, `${p.gpus_in_use} / ${p.gpus}`, `${p.cpu_slots_in_use} / ${p.cpu_slots}`);
      for (const td of [...tr.children].slice(1)) td.className = "num";
      tr.dataset.pool = p.name;
      return tr;
    }),
  );
}

function renderMine(s) {
  const body = $("#my-jobs tbody");
  if (!s.mine.length) {
    const td = el("td", "", "muted");
    td.colSpan = 3;
    td.append("No queued or running jobs. ");
    const link = el("a", "Submit one");
    link.href = "/jobs/new/";
    td.append(link, ".");
    body.replaceChildren(row(td));
    return;
  }
  body.replaceChildren(
    ...s.mine.map((job) => {
      const name = el("td");
      const link = el("a", job.name || `#${job.id}`, "primary");
      link.href = job.url;
      name.append(link);
      const state = el("td");
      const badge = el("span", job.state.charAt(0).toUpperCase() + job.state.slice(1), `badge state-${job.state}`);
      state.append(badge);
      const progress = el("td");
      if (job.epoch && job.epochs) {
        const bar = el("div", "", "bar");
        const fill = el("span");
        fill.style.width = `${Math.min(100, (100 * job.epoch) / job.epochs)}%`;
        bar.append(fill);
        progress.append(bar, el("span", `epoch ${job.epoch} of ${job.epochs}${job.eta_s != null ? ` · ETA ${formatDuration(job.eta_s)}` : ""}`, "sub"));
      } else {
        progress.append(el("span", job.state === "queued" ? "waiting" : "starting", "muted"));
      }
      const tr = row(name, state, progress);
      tr.dataset.jobId = job.id;
      return tr;
    }),
  );
}

function renderNodes(s) {
  const chips = Object.entries(s.node_states).map(([status, count]) => {
    const chip = el("span", `${count} ${status}`, `badge state-${status === "online" ? "running" : status === "offline" ? "cancelled" : status === "draining" ? "draining" : "failed"}`);
    chip.dataset.status = status;
    return chip;
  });
  $("#node-states").replaceChildren(...chips);
  const list = $("#nodes-attention");
  if (list) {
    list.replaceChildren(
      ...s.nodes_attention.map((node) => {
        const li = el("li");
        const link = el("a", node.name);
        link.href = `/cluster/nodes/#node-${encodeURIComponent(node.name)}`;
        li.append(link, ` ${node.status} · pool ${node.pool}`);
        return li;
      }),
    );
  }
}

function renderTop(s) {
  const panel = $("#top-panel");
  panel.hidden = !s.names_shown;
  if (!s.names_shown) return;
  for (const [id, rows] of [["#top-users", s.top_users], ["#top-teams", s.top_teams]]) {
    const body = $(`${id} tbody`);
    body.replaceChildren(
      ...(rows?.length
        ? rows.map((r) => {
            const tr = row(r.name, r.gpu_hours.toFixed(1), r.slot_hours.toFixed(1));
            tr.children[1].className = "num";
            tr.children[2].className = "num";
            return tr;
          })
        : [emptyRow(3, "No use this week.")]),
    );
  }
}

// ---- Charts ---------------------------------------------------------------------------

const charts = { util: null, queue: null };
const chartEl = { util: $("#chart-util"), queue: $("#chart-queue") };

function lineSeries(label, color, { dash, fmt = fmtPct, scale = "%" } = {}) {
  // Points show where the line is sparse (uPlot's default), so a lone "now" is visible.
  return { label, stroke: color, width: 2, dash, scale, spanGaps: true, value: (_, v) => fmt(v) };
}

function axes(yLabel, yFmt) {
  const grid = { stroke: css("--chart-grid"), width: 1 };
  const axis = { stroke: css("--chart-axis"), grid, ticks: { stroke: css("--chart-grid") } };
  return [{ ...axis }, { ...axis, label: yLabel, labelSize: 16, size: 50, values: (_, ticks) => ticks.map(yFmt) }];
}

// The stored samples, then the summaries this page saw: the last point is always "now".
function utilData() {
  const since = live.length ? live[0].ts : Infinity;
  const points = [...history.utilisation.filter((p) => p.ts < since), ...live];
  return [
    points.map((p) => p.ts),
    points.map((p) => pct(p.cpu_slots_allocated, p.cpu_slots_total)),
    points.map((p) => pct(p.cpu_slots_used, p.cpu_slots_total)),
    points.map((p) => pct(p.gpus_allocated, p.gpus_total)),
    points.map((p) => pct(p.gpus_used, p.gpus_total)),
  ];
}

function queueData() {
  const points = history.queue;
  return [
    points.map((p) => p.ts),
    points.map((p) => p.queued_max),
    points.map((p) => (p.wait_median_s == null ? null : p.wait_median_s / 60)),
    points.map((p) => (p.wait_p95_s == null ? null : p.wait_p95_s / 60)),
  ];
}

// The x axis spans the chosen range up to now, however few points there are.
function rangeX() {
  const now = Math.max(Date.now() / 1000, summary.at);
  return [now - history.hours * 3600, now];
}

function utilOptions(width) {
  return {
    width,
    height: 240,
    scales: { x: { time: true, range: rangeX }, "%": { range: [0, 100] } },
    axes: axes("% of capacity", (v) => `${v}%`).map((a, i) => (i === 1 ? { ...a, scale: "%" } : a)),
    series: [
      { label: "time" },
      lineSeries("CPU slots allocated", css("--chart-train")),
      lineSeries("CPU slots used", css("--chart-train"), { dash: [6, 3] }),
      lineSeries("GPUs allocated", css("--chart-val")),
      lineSeries("GPUs used", css("--chart-val"), { dash: [6, 3] }),
    ],
  };
}

function queueOptions(width) {
  const grid = { stroke: css("--chart-grid"), width: 1 };
  const axis = { stroke: css("--chart-axis"), grid, ticks: { stroke: css("--chart-grid") } };
  const minutes = (v) => (v == null ? "—" : `${v.toFixed(1)} min`);
  const jobs = (v) => (v == null ? "—" : `${Math.round(v)} jobs`);
  return {
    width,
    height: 200,
    scales: { x: { time: true, range: rangeX }, jobs: { auto: true, range: (_, min, max) => [0, Math.max(1, max)] }, min: { auto: true, range: (_, min, max) => [0, Math.max(1, max)] } },
    axes: [
      { ...axis },
      { ...axis, scale: "jobs", label: "queued jobs", labelSize: 16, size: 50 },
      { ...axis, scale: "min", side: 1, grid: { show: false }, label: "wait (min)", labelSize: 16, size: 50 },
    ],
    series: [
      { label: "time" },
      lineSeries("queued (most)", css("--chart-train"), { scale: "jobs", fmt: jobs }),
      lineSeries("wait median", css("--chart-val"), { scale: "min", fmt: minutes }),
      lineSeries("wait p95", css("--chart-val"), { scale: "min", fmt: minutes, dash: [6, 3] }),
    ],
  };
}

function drawChart(kind, data, options, emptyText) {
  const element = chartEl[kind];
  const empty = element.querySelector('[data-role="empty"]');
  const hasValues = data.slice(1).some((series) => series.some((v) => v != null));
  if (empty) {
    empty.hidden = hasValues;
    empty.textContent = emptyText;
  }
  if (!charts[kind]) {
    charts[kind] = new uPlot(options(element.clientWidth || 600), data, element);
  } else {
    charts[kind].setData(data);
  }
}

function renderUtil() {
  const data = utilData();
  drawChart("util", data, utilOptions, "No capacity online in this range.");
  const t = summary.totals;
  const now = pct(t.cpu_slots_in_use, t.cpu_slots);
  // What the chart's last point says, for a reader (and a test) without hovering.
  chartEl.util.dataset.nowSlotsAllocated = now == null ? "" : String(Math.round(now));
  chartEl.util.dataset.points = String(data[0].length);
  const parts = [`Now: ${t.cpu_slots_in_use} of ${t.cpu_slots} CPU slots allocated (${fmtPct(now)})`];
  if (t.gpus) parts.push(`${t.gpus_in_use} of ${t.gpus} GPUs (${fmtPct(pct(t.gpus_in_use, t.gpus))})`);
  $('[data-testid="util-now"]').textContent = parts.join(", ");
}

function renderQueue() {
  drawChart("queue", queueData(), queueOptions, "No samples or started jobs in this range yet.");
}

new ResizeObserver(() => {
  for (const kind of Object.keys(charts)) {
    charts[kind]?.setSize({ width: chartEl[kind].clientWidth, height: kind === "util" ? 240 : 200 });
  }
}).observe(chartEl.util);

async function loadRange(hours) {
  for (const button of document.querySelectorAll("[data-hours]")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.hours) === hours));
  }
  for (const element of Object.values(chartEl)) element.setAttribute("aria-busy", "true");
  try {
    const [util, queue] = await Promise.all(
      ["utilisation", "queue"].map(async (name) => {
        const response = await fetch(`/api/v1/cluster/${name}/?hours=${hours}`, { credentials: "same-origin" });
        if (!response.ok) throw new Error(`${response.status}`);
        return (await response.json()).points;
      }),
    );
    history = { utilisation: util, queue, hours };
    renderUtil();
    renderQueue();
    loadTimeline();
  } catch (error) {
    for (const element of Object.values(chartEl)) {
      const empty = element.querySelector('[data-role="empty"]');
      if (empty) {
        empty.hidden = false;
        empty.textContent = `Could not load this range (${error.message}); try again.`;
      }
    }
  } finally {
    for (const element of Object.values(chartEl)) element.removeAttribute("aria-busy");
  }
}

for (const button of document.querySelectorAll("[data-hours]")) {
  button.addEventListener("click", () => loadRange(Number(button.dataset.hours)));
}

// ---- Job runs by node (admins) ----------------------------------------------------------

const timelineEl = $("#timeline");
const SVG = "http://www.w3.org/2000/svg";
const ROW = 18;
const LABEL = 120;
const MAX_ROWS = 60;

function svg(tag, attrs = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function drawTimeline(nodes, hours) {
  const now = Date.now() / 1000;
  const since = now - hours * 3600;
  if (!nodes.length) {
    timelineEl.replaceChildren(el("p", "No job held a node in this range.", "muted"));
    return;
  }
  const shown = nodes.slice(0, MAX_ROWS);
  const width = Math.max(320, timelineEl.clientWidth || 600);
  const span = width - LABEL - 8;
  const x = (ts) => LABEL + Math.max(0, Math.min(1, (ts - since) / (now - since))) * span;
  const height = shown.length * ROW + 22;
  const chart = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Job runs per node" });
  shown.forEach((row, i) => {
    const y = i * ROW;
    chart.append(svg("text", { x: 0, y: y + 13, class: "tl-label" }, row.node));
    chart.append(svg("line", { x1: LABEL, x2: LABEL + span, y1: y + ROW - 1, y2: y + ROW - 1, class: "tl-grid" }));
    for (const run of row.runs) {
      const left = x(run.start);
      const right = x(run.end ?? now);
      const bar = svg("rect", { x: left, y: y + 3, width: Math.max(2, right - left), height: ROW - 6, rx: 2, class: `tl-run state-${run.state}` });
      const until = run.end ? new Date(run.end * 1000).toLocaleString() : "now";
      bar.append(svg("title", {}, `${run.name} (#${run.job}) by ${run.owner}, ${run.state}: ${new Date(run.start * 1000).toLocaleString()} to ${until}`));
      chart.append(bar);
    }
  });
  for (let t = 0; t <= 4; t += 1) {
    const ts = since + ((now - since) * t) / 4;
    const label = hours > 48 ? new Date(ts * 1000).toLocaleDateString() : new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    chart.append(svg("text", { x: x(ts), y: height - 6, class: "tl-axis", "text-anchor": t === 0 ? "start" : t === 4 ? "end" : "middle" }, label));
  }
  const parts = [chart];
  if (nodes.length > shown.length) parts.push(el("p", `and ${nodes.length - shown.length} more nodes; narrow the range to see them.`, "muted"));
  timelineEl.replaceChildren(...parts);
  timelineEl.dataset.nodes = String(nodes.length);
}

async function loadTimeline() {
  if (!timelineEl) return;
  try {
    const response = await fetch(`/api/v1/cluster/timeline/?hours=${history.hours}`, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`${response.status}`);
    const body = await response.json();
    drawTimeline(body.nodes, body.hours);
  } catch (error) {
    timelineEl.replaceChildren(el("p", `Could not load the job runs (${error.message}).`, "muted"));
  }
}

// ---- Live -----------------------------------------------------------------------------

function render() {
  renderTiles(summary);
  renderPools(summary);
  renderMine(summary);
  renderNodes(summary);
  renderTop(summary);
  renderUtil();
}

render();
renderQueue();
loadTimeline();
// Runs start and end with the summaries' figures; redrawing every summary would fetch every
// run as often as heartbeats arrive, so the timeline follows at its own, slower pace.
if (timelineEl) setInterval(loadTimeline, 15000);

new LiveSocket("/ws/dashboard/", {
  onStatus: statusIndicator(document.getElementById("live-status")),
  onMessage: (message) => {
    if (message.type !== "summary") return;
    summary = message.summary;
    remember(summary);
    render();
  },
}).start();
