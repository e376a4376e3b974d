// The jobs list: state badges change in place as /ws/jobs/ reports them, and the checkboxes
// that "Cancel selected" posts (the form itself is plain HTML: it works without this script)
// and "Compare" links to (/jobs/compare/?jobs=3,5,8).

import { LiveSocket, readJson, statusIndicator, tickDurations } from "./live.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const onFirstPage = readJson("jobs-first-page", true) === true;
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
  if (TERMINAL.has(message.state)) {
    // A finished job can no longer be cancelled (it can still be compared).
    const box = row.querySelector('[data-role="select"]');
    if (box) delete box.dataset.cancellable;
    updateSelection();
  }
  if (duration && message.state === "running" && !duration.dataset.started && duration.textContent.trim() === "—") {
    duration.dataset.started = new Date().toISOString();
  }
}

// ---- Selecting jobs to cancel ----------------------------------------------------------------

const selectAll = document.getElementById("select-all");
const cancelSelected = document.getElementById("cancel-selected");
const compareSelected = document.getElementById("compare-selected");
const selectedCount = document.getElementById("selected-count");
const boxes = () => [...document.querySelectorAll('input[data-role="select"]')];
const MAX_COMPARED = 10;

function updateSelection() {
  const all = boxes();
  const picked = all.filter((box) => box.checked);
  const chosen = picked.length;
  if (cancelSelected) cancelSelected.disabled = !picked.some((box) => "cancellable" in box.dataset);
  if (compareSelected) {
    const ok = chosen >= 2 && chosen <= MAX_COMPARED;
    compareSelected.setAttribute("aria-disabled", String(!ok));
    compareSelected.title = ok ? "" : `Pick 2 to ${MAX_COMPARED} jobs to compare`;
    if (ok) compareSelected.href = `${compareSelected.dataset.base}?jobs=${picked.map((b) => b.value).join(",")}`;
    else compareSelected.removeAttribute("href");
  }
  if (selectedCount) selectedCount.textContent = chosen ? `${chosen} selected` : "None selected";
  if (selectAll) {
    selectAll.checked = chosen > 0 && chosen === all.length;
    selectAll.indeterminate = chosen > 0 && chosen < all.length;
    selectAll.disabled = all.length === 0;
  }
}

selectAll?.addEventListener("change", () => {
  for (const box of boxes()) box.checked = selectAll.checked;
  updateSelection();
});
document.getElementById("jobs-table")?.addEventListener("change", (event) => {
  if (event.target.matches('input[data-role="select"]')) updateSelection();
});
document.getElementById("bulk-cancel")?.addEventListener("submit", (event) => {
  const chosen = boxes().filter((box) => box.checked && "cancellable" in box.dataset).length;
  if (!chosen) event.preventDefault();
});
updateSelection();

// Filters apply as soon as a choice changes; typing a name waits for Enter or Apply.
const filters = document.getElementById("job-filters");
filters?.addEventListener("change", (event) => {
  if (event.target.matches("select, input[type=date]")) filters.requestSubmit();
});
filters?.addEventListener("submit", () => {
  // Only the filters in use go into the address, so a shared link says what it shows.
  for (const field of filters.elements) {
    if (field.name && field.value === "") field.disabled = true;
  }
});
window.addEventListener("pageshow", () => {
  // Back from the next page (the browser's cache): the fields must be sendable again.
  for (const field of filters?.elements ?? []) field.disabled = false;
});

new LiveSocket("/ws/jobs/", {
  onStatus: statusIndicator(document.getElementById("live-status")),
  onMessage: (message) => {
    if (message.type === "state") onState(message);
  },
}).start();

tickDurations();
