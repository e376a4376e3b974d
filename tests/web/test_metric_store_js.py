"""The job page's metric cursor (static/js/metrics.js), run under Node: holes are refilled by
reconnecting from the last contiguous point, duplicates are dropped, and a hole the server
cannot fill is accepted instead of asked about forever."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

MODULE = Path(__file__).resolve().parents[2] / "static" / "js" / "metrics.js"
# Node.js is a stated requirement (npm serves the front-end libraries), so its absence fails.
NODE = shutil.which("node")


def run(script: str) -> Any:
    """Run `script` as an ES module with `MetricStore` imported; it prints one JSON value."""
    assert NODE is not None, "Node.js is required: it runs the front end's unit tests"
    source = f"import {{ MetricStore }} from {json.dumps(MODULE.as_uri())};\n{script}"
    result = subprocess.run(
        [NODE, "--input-type=module", "-e", source],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(result.stdout)


PRELUDE = """
const pt = (attempt, seq, extra = {}) => ({
  attempt, seq, split: "train", step: seq, epoch: 0, loss: 1 / (seq + 1), accuracy: 0.5, ...extra,
});
const range = (attempt, from, to) =>
  Array.from({ length: to - from + 1 }, (_, i) => pt(attempt, from + i));
const s = new MetricStore();
const out = {};
"""


def test_a_contiguous_backfill_moves_the_cursor_to_its_last_point() -> None:
    result = run(
        PRELUDE
        + """
out.first = s.cursor();
out.add = s.add(range(5, 0, 9));
out.again = s.add(range(5, 3, 6));
out.count = s.count;
out.next = s.cursor();
console.log(JSON.stringify(out));
"""
    )
    assert result["first"] == {"attempt": 0, "seq": -1}
    assert result["add"] == {"added": 10, "reconnect": False}
    assert result["again"] == {"added": 0, "reconnect": False}
    assert result["count"] == 10
    assert result["next"] == {"attempt": 5, "seq": 9}


def test_a_lost_live_event_makes_the_page_reconnect_from_before_the_hole() -> None:
    result = run(
        PRELUDE
        + """
s.cursor();
s.add(range(5, 0, 9));
out.gap = s.add([pt(5, 12), pt(5, 13)]);
out.cursor = s.cursor();
out.backfill = s.add(range(5, 10, 13));
out.count = s.count;
out.after = s.cursor();
console.log(JSON.stringify(out));
"""
    )
    assert result["gap"] == {"added": 2, "reconnect": True}
    assert result["cursor"] == {"attempt": 5, "seq": 9}
    assert result["backfill"] == {"added": 2, "reconnect": False}
    assert result["count"] == 14
    assert result["after"] == {"attempt": 5, "seq": 13}


def test_a_hole_the_server_cannot_fill_is_accepted_after_one_reconnect() -> None:
    result = run(
        PRELUDE
        + """
s.cursor();
s.add(range(5, 0, 3));
out.gap = s.add([pt(5, 6)]);
s.cursor();
out.retry = s.add([pt(5, 6)]);
out.cursor = s.cursor();
out.live = s.add([pt(5, 7)]);
console.log(JSON.stringify(out));
"""
    )
    assert result["gap"]["reconnect"] is True
    assert result["retry"] == {"added": 0, "reconnect": False}
    assert result["cursor"] == {"attempt": 5, "seq": 6}
    assert result["live"] == {"added": 1, "reconnect": False}


def test_a_new_attempt_continues_the_cursor_and_its_steps_replace_the_old_ones() -> None:
    result = run(
        PRELUDE
        + """
s.cursor();
s.add(range(5, 0, 4));
out.add = s.add([pt(8, 0, { step: 3, loss: 9 }), pt(8, 1, { step: 4, loss: 8 })]);
out.cursor = s.cursor();
out.loss = s.series("loss");
console.log(JSON.stringify(out));
"""
    )
    assert result["add"] == {"added": 2, "reconnect": False}
    assert result["cursor"] == {"attempt": 8, "seq": 1}
    steps, train, val = result["loss"]
    assert steps == [0, 1, 2, 3, 4]
    assert train[3:] == [9, 8]
    assert val == [None] * 5


def test_it_tracks_the_final_and_best_validation_accuracy() -> None:
    result = run(
        PRELUDE
        + """
s.add([
  pt(5, 0, { split: "val", accuracy: 0.7 }),
  pt(5, 1, { split: "val", accuracy: 0.9 }),
  pt(5, 2, { split: "val", accuracy: 0.8 }),
]);
console.log(JSON.stringify({ best: s.bestVal, final: s.finalVal.accuracy }));
"""
    )
    assert result == {"best": 0.9, "final": 0.8}
