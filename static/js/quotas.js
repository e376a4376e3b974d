// The admins' quotas page: refresh every user's and team's use against each limit from
// /api/v1/quotas/ every few seconds (the figures are sums over many rows; a poll keeps the
// cost one read per open page, whatever the cluster does).

import { statusIndicator } from "./live.js";

const REFRESH_MS = 5000;
const status = statusIndicator(document.getElementById("live-status"));
const fmt = (v) => (v == null ? "∞" : String(Math.round(v * 100) / 100));

function render(table, rows) {
  for (const row of rows) {
    const tr = [...table.querySelectorAll("tbody tr")].find((r) => r.dataset.scope === row.scope && r.dataset.name === row.name);
    if (!tr) continue; // a user or team created since the page loaded shows on reload
    for (const item of row.limits) {
      const cell = tr.querySelector(`[data-limit="${item.limit}"]`);
      if (!cell) continue;
      cell.textContent = `${fmt(item.used)} / ${fmt(item.allowed)}`;
      cell.classList.toggle("over", item.allowed != null && item.used >= item.allowed);
    }
  }
}

async function refresh() {
  try {
    const response = await fetch("/api/v1/quotas/", { credentials: "same-origin" });
    if (!response.ok) throw new Error(String(response.status));
    const overview = await response.json();
    render(document.getElementById("quota-users"), overview.users);
    render(document.getElementById("quota-teams"), overview.teams);
    document.body.dataset.quotasAt = String(overview.at);
    status("open");
  } catch {
    status("closed");
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}
refresh();
