// The jobs list: state badges change in place as /ws/jobs/ reports them.

import { LiveSocket, readJson, statusIndicator, tickDurations } from "./live.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const onFirstPage = readJson("jobs-page", 1) === 1;
let reloadTimer = null;

function reloadSoon() {
  // Several new jobs in a burst (a sweep submitted from a script) cost one reload.
  if (reloadTimer || !onFirstPage) return;
  reloadTimer = setTimeout(() => window.location.reload(), 1000);
}

function onState(message) {
  const row = document.querySelector(`tr[data-job-id="${message.job}"]`);
  if (!row) {
    reloadSoon();
    return;
  }
  const badge = row.querySelector('[data-testid="job-state"]');
  // Events come from several processes and may arrive out of order: a finished job stays
  // finished.
  if (TERMINAL.has(badge.dataset.state) && !TERMINAL.has(message.state)) return;
  badge.className = `badge state-${message.state}`;
  badge.dataset.state = message.state;
  badge.textContent = message.state.charAt(0).toUpperCase() + message.state.slice(1);
  badge.title = message.reason || "";
  const reason = row.querySelector('[data-role="reason"]');
  if (reason) reason.textContent = message.reason || "";
  const duration = row.querySelector('[data-role="duration"]');
  if (duration && TERMINAL.has(message.state)) delete duration.dataset.started;
  if (duration && message.state === "running" && !duration.dataset.started && duration.textContent.trim() === "—") {
    duration.dataset.started = new Date().toISOString();
  }
}

new LiveSocket("/ws/jobs/", {
  onStatus: statusIndicator(document.getElementById("live-status")),
  onMessage: (message) => {
    if (message.type === "state") onState(message);
  },
}).start();

tickDurations();
