"""The job page's long-run chart data (static/js/long-series.js), run under Node: it takes the
series API's buckets whole, live points append in time order, and a timeline of several
devices shares one time axis."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

JS = Path(__file__).resolve().parents[2] / "static" / "js"
NODE = shutil.which("node")


def run(script: str) -> Any:
    assert NODE is not None, "Node.js is required: it runs the front end's unit tests"
    series = json.dumps((JS / "long-series.js").as_uri())
    store = json.dumps((JS / "metrics.js").as_uri())
    source = (
        f"import {{ LongSeries, timelineData }} from {series};\n"
        f"import {{ MetricStore }} from {store};\n{script}"
    )
    result = subprocess.run(
        [NODE, "--input-type=module", "-e", source],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(result.stdout)


SERIES = """
const series = {
  t: [10, 20, 30],
  train_loss_min: [0.5, 0.4, null], train_loss_max: [0.9, 7.5, null],
  val_loss_min: [null, null, 0.3], val_loss_max: [null, null, 0.35],
  train_accuracy_min: [0.1, 0.2, null], train_accuracy_max: [0.2, 0.3, null],
  val_accuracy_min: [null, null, 0.8], val_accuracy_max: [null, null, 0.9],
  cursor: { attempt: 4, seq: 99 },
  summary: {
    count: 100, best_val_accuracy: 0.9, final_val_accuracy: 0.85, last_train_loss: 0.4,
    last_epoch: 3,
  },
};
"""


def test_buckets_load_whole_and_live_points_append_in_time_order() -> None:
    result = run(
        SERIES
        + """
const s = new LongSeries();
s.load(series);
s.append([{ attempt: 4, seq: 100, split: "train", loss: 0.2, accuracy: 0.6, ts: 40 }]);
s.append([{ attempt: 4, seq: 101, split: "val", loss: NaN, accuracy: 0.95, ts: 35 }]);
console.log(JSON.stringify({ loss: s.data("loss"), acc: s.hasValues("accuracy") }));
"""
    )
    t, train_min, train_max, val_min, val_max = result["loss"]
    assert t == [10, 20, 30, 35, 40]
    assert train_max == [0.9, 7.5, None, None, 0.2]
    assert train_min[-1] == 0.2 and val_min[3] is None and val_max[2] == 0.35
    assert result["acc"] is True


def test_the_cursor_starts_after_the_loaded_series_and_old_points_are_not_new() -> None:
    result = run(
        SERIES
        + """
const m = new MetricStore();
m.startAt(series.cursor, series.summary);
const old = m.isNew({ attempt: 4, seq: 99 });
const next = m.isNew({ attempt: 4, seq: 100 });
const first = m.cursor();
const add = m.add([{ attempt: 4, seq: 100, split: "train", step: 1, epoch: 3, loss: 0.1, ts: 1 }]);
const last = m.cursor();
console.log(JSON.stringify({ old, next, first, add, count: m.count, best: m.bestVal, last }));
"""
    )
    assert result["old"] is False and result["next"] is True
    assert result["first"] == {"attempt": 4, "seq": 99}
    assert result["add"] == {"added": 1, "reconnect": False}
    assert result["count"] == 101 and result["best"] == 0.9
    assert result["last"] == {"attempt": 4, "seq": 100}


def test_a_timeline_of_two_devices_shares_one_time_axis() -> None:
    result = run(
        """
const out = timelineData({ series: [
  { node: "a", device: "gpu0", t: [1, 3], utilization: [50, 60], memory: [10, 11] },
  { node: "b", device: "gpu1", t: [2, 3], utilization: [5, null], memory: [1, 2] },
] });
console.log(JSON.stringify(out));
"""
    )
    assert result["labels"] == ["a gpu0 util", "a gpu0 memory", "b gpu1 util", "b gpu1 memory"]
    assert result["data"] == [
        [1, 2, 3],
        [50, None, 60],
        [10, None, 11],
        [None, 5, None],
        [None, 1, 2],
    ]
