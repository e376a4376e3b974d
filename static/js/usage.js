// The usage page: GPU-hours and CPU-slot-hours per bucket over the chosen range, as bars.
// The figures come rendered into the page (the same dict /api/v1/usage/ answers).

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { readJson } from "./live.js";

const data = readJson("usage-data");
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const element = document.getElementById("chart-usage");
const hours = (v) => (v == null ? "—" : `${v.toFixed(2)} h`);

function options(width) {
  const grid = { stroke: css("--chart-grid"), width: 1 };
  const axis = { stroke: css("--chart-axis"), grid, ticks: { stroke: css("--chart-grid") } };
  const bars = uPlot.paths.bars({ size: [0.8, 40] });
  return {
    width,
    height: 240,
    scales: { x: { time: true, range: [data.since, data.at] }, h: { auto: true, range: (_, min, max) => [0, Math.max(1, max)] } },
    axes: [{ ...axis }, { ...axis, scale: "h", label: "hours", labelSize: 16, size: 60 }],
    series: [
      { label: "time" },
      { label: "GPU-hours", stroke: css("--chart-val"), fill: css("--chart-val"), scale: "h", paths: bars, points: { show: false }, value: (_, v) => hours(v) },
      { label: "CPU-slot-hours", stroke: css("--chart-train"), fill: css("--chart-train"), scale: "h", paths: bars, points: { show: false }, value: (_, v) => hours(v) },
    ],
  };
}

// Bars stand at the middle of their bucket.
const half = data.bucket_s / 2;
const series = [
  data.series.map((p) => p.ts + half),
  data.series.map((p) => p.gpu_hours),
  data.series.map((p) => p.cpu_slot_hours),
];
const chart = new uPlot(options(element.clientWidth || 600), series, element);
element.dataset.points = String(series[0].length);
element.dataset.gpuHours = String(series[1].reduce((a, b) => a + b, 0).toFixed(2));
new ResizeObserver(() => chart.setSize({ width: element.clientWidth, height: 240 })).observe(element);
