// The metric points a job page holds, and the cursor it reconnects with.
//
// Every point carries (attempt, seq), with seq contiguous from 0 within an attempt (attempt
// ids grow with each new attempt). The store keeps a *frontier*: the last point up to which
// nothing is missing. Points beyond a hole are still drawn, but the frontier stays before the
// hole, so a reconnect asks the server for everything after it and the hole fills. No DOM here,
// so the logic runs under Node in the test suite too.

const key = (attempt, seq) => `${attempt}:${seq}`;
export const after = (a, b) => a.attempt > b.attempt || (a.attempt === b.attempt && a.seq > b.seq);

export class MetricStore {
  constructor() {
    this.seen = new Set();
    this.attempts = []; // attempt ids seen, ascending
    this.frontier = { attempt: 0, seq: -1 };
    this.latest = null; // the highest (attempt, seq) seen
    this.connectedWith = null; // the frontier the current socket asked from
    this.byStep = new Map(); // step -> {attempt, trainLoss, valLoss, trainAcc, valAcc}
    this.count = 0;
    this.bestVal = null;
    this.finalVal = null; // {attempt, seq, accuracy}
    this.lastTrain = null; // {attempt, seq, loss}
    this.lastEpoch = null;
    this.start = null; // where a page that loaded a downsampled series began (startAt)
  }

  /**
   * Begin after `cursor`, the newest point of a downsampled series the page loaded over HTTP
   * (static/js/long-series.js): the socket then sends only what follows, and `summary` holds
   * the figures of everything up to it.
   */
  startAt(cursor, summary) {
    if (cursor) {
      this.start = { attempt: cursor.attempt, seq: cursor.seq };
      this.frontier = { ...this.start };
      this.latest = { ...this.start };
      if (!this.attempts.includes(cursor.attempt)) this.attempts.push(cursor.attempt);
    }
    if (summary) {
      this.count = summary.count;
      this.bestVal = summary.best_val_accuracy;
      this.lastEpoch = summary.last_epoch;
      if (summary.final_val_accuracy != null && cursor) {
        this.finalVal = { ...this.start, seq: -1, accuracy: summary.final_val_accuracy };
      }
      if (summary.last_train_loss != null && cursor) {
        this.lastTrain = { ...this.start, seq: -1, loss: summary.last_train_loss };
      }
    }
  }

  /** Whether `p` is a point this store has not taken yet. */
  isNew(p) {
    if (this.start && !after(p, this.start)) return false;
    return !this.seen.has(key(p.attempt, p.seq));
  }

  /** The query for the next connect; remembers it, to tell a real hole from a late one. */
  cursor() {
    const f = this.frontier;
    this.connectedWith = key(f.attempt, f.seq);
    return { attempt: f.attempt, seq: f.seq };
  }

  /**
   * Take one message's points. Returns {added, reconnect}: how many were new, and whether the
   * page should reconnect (with cursor()) to fill a hole before the newest point.
   */
  add(points) {
    let added = 0;
    for (const point of points) if (this.addPoint(point)) added += 1;
    this.advance();
    let reconnect = false;
    if (this.latest && after(this.latest, this.frontier)) {
      const f = this.frontier;
      if (this.connectedWith === key(f.attempt, f.seq)) {
        // The server was asked for everything after this cursor and still has a hole here
        // (a point the trainer never delivered): accept it rather than ask again forever.
        this.frontier = { ...this.latest };
      } else {
        reconnect = true;
      }
    }
    return { added, reconnect };
  }

  addPoint(p) {
    const k = key(p.attempt, p.seq);
    if (!this.isNew(p)) return false;
    this.seen.add(k);
    this.count += 1;
    if (!this.attempts.includes(p.attempt)) {
      this.attempts.push(p.attempt);
      this.attempts.sort((a, b) => a - b);
    }
    if (!this.latest || after(p, this.latest)) {
      this.latest = { attempt: p.attempt, seq: p.seq };
      this.lastEpoch = p.epoch;
    }

    // A restarted attempt resumes from a checkpoint and repeats some steps: the newer one wins.
    let slot = this.byStep.get(p.step);
    if (!slot || slot.attempt < p.attempt) {
      slot = { attempt: p.attempt };
      this.byStep.set(p.step, slot);
    }
    if (slot.attempt === p.attempt) {
      const accuracy = p.accuracy ?? null;
      if (p.split === "val") {
        slot.valLoss = p.loss;
        slot.valAcc = accuracy;
      } else {
        slot.trainLoss = p.loss;
        slot.trainAcc = accuracy;
      }
    }

    if (p.split === "val" && p.accuracy != null) {
      if (this.bestVal === null || p.accuracy > this.bestVal) this.bestVal = p.accuracy;
      if (!this.finalVal || after(p, this.finalVal)) {
        this.finalVal = { attempt: p.attempt, seq: p.seq, accuracy: p.accuracy };
      }
    }
    if (p.split === "train" && (!this.lastTrain || after(p, this.lastTrain))) {
      this.lastTrain = { attempt: p.attempt, seq: p.seq, loss: p.loss };
    }
    return true;
  }

  advance() {
    const f = this.frontier;
    for (;;) {
      if (this.seen.has(key(f.attempt, f.seq + 1))) {
        f.seq += 1;
        continue;
      }
      // A newer attempt starts again at seq 0.
      const next = this.attempts.find((a) => a > f.attempt);
      if (next !== undefined && this.seen.has(key(next, 0))) {
        f.attempt = next;
        f.seq = 0;
        continue;
      }
      return;
    }
  }

  /** uPlot's data for "loss" or "accuracy": [steps, train, val], null where a split is silent. */
  series(kind) {
    const steps = [...this.byStep.keys()].sort((a, b) => a - b);
    const train = [];
    const val = [];
    for (const step of steps) {
      const row = this.byStep.get(step);
      train.push((kind === "loss" ? row.trainLoss : row.trainAcc) ?? null);
      val.push((kind === "loss" ? row.valLoss : row.valAcc) ?? null);
    }
    return [steps, train, val];
  }
}
