// The nodes page: each card follows its node's heartbeats over /ws/nodes/, and keeps a short
// CPU history of its own for the sparkline (the server keeps only the latest heartbeat).

import { LiveSocket, statusIndicator } from "./live.js";

const HISTORY = 90; // samples; about three minutes at one heartbeat every two seconds
const history = new Map(); // node name -> [cpu percent]
const lastSeen = new Map(); // node name -> ms since epoch
let reloadTimer = null;

function formatBytes(bytes) {
  // The same units as Django's filesizeformat, which renders the first paint.
  if (bytes == null) return "—";
  const units = ["bytes", "KB", "MB", "GB", "TB", "PB"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value}\u00a0bytes` : `${value.toFixed(1)}\u00a0${units[unit]}`;
}

const pct = (used, total) => (total ? Math.min(100, (100 * used) / total) : null);

function setBar(bar, percent, warnAt = 75, hotAt = 90) {
  if (!bar) return;
  bar.firstElementChild.style.width = `${percent ?? 0}%`;
  bar.classList.toggle("warn", percent != null && percent >= warnAt && percent < hotAt);
  bar.classList.toggle("hot", percent != null && percent >= hotAt);
}

function drawSpark(svg, samples) {
  if (!svg || !samples.length) return;
  // Newest sample at the right edge; the line grows leftwards as history accumulates.
  const step = 100 / (HISTORY - 1);
  const start = 100 - (samples.length - 1) * step;
  const points = samples.map((v, i) => {
    const y = 30 - (Math.max(0, Math.min(100, v)) / 100) * 28 - 1;
    return `${(start + i * step).toFixed(2)},${y.toFixed(2)}`;
  });
  if (points.length === 1) points.unshift(`${(start - step).toFixed(2)},${points[0].split(",")[1]}`);
  svg.querySelector("polyline").setAttribute("points", points.join(" "));
  svg.querySelector("polygon").setAttribute("points", `${points[0].split(",")[0]},30 ${points.join(" ")} 100,30`);
}

function el(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

function metricRow(label, percent, value) {
  const row = el("div", "metric-row");
  const bar = el("div", "bar");
  bar.append(el("span"));
  row.append(el("span", "label", label), bar, el("span", "value", value));
  setBar(bar, percent);
  return row;
}

function renderGpus(container, gpus) {
  container.hidden = !gpus.length;
  const title = container.querySelector(".gpus-title");
  container.replaceChildren(...(title ? [title] : []));
  for (const gpu of gpus) {
    const box = el("div", "gpu");
    const head = el("div", "gpu-head");
    const env = [];
    if (gpu.temperature != null) env.push(`${Math.round(gpu.temperature)} °C`);
    if (gpu.power != null) env.push(`${Math.round(gpu.power)} W`);
    head.append(el("strong", "", `#${gpu.index} ${gpu.name}`), el("span", "gpu-env", env.join(" · ")));
    box.append(
      head,
      metricRow("Util", gpu.utilization, `${Math.round(gpu.utilization ?? 0)}%`),
      metricRow(
        "Memory",
        pct(gpu.memory_used, gpu.memory_total),
        `${formatBytes(gpu.memory_used)} / ${formatBytes(gpu.memory_total)}`,
      ),
    );
    container.append(box);
  }
}

function setDrainButton(card, draining) {
  const form = card.querySelector("form");
  if (!form) return;
  form.querySelector('input[name="draining"]').value = draining ? "false" : "true";
  const button = form.querySelector("button");
  button.textContent = draining ? "Undrain" : "Drain";
  button.className = draining ? "btn btn-sm" : "btn btn-sm btn-warn";
  button.dataset.testid = draining ? "undrain-node" : "drain-node";
}

function onHealth(message) {
  const name = String(message.node);
  const card = document.querySelector(`[data-node-name="${CSS.escape(name)}"]`);
  if (!card) {
    // A node we have not drawn yet joined: one reload draws it.
    reloadTimer ??= setTimeout(() => window.location.reload(), 1500);
    return;
  }
  if (message.status && message.status !== card.dataset.status) {
    // Cordoned, unhealthy or back: the server draws the reasons and the buttons.
    reloadTimer ??= setTimeout(() => window.location.reload(), 500);
    return;
  }
  const key = card.dataset.nodeName;
  const state = message.state || "online";
  const stateBadge = card.querySelector('[data-role="state"]');
  stateBadge.className = `badge state-${state}`;
  stateBadge.textContent = state.charAt(0).toUpperCase() + state.slice(1);
  card.classList.toggle("is-offline", state === "offline");
  card.querySelector('[data-role="draining"]').hidden = !message.is_draining;
  setDrainButton(card, Boolean(message.is_draining));

  const health = message.health;
  if (!health) return;
  lastSeen.set(key, health.ts ? health.ts * 1000 : Date.now());

  const cpu = health.cpu_percent;
  card.querySelector('[data-role="cpu"]').textContent = cpu == null ? "—" : `${Math.round(cpu)}%`;
  if (cpu != null) {
    const samples = history.get(key) || [];
    samples.push(cpu);
    if (samples.length > HISTORY) samples.shift();
    history.set(key, samples);
    drawSpark(card.querySelector('[data-role="spark"]'), samples);
  }

  const memory = pct(health.memory_used, health.memory_total);
  setBar(card.querySelector('[data-role="memory-bar"]'), memory);
  card.querySelector('[data-role="memory"]').textContent =
    `${formatBytes(health.memory_used)} / ${formatBytes(health.memory_total)}`;
  const disk = pct(health.disk_used, health.disk_total);
  setBar(card.querySelector('[data-role="disk-bar"]'), disk);
  card.querySelector('[data-role="disk"]').textContent =
    `${formatBytes(health.disk_used)} / ${formatBytes(health.disk_total)}`;
  renderGpus(card.querySelector('[data-role="gpus"]'), health.gpus || []);
}

function tickHeartbeats() {
  const now = Date.now();
  for (const [name, seen] of lastSeen) {
    const card = document.querySelector(`[data-node-name="${CSS.escape(name)}"]`);
    const label = card?.querySelector('[data-role="heartbeat"]');
    if (!label) continue;
    const seconds = Math.max(0, Math.round((now - seen) / 1000));
    label.textContent = seconds < 2 ? "seen just now" : `seen ${seconds}s ago`;
  }
}

// Seed each sparkline with the heartbeat the page was rendered from.
for (const svg of document.querySelectorAll('[data-role="spark"][data-seed]')) {
  const seed = Number.parseFloat(svg.dataset.seed);
  if (!Number.isNaN(seed)) history.set(svg.closest("[data-node-name]").dataset.nodeName, [seed]);
}

new LiveSocket("/ws/nodes/", {
  onStatus: statusIndicator(document.getElementById("live-status")),
  onMessage: (message) => {
    if (message.type === "health") onHealth(message);
  },
}).start();

setInterval(tickHeartbeats, 1000);
