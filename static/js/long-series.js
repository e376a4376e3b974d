// A long run's chart data: the downsampled series the server sends (/api/v1/jobs/<id>/metrics/
// series/, portal/jobs/series.py) plus the live points that arrive over the socket after it.
//
// Every row is a time (seconds) with, per split, the minimum and the maximum of its bucket;
// the chart draws the two as a band, so a one-point spike among millions stays visible. A live
// point is a bucket of one (minimum = maximum). No DOM here, so it runs under Node in tests.

export const COLUMNS = [
  "train_loss_min", "train_loss_max", "val_loss_min", "val_loss_max",
  "train_accuracy_min", "train_accuracy_max", "val_accuracy_min", "val_accuracy_max",
];

const finite = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

export class LongSeries {
  constructor() {
    this.clear();
  }

  clear() {
    this.t = [];
    this.columns = Object.fromEntries(COLUMNS.map((name) => [name, []]));
  }

  /** Replace everything with one answer of the series API. */
  load(series) {
    this.clear();
    this.t = series.t.slice();
    for (const name of COLUMNS) this.columns[name] = series[name].map(finite);
  }

  /** Append live points (in the socket's order); a point older than the last row is placed
   *  in time order, so the x axis stays sorted as uPlot needs. */
  append(points) {
    for (const p of points) {
      const row = {};
      for (const name of COLUMNS) row[name] = null;
      const split = p.split === "val" ? "val" : "train";
      row[`${split}_loss_min`] = row[`${split}_loss_max`] = finite(p.loss);
      row[`${split}_accuracy_min`] = row[`${split}_accuracy_max`] = finite(p.accuracy);
      let at = this.t.length;
      while (at > 0 && this.t[at - 1] > p.ts) at -= 1;
      this.t.splice(at, 0, p.ts);
      for (const name of COLUMNS) this.columns[name].splice(at, 0, row[name]);
    }
  }

  get length() {
    return this.t.length;
  }

  /** uPlot's data for "loss" or "accuracy": [t, train min, train max, val min, val max]. */
  data(kind) {
    const c = this.columns;
    return [
      this.t,
      c[`train_${kind}_min`], c[`train_${kind}_max`],
      c[`val_${kind}_min`], c[`val_${kind}_max`],
    ];
  }

  hasValues(kind) {
    return this.data(kind).slice(1).some((column) => column.some((v) => v !== null));
  }
}

/** The job's timeline (/api/v1/jobs/<id>/timeline/) as uPlot data: one x axis (time) and,
 *  per device, utilisation then memory in use, both in percent, null where a device has no
 *  reading at that time. Returns {labels, data}. */
export function timelineData(timeline) {
  const times = new Set();
  for (const s of timeline.series) for (const t of s.t) times.add(t);
  const t = [...times].sort((a, b) => a - b);
  const index = new Map(t.map((v, i) => [v, i]));
  const labels = [];
  const data = [t];
  for (const s of timeline.series) {
    const util = new Array(t.length).fill(null);
    const memory = new Array(t.length).fill(null);
    s.t.forEach((at, i) => {
      util[index.get(at)] = finite(s.utilization[i]);
      memory[index.get(at)] = finite(s.memory[i]);
    });
    const name = `${s.node} ${s.device}`;
    labels.push(`${name} util`, `${name} memory`);
    data.push(util, memory);
  }
  return { labels, data };
}
