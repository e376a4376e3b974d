// The job page's charts over time: loss and accuracy (a band from each bucket's minimum to its
// maximum, so peaks survive downsampling), and the timeline of the GPUs (or CPUs) the job ran
// on, all on one time axis with a shared cursor.
//
// The page loads a downsampled series over HTTP (at most a few thousand rows, whatever the
// length of the run), then appends the live points the socket sends after the series' cursor.
// Dragging across a chart zooms every chart to that range and fetches finer data for it;
// double-click or "Reset zoom" returns to the whole run.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { LongSeries, timelineData } from "./long-series.js";

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const HEIGHT = 240;
const SYNC = "job-time";
const TIMELINE_REFRESH_MS = 15000;
const PALETTE = ["#16a34a", "#9333ea", "#0891b2", "#dc2626", "#ca8a04", "#db2777", "#4f46e5", "#65a30d"];

async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function axes(yValues) {
  const grid = { stroke: css("--chart-grid"), width: 1 };
  const axis = { stroke: css("--chart-axis"), grid, ticks: { stroke: css("--chart-grid") } };
  return [{ ...axis, size: 36 }, { ...axis, size: 52, ...(yValues ? { values: yValues } : {}) }];
}

function withAlpha(color, alpha) {
  const hex = color.replace("#", "");
  if (hex.length !== 6) return color;
  const [r, g, b] = [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

function metricOptions(kind, width, hooks) {
  const isAcc = kind === "accuracy";
  const fmt = (v) => (v == null ? "—" : isAcc ? `${(v * 100).toFixed(1)}%` : v.toPrecision(4));
  const line = (label, color, dash, show) => ({
    label,
    stroke: color,
    width: show ? 2 : 1,
    dash,
    spanGaps: true,
    points: { show: false },
    value: (_, v) => fmt(v),
  });
  const train = css("--chart-train");
  const val = css("--chart-val");
  return {
    width,
    height: HEIGHT,
    cursor: { sync: { key: SYNC }, drag: { x: true, y: false, setScale: false } },
    scales: { x: { time: true }, y: isAcc ? { range: [0, 1] } : { auto: true } },
    axes: axes(isAcc ? (_, ticks) => ticks.map((v) => `${Math.round(v * 100)}%`) : null),
    series: [
      {},
      line("train min", train, undefined, false),
      line("train max", train, undefined, true),
      line("val min", val, [6, 3], false),
      line("val max", val, [6, 3], true),
    ],
    bands: [
      { series: [2, 1], fill: withAlpha(train, 0.18) },
      { series: [4, 3], fill: withAlpha(val, 0.18) },
    ],
    hooks,
  };
}

function timelineOptions(labels, width, hooks) {
  const pct = (v) => (v == null ? "—" : `${v.toFixed(0)}%`);
  const series = [{}];
  labels.forEach((label, i) => {
    const color = PALETTE[Math.floor(i / 2) % PALETTE.length];
    series.push({
      label,
      stroke: color,
      width: i % 2 === 0 ? 2 : 1,
      dash: i % 2 === 0 ? undefined : [6, 3],
      spanGaps: false,
      // A short job has a reading or two (one per 10 s): show them as dots.
      points: { show: (u) => u.data[0].length < 60, size: 5 },
      value: (_, v) => pct(v),
    });
  });
  return {
    width,
    height: HEIGHT,
    cursor: { sync: { key: SYNC }, drag: { x: true, y: false, setScale: false } },
    scales: { x: { time: true }, y: { range: [0, 100] } },
    axes: axes((_, ticks) => ticks.map((v) => `${v}%`)),
    series,
    hooks,
  };
}

export class JobCharts {
  /**
   * elements: {loss, accuracy, timeline, reset, zoomNote}; urls: {series, timeline};
   * onSummary(series) is called with the first series the page loads (cursor and figures).
   */
  constructor({ elements, urls, isLive }) {
    this.el = elements;
    this.urls = urls;
    this.isLive = isLive;
    this.base = new LongSeries(); // the whole run, and live points after it
    this.zoomed = null; // {min, max, series: LongSeries} while zoomed in
    this.charts = { loss: null, accuracy: null, timeline: null };
    this.timelineLabels = "";
    this.renderTimer = null;
    const hooks = { setSelect: [(u) => this.onSelect(u)] };
    this.hooks = hooks;
    for (const kind of ["loss", "accuracy", "timeline"]) {
      this.el[kind]?.addEventListener("dblclick", () => this.resetZoom());
    }
    this.el.reset?.addEventListener("click", () => this.resetZoom());
    new ResizeObserver(() => this.resize()).observe(this.el.loss);
  }

  /** Load the downsampled series; returns it (its cursor and summary start the socket). */
  async load() {
    const series = await getJson(this.urls.series);
    this.base.load(series);
    this.render();
    this.loadTimeline();
    return series;
  }

  append(points) {
    if (!points.length) return;
    this.base.append(points);
    if (!this.zoomed) this.scheduleRender();
  }

  scheduleRender() {
    // Coalesce bursts of points into one redraw (timers, not rAF: they also run in hidden tabs).
    if (this.renderTimer) return;
    this.renderTimer = setTimeout(() => {
      this.renderTimer = null;
      this.render();
    }, 60);
  }

  shown() {
    return this.zoomed ? this.zoomed.series : this.base;
  }

  render() {
    for (const kind of ["loss", "accuracy"]) this.renderMetric(kind);
    this.alignTimeline();
  }

  /** The timeline shows the loss chart's time range: one time axis for the whole page. */
  alignTimeline() {
    const loss = this.charts.loss;
    const timeline = this.charts.timeline;
    if (!loss || !timeline || this.zoomed) return;
    const { min, max } = loss.scales.x;
    if (min != null && max != null) timeline.setScale("x", { min, max });
  }

  renderMetric(kind) {
    const element = this.el[kind];
    const series = this.shown();
    const empty = element.querySelector(".chart-empty");
    if (!series.hasValues(kind)) {
      if (empty && this.base.length) {
        empty.textContent = kind === "accuracy" ? "No accuracy reported for this loss." : "No points yet.";
      }
      return;
    }
    if (empty) empty.remove();
    const data = series.data(kind);
    if (!this.charts[kind]) {
      this.charts[kind] = new uPlot(metricOptions(kind, element.clientWidth || 600, this.hooks), data, element);
    } else {
      this.charts[kind].setData(data, !this.zoomed);
    }
    if (this.zoomed) this.charts[kind].setScale("x", { min: this.zoomed.min, max: this.zoomed.max });
  }

  async loadTimeline() {
    const element = this.el.timeline;
    if (!element) return;
    try {
      const query = this.zoomed ? `?start=${this.zoomed.min}&end=${this.zoomed.max}` : "";
      const timeline = await getJson(this.urls.timeline + query);
      const { labels, data } = timelineData(timeline);
      const empty = element.querySelector(".chart-empty");
      if (!labels.length) {
        if (empty) empty.textContent = "No health readings of this job's nodes yet.";
      } else {
        if (empty) empty.remove();
        const key = labels.join("|");
        if (!this.charts.timeline || key !== this.timelineLabels) {
          this.charts.timeline?.destroy();
          this.timelineLabels = key;
          this.charts.timeline = new uPlot(
            timelineOptions(labels, element.clientWidth || 600, this.hooks), data, element,
          );
        } else {
          this.charts.timeline.setData(data, !this.zoomed);
        }
        if (this.zoomed) this.charts.timeline.setScale("x", { min: this.zoomed.min, max: this.zoomed.max });
        else this.alignTimeline();
      }
    } catch {
      // The next refresh tries again; the metric charts do not depend on it.
    }
    clearTimeout(this.timelineTimer);
    if (this.isLive()) this.timelineTimer = setTimeout(() => this.loadTimeline(), TIMELINE_REFRESH_MS);
  }

  async onSelect(u) {
    if (u.select.width < 2) return;
    const min = u.posToVal(u.select.left, "x");
    const max = u.posToVal(u.select.left + u.select.width, "x");
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    await this.zoomTo(min, max);
  }

  async zoomTo(min, max) {
    const series = new LongSeries();
    try {
      series.load(await getJson(`${this.urls.series}?start=${min}&end=${max}`));
    } catch {
      return;
    }
    this.zoomed = { min, max, series };
    if (this.el.reset) this.el.reset.hidden = false;
    this.render();
    this.loadTimeline();
  }

  resetZoom() {
    if (!this.zoomed) return;
    this.zoomed = null;
    if (this.el.reset) this.el.reset.hidden = true;
    this.render();
    this.loadTimeline();
  }

  resize() {
    for (const kind of Object.keys(this.charts)) {
      const chart = this.charts[kind];
      if (chart) chart.setSize({ width: this.el[kind].clientWidth, height: HEIGHT });
    }
  }
}
