// Comparing jobs: each job's metric points, paged from /api/v1/jobs/<id>/metrics/ (the same
// points the job page draws), overlaid on one loss chart and one accuracy chart: a colour per
// job, validation solid and train dashed, on the union of their steps.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { readJson } from "./live.js";
import { MetricStore } from "./metrics.js";

const config = readJson("compare-config");
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
const PAGE = 5000;

async function loadPoints(job) {
  const store = new MetricStore();
  let cursor = { after_attempt: 0, after_seq: -1 };
  for (;;) {
    const query = new URLSearchParams({ ...cursor, limit: PAGE });
    const response = await fetch(`${job.metrics}?${query}`, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`metrics of job #${job.id}: ${response.status}`);
    const page = await response.json();
    store.add(page.points);
    cursor = page.next;
    if (!page.has_more) return store;
  }
}

function overlay(stores, kind) {
  // One x axis for all: every step any job reported; a job silent at a step is null there.
  const steps = [...new Set(stores.flatMap((s) => [...s.byStep.keys()]))].sort((a, b) => a - b);
  const data = [steps];
  for (const store of stores) {
    const [own, train, val] = store.series(kind);
    const at = new Map(own.map((step, i) => [step, i]));
    data.push(steps.map((step) => (at.has(step) ? val[at.get(step)] : null)));
    data.push(steps.map((step) => (at.has(step) ? train[at.get(step)] : null)));
  }
  return data;
}

function draw(kind, stores) {
  const element = document.getElementById(`compare-${kind}`);
  const data = overlay(stores, kind);
  const isAcc = kind === "accuracy";
  const series = [{ label: "step" }];
  config.jobs.forEach((job, i) => {
    const color = COLORS[i % COLORS.length];
    const fmt = (_, v) => (v == null ? "—" : isAcc ? `${(v * 100).toFixed(1)}%` : v.toPrecision(4));
    series.push({ label: `#${job.id} val`, stroke: color, width: 2, spanGaps: true, points: { show: false }, value: fmt });
    series.push({ label: `#${job.id} train`, stroke: color, width: 1, dash: [6, 3], spanGaps: true, points: { show: false }, value: fmt });
  });
  const hasValues = data.slice(1).some((values) => values.some((v) => v !== null));
  element.dataset.series = String(config.jobs.filter((_, i) => data[1 + 2 * i].some((v) => v !== null) || data[2 + 2 * i].some((v) => v !== null)).length);
  const empty = element.querySelector(".chart-empty");
  if (!hasValues) {
    if (empty) empty.textContent = isAcc ? "No accuracy reported." : "No metric points yet.";
    return;
  }
  empty?.remove();
  new uPlot(
    {
      width: element.clientWidth || 800,
      height: 300,
      scales: { x: { time: false }, y: isAcc ? { range: [0, 1] } : { auto: true } },
      axes: [{ label: "step", size: 36 }, { size: 52 }],
      series,
    },
    data,
    element,
  );
}

Promise.all(config.jobs.map(loadPoints))
  .then((stores) => {
    draw("loss", stores);
    draw("accuracy", stores);
    document.body.dataset.compareReady = "true";
  })
  .catch((error) => {
    for (const kind of ["loss", "accuracy"]) {
      const empty = document.querySelector(`#compare-${kind} .chart-empty`);
      if (empty) empty.textContent = `Could not load the metrics: ${error.message}`;
    }
  });
