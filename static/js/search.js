// A search's page: the optimised metric per trial and the best value over trials (uPlot), a
// parallel-coordinates plot of the hyperparameters against the metric (a canvas of our own),
// a sortable trials table, and a poll of the chart data while the search runs.
import uPlot from "../vendor/uplot/uPlot.esm.js";
import { readJson } from "./live.js";

const config = readJson("search-config", { chart: null, running: false });
const chartUrl = `${window.location.pathname.replace(/\/$/, "")}/chart.json`;
const charts = {};
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#4c7";

function palette(i) {
  return `hsl(${(i * 47) % 360} 60% 45%)`;
}

// ---- per-trial curves: x = epoch, one series per trial -------------------------------------
function curvesData(chart) {
  const epochs = new Set();
  for (const t of chart.trials) for (const [e] of t.curve) epochs.add(e);
  const xs = [...epochs].sort((a, b) => a - b);
  const index = new Map(xs.map((e, i) => [e, i]));
  const ys = chart.trials.map((t) => {
    const row = new Array(xs.length).fill(null);
    for (const [e, v] of t.curve) row[index.get(e)] = v;
    return row;
  });
  return [xs, ...ys];
}

function drawCurves(chart) {
  const element = document.getElementById("curves-chart");
  const data = curvesData(chart);
  const series = [{ label: "epoch" }, ...chart.trials.map((t, i) => ({
    label: `trial ${t.number}${t.state === "pruned" ? " (pruned)" : ""}`,
    stroke: palette(i),
    dash: t.state === "pruned" ? [4, 3] : undefined,
    spanGaps: true,
  }))];
  if (charts.curves && charts.curves.series.length !== series.length) {
    charts.curves.destroy();
    charts.curves = null;
  }
  if (!charts.curves) {
    const opts = { width: element.clientWidth || 600, height: 260, series, scales: { x: { time: false } } };
    charts.curves = new uPlot(opts, data, element);
  } else {
    charts.curves.setData(data);
  }
}

// ---- best over trials: x = trial number; each trial's best, and the running best ------------
function drawBest(chart) {
  const element = document.getElementById("best-chart");
  const xs = chart.trials.map((t) => t.number);
  const data = [xs, chart.trials.map((t) => (t.state === "completed" ? t.best : null)), chart.best_over_trials];
  if (!charts.best) {
    const opts = {
      width: element.clientWidth || 600,
      height: 220,
      scales: { x: { time: false } },
      series: [
        { label: "trial" },
        { label: "trial's best", stroke: css("--chart-val"), points: { show: true, size: 6 }, paths: () => null },
        { label: "best so far", stroke: css("--chart-train"), spanGaps: true },
      ],
    };
    charts.best = new uPlot(opts, data, element);
  } else {
    charts.best.setData(data);
  }
}

// ---- parallel coordinates: one axis per dimension, then the metric -------------------------
function axisOf(values) {
  const numeric = values.every((v) => typeof v === "number");
  if (numeric && values.length) {
    const lo = Math.min(...values), hi = Math.max(...values);
    return { numeric, pos: (v) => (hi === lo ? 0.5 : (v - lo) / (hi - lo)), lo, hi };
  }
  const keys = [...new Set(values.map((v) => JSON.stringify(v)))].sort();
  return { numeric: false, keys, pos: (v) => (keys.length < 2 ? 0.5 : keys.indexOf(JSON.stringify(v)) / (keys.length - 1)) };
}

function drawParallel(chart) {
  const canvas = document.getElementById("parallel-chart");
  const ctx = canvas.getContext("2d");
  const width = (canvas.width = canvas.clientWidth || 600);
  const height = canvas.height;
  ctx.clearRect(0, 0, width, height);
  const trials = chart.trials.filter((t) => t.best !== null);
  const names = [...chart.dimensions, chart.metric];
  if (!trials.length) {
    ctx.fillStyle = css("--muted");
    ctx.fillText("No trial has a value yet.", 12, 20);
    return;
  }
  const columns = names.map((name, i) => (i < chart.dimensions.length ? trials.map((t) => t.params[name]) : trials.map((t) => t.best)));
  const axes = columns.map(axisOf);
  const left = 40, right = 40, top = 24, bottom = 24;
  const x = (i) => left + (names.length === 1 ? 0 : (i * (width - left - right)) / (names.length - 1));
  const y = (p) => top + (1 - p) * (height - top - bottom);
  const metricAxis = axes[axes.length - 1];
  trials.forEach((t, row) => {
    let goodness = metricAxis.pos(t.best);
    if (chart.direction === "minimize") goodness = 1 - goodness;
    ctx.strokeStyle = `hsla(210, 70%, ${70 - 45 * goodness}%, 0.9)`;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    columns.forEach((values, i) => {
      const point = [x(i), y(axes[i].pos(values[row]))];
      if (i === 0) ctx.moveTo(...point);
      else ctx.lineTo(...point);
    });
    ctx.stroke();
  });
  ctx.strokeStyle = css("--border");
  ctx.fillStyle = css("--text");
  ctx.font = "11px system-ui, sans-serif";
  names.forEach((name, i) => {
    ctx.beginPath();
    ctx.moveTo(x(i), y(0));
    ctx.lineTo(x(i), y(1));
    ctx.stroke();
    ctx.textAlign = i === 0 ? "left" : i === names.length - 1 ? "right" : "center";
    ctx.fillText(name, x(i), 12);
    const axis = axes[i];
    const low = axis.numeric ? axis.lo.toPrecision(3) : axis.keys[0];
    const high = axis.numeric ? axis.hi.toPrecision(3) : axis.keys[axis.keys.length - 1];
    ctx.fillText(String(high), x(i), top - 2 + 10);
    ctx.fillText(String(low), x(i), height - 6);
  });
}

function draw(chart) {
  if (!chart) return;
  drawCurves(chart);
  drawBest(chart);
  drawParallel(chart);
}

// ---- sortable table -------------------------------------------------------------------------
function sortable(table) {
  const headers = [...table.querySelectorAll("th[data-sort]")];
  headers.forEach((th) => {
    th.tabIndex = 0;
    th.addEventListener("click", () => {
      const column = [...th.parentElement.children].indexOf(th);
      const numeric = th.dataset.sort === "number";
      const ascending = th.dataset.dir !== "asc";
      headers.forEach((h) => delete h.dataset.dir);
      th.dataset.dir = ascending ? "asc" : "desc";
      const body = table.tBodies[0];
      const rows = [...body.rows];
      const value = (row) => row.children[column].dataset.value ?? "";
      rows.sort((a, b) => {
        const [va, vb] = [value(a), value(b)];
        let order;
        if (numeric) {
          // Blank (no value yet) sorts last either way.
          if (va === "" || vb === "") return (va === "") - (vb === "");
          order = Number(va) - Number(vb);
        } else {
          order = va.localeCompare(vb, undefined, { numeric: true });
        }
        return ascending ? order : -order;
      });
      body.append(...rows);
    });
  });
}

sortable(document.getElementById("trials"));
draw(config.chart);

async function poll() {
  try {
    const response = await fetch(chartUrl, { headers: { Accept: "application/json" } });
    if (response.ok) {
      const body = await response.json();
      draw(body.chart);
      if (!body.running) return;
    }
  } catch {
    // A dropped poll is retried on the next tick.
  }
  setTimeout(poll, 5000);
}
if (config.running) setTimeout(poll, 5000);
