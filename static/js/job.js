// One job's page: loss and accuracy charts, live state, and the log panel.
//
// Metric points arrive over /ws/jobs/<id>/ — first a backfill from PostgreSQL of everything
// after our cursor, then live events from the (lossy) channel layer. Every point carries
// (attempt, seq), contiguous from 0 within an attempt, so the page can tell when it missed
// some: it reconnects with the last contiguous cursor and the server fills the hole.

import { JobCharts } from "./job-charts.js";
import { LiveSocket, readJson, statusIndicator, tickDurations } from "./live.js";
import { MetricStore } from "./metrics.js";

const config = readJson("job-config");
const TERMINAL = new Set(config.terminal);
const MAX_LOG_LINES = 5000;

// ---- Metrics ---------------------------------------------------------------------------
//
// A long run is loaded as a downsampled series over HTTP (static/js/job-charts.js); the
// socket then sends only the points after that series' cursor, which append to the charts.

const metrics = new MetricStore();
const charts = new JobCharts({
  elements: {
    loss: document.getElementById("chart-loss"),
    accuracy: document.getElementById("chart-accuracy"),
    timeline: document.getElementById("chart-timeline"),
    reset: document.getElementById("charts-reset-zoom"),
  },
  urls: { series: config.seriesUrl, timeline: config.timelineUrl },
  isLive: () => !TERMINAL.has(badge.dataset.state),
});

function onMetrics(points, socket) {
  const fresh = points.filter((p) => metrics.isNew(p));
  const { added, reconnect } = metrics.add(points);
  if (reconnect) socket.reconnect();
  if (added) {
    charts.append(fresh);
    scheduleFigures();
  }
}

const percent = (v) => (v == null ? "—" : `${(v * 100).toFixed(1)}%`);
let figuresTimer = null;
function scheduleFigures() {
  if (figuresTimer) return;
  figuresTimer = setTimeout(() => {
    figuresTimer = null;
    document.getElementById("point-count").textContent = String(metrics.count);
    document.getElementById("final-val-acc").textContent = percent(metrics.finalVal?.accuracy);
    document.getElementById("best-val-acc").textContent = percent(metrics.bestVal);
    document.getElementById("last-train-loss").textContent =
      metrics.lastTrain ? metrics.lastTrain.loss.toPrecision(4) : "—";
    document.getElementById("last-epoch").textContent = metrics.lastEpoch ?? "—";
  }, 60);
}

// ---- State -----------------------------------------------------------------------------

const badge = document.querySelector('[data-testid="job-state"]');
const reasonEl = document.getElementById("job-reason");

function applyState(state, reason) {
  badge.className = `badge lg state-${state}`;
  badge.dataset.state = state;
  badge.textContent = state.charAt(0).toUpperCase() + state.slice(1);
  if (reason !== undefined) {
    reasonEl.textContent = reason || "";
    badge.title = reason || "";
  }
  const cancelForm = document.getElementById("cancel-form");
  if (cancelForm) {
    if (TERMINAL.has(state)) cancelForm.remove();
    else cancelForm.querySelector("button").disabled = state === "cancelling";
  }
  if (TERMINAL.has(state)) {
    const duration = document.getElementById("job-duration");
    if (duration) delete duration.dataset.started;
  }
}

function onState(message) {
  const state = message.state;
  // Events come from several processes and may arrive out of order; a finished job never
  // starts again, so a non-final state after a final one is stale.
  if (TERMINAL.has(badge.dataset.state) && !TERMINAL.has(state)) return;
  applyState(state, message.reason);
  // The summary, the attempts and their placements are rendered by the server: when the job
  // moves on, fetch the page again and swap those parts in, rather than rebuild them here.
  // The fetched page also corrects the badge if events arrived out of order.
  if (state !== rendered.state || (message.attempt ?? null) !== rendered.attempt) {
    rendered.state = state;
    rendered.attempt = message.attempt ?? null;
    refreshSoon();
  }
}

const rendered = { state: config.state, attempt: config.attempt ?? null };
let refreshTimer = null;

function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const part of fresh.querySelectorAll("[data-refresh][id]")) {
        document.getElementById(part.id)?.replaceWith(document.adoptNode(part));
      }
      const freshState = fresh.querySelector('[data-testid="job-state"]')?.dataset.state;
      if (freshState && !(TERMINAL.has(badge.dataset.state) && !TERMINAL.has(freshState))) {
        applyState(freshState, fresh.getElementById("job-reason")?.textContent ?? "");
        rendered.state = freshState;
      }
    } catch {
      // The next state change tries again; the live parts of the page do not depend on it.
    }
  }, 400);
}

// ---- Logs ------------------------------------------------------------------------------

const logEl = document.getElementById("log");
const follow = document.getElementById("log-follow");
const rankSelect = document.getElementById("log-rank");
const searchBox = document.getElementById("log-search");
const download = document.getElementById("log-download");
const truncatedNotice = document.getElementById("log-truncated");
const downloadBase = download.getAttribute("href");
const seenLogs = new Set();
const ranksSeen = new Set();
// The server's log cursor, handed back on reconnect: "<attempt>.<node_rank>.<seq>,...".
let logCursor = null;
let lastLogAttempt = null;

logEl.addEventListener("scroll", () => {
  follow.checked = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 24;
});
follow.addEventListener("change", () => {
  if (follow.checked) logEl.scrollTop = logEl.scrollHeight;
});

function logRow(className, rankText, text, title) {
  const row = document.createElement("div");
  row.className = className;
  const rank = document.createElement("span");
  rank.className = "rank";
  rank.textContent = rankText;
  if (title) rank.title = title;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  row.append(rank, body);
  return row;
}

// The filters only hide rows: live lines keep arriving for every rank, and the download
// link asks the server for the same selection over the whole log.
function logFilter() {
  return { rank: rankSelect.value, q: searchBox.value.trim().toLowerCase() };
}

function shows(row, filter) {
  if (filter.rank !== "" && row.dataset.rank !== filter.rank) return false;
  return !filter.q || row.dataset.text.includes(filter.q);
}

function applyLogFilter() {
  const filter = logFilter();
  for (const row of logEl.querySelectorAll(".log-line[data-text]")) {
    row.hidden = !shows(row, filter);
  }
  const params = new URLSearchParams();
  if (filter.rank !== "") params.set("rank", filter.rank);
  if (filter.q) params.set("q", searchBox.value.trim());
  download.href = params.size ? `${downloadBase}?${params}` : downloadBase;
}
rankSelect.addEventListener("change", applyLogFilter);
searchBox.addEventListener("input", applyLogFilter);

function noteRank(rank) {
  if (rank === null || rank === undefined || ranksSeen.has(rank)) return;
  ranksSeen.add(rank);
  const option = document.createElement("option");
  option.value = String(rank);
  option.textContent = `rank ${rank}`;
  const later = [...rankSelect.options].find((o) => o.value !== "" && Number(o.value) > rank);
  rankSelect.insertBefore(option, later || null);
}

function onLogs(lines, cursor) {
  if (cursor !== undefined) logCursor = cursor;
  const filter = logFilter();
  const fragment = document.createDocumentFragment();
  for (const line of lines) {
    const key = `${line.attempt}.${line.node_rank}.${line.seq}`;
    if (seenLogs.has(key)) continue;
    seenLogs.add(key);
    if (line.attempt !== lastLogAttempt) {
      if (lastLogAttempt !== null) {
        fragment.append(logRow("log-line divider", "──", `attempt ${line.attempt}`, ""));
      }
      lastLogAttempt = line.attempt;
    }
    const stream = ["stderr", "notice"].includes(line.stream) ? line.stream : "stdout";
    if (stream === "notice") truncatedNotice.hidden = false;
    noteRank(line.rank);
    const who = line.rank === null ? `n${line.node_rank}` : `n${line.node_rank} r${line.rank}`;
    const row = logRow(
      `log-line ${stream}`,
      who,
      line.line,
      `node rank ${line.node_rank}, rank ${line.rank ?? "(torchrun)"}, attempt ${line.attempt}, ${stream}`,
    );
    row.dataset.rank = line.rank === null ? "" : String(line.rank);
    row.dataset.text = line.line.toLowerCase();
    row.hidden = !shows(row, filter);
    fragment.append(row);
  }
  if (!fragment.childNodes.length) return;
  document.getElementById("log-empty")?.remove();
  logEl.append(fragment);
  while (logEl.childElementCount > MAX_LOG_LINES) logEl.firstElementChild.remove();
  if (follow.checked) logEl.scrollTop = logEl.scrollHeight;
}

// ---- Wiring ----------------------------------------------------------------------------

async function startLive() {
  try {
    const series = await charts.load();
    metrics.startAt(series.cursor, series.summary);
    scheduleFigures();
  } catch {
    // Without the series the socket backfills every point from the beginning, as before.
  }
  new LiveSocket(config.wsPath, {
    // Without a log cursor the server sends the tail of the log: what a fresh page wants.
    query: () => ({ ...metrics.cursor(), log: logCursor }),
    onStatus: statusIndicator(document.getElementById("live-status")),
    onMessage: (message, socket) => {
      if (message.type === "metrics") onMetrics(message.points || [], socket);
      else if (message.type === "logs") onLogs(message.lines || [], message.cursor);
      else if (message.type === "state") onState(message);
    },
  }).start();
}

startLive();
tickDurations();
