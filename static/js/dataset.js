// One dataset version's page: the class-balance or target-distribution chart (uPlot bars),
// a reload once validation settles (polling the API), and a confirm before deleting.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { readJson } from "./live.js";

const config = readJson("dataset-config", {});
const POLL_MS = 1500;
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function chartData(chart) {
  if (chart.kind === "classes" && Array.isArray(chart.labels)) {
    return { labels: chart.labels.map(String), x: chart.labels.map((_, i) => i), y: chart.counts };
  }
  if (chart.kind === "histogram" && Array.isArray(chart.edges)) {
    const x = chart.counts.map((_, i) => (chart.edges[i] + chart.edges[i + 1]) / 2);
    return { labels: null, x, y: chart.counts };
  }
  return null;
}

function drawChart() {
  const element = document.getElementById("dataset-chart");
  const data = element && chartData(config.chart || {});
  if (!data || !data.x.length) return;
  element.querySelector(".chart-empty")?.remove();
  const grid = { stroke: css("--chart-grid"), width: 1 };
  const axis = { stroke: css("--chart-axis"), grid, ticks: { stroke: css("--chart-grid") } };
  const xAxis = data.labels
    ? { ...axis, splits: () => data.x, values: () => data.labels }
    : { ...axis, values: (_, ticks) => ticks.map((v) => Number(v.toPrecision(3))) };
  const options = {
    width: element.clientWidth || 600,
    height: 240,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: false, range: (_, min, max) => [min - 0.6, max + 0.6] }, y: { range: (_, __, max) => [0, max * 1.1 || 1] } },
    axes: [xAxis, { ...axis, size: 48 }],
    series: [
      {},
      {
        label: data.labels ? "rows" : "count",
        stroke: css("--chart-train"),
        fill: css("--chart-train"),
        paths: uPlot.paths.bars({ size: [0.7, 80] }),
        points: { show: false },
      },
    ],
  };
  if (!data.labels) {
    const step = data.x.length > 1 ? data.x[1] - data.x[0] : 1;
    options.scales.x.range = (_, min, max) => [min - step / 2, max + step / 2];
  }
  const plot = new uPlot(options, [data.x, data.y], element);
  new ResizeObserver(() => plot.setSize({ width: element.clientWidth, height: 240 })).observe(element);
}

function pollUntilSettled() {
  if (config.settled || !config.api) return;
  const timer = setInterval(async () => {
    try {
      const response = await fetch(config.api, { headers: { Accept: "application/json" } });
      if (response.status === 404) return clearInterval(timer);
      const body = await response.json();
      if (body.state !== config.state) {
        clearInterval(timer);
        window.location.reload();
      }
    } catch {
      // The next tick tries again.
    }
  }, POLL_MS);
}

for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}

drawChart();
pollUntilSettled();
