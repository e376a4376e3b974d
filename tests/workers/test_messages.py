"""Every node-plane message, as a table: what its receiver accepts and what it refuses, and why.

The receiver's side (`AttemptSpec.from_json`, `decode`) is what is tested: a sender's
constructor does not validate, by design (it runs every training step).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.workers.support import iris_spec
from workers.messages import (
    MAX_LINE_CHARS,
    AttemptExitedEntry,
    AttemptSpec,
    AttemptStartedEntry,
    CheckpointSavedEntry,
    EventEntry,
    GpuHealth,
    HealthEntry,
    LogEntry,
    MessageInvalid,
    MetricEntry,
    decode,
    encode,
    exited_entry,
    spec_envelope,
)

TS = 1_750_000_000.0


def spec_json() -> dict[str, Any]:
    return iris_spec(node_name="n1", attempt_id=7, checkpoint_dir=Path("/ck")).to_json()


def changed(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`data` with the field at dotted `path` set to `value` (or removed, for `...`)."""
    copy: dict[str, Any] = json.loads(json.dumps(data))
    *parents, last = path.split(".")
    target: Any = copy
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return copy


def test_a_spec_survives_its_round_trip() -> None:
    spec = iris_spec(node_name="n1", attempt_id=7, checkpoint_dir=Path("/ck"))
    assert AttemptSpec.from_json(spec.to_json()) == spec
    assert AttemptSpec.from_json(json.loads(spec.dumps())) == spec


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        ("job_id", "1", "Expected `int`, got `str` - at `$.job_id`"),
        ("job_id", 0, "Expected `int` >= 1 - at `$.job_id`"),
        ("attempt_id", 2**63, "Expected `int` <= 9223372036854775807 - at `$.attempt_id`"),
        ("attempt_id", True, "Expected `int`, got `bool` - at `$.attempt_id`"),
        ("node_name", "", "Expected `str` of length >= 1 - at `$.node_name`"),
        ("checkpoint_dir", ..., "Object missing required field `checkpoint_dir`"),
        ("surprise", 1, "Object contains unknown field `surprise`"),
        ("dataset.sha256", "ab", "Expected `str` matching regex"),
        ("dataset.format", "xlsx", "Invalid enum value 'xlsx' - at `$.dataset.format`"),
        ("dataset.task", "ranking", "Invalid enum value 'ranking' - at `$.dataset.task`"),
        ("dataset.features", [], "Expected `array` of length >= 1"),
        ("dataset.features.0.scale", 0.0, "Expected `float` > 0.0 - at `$.dataset.features[0]"),
        ("dataset.input_shape", [1, 2, 3, 4], "Expected `array` of length <= 3"),
        ("dataset.num_rows", 1, "Expected `int` >= 2 - at `$.dataset.num_rows`"),
        (
            "dataset.preprocessing.test_fraction",
            0.8,
            "val_fraction + test_fraction must leave rows to train on",
        ),
        ("dataset.classes", "abc", "Expected `array`, got `str` - at `$.dataset.classes`"),
        ("model.hidden_sizes", [16, 0], "Expected `int` >= 1 - at `$.model.hidden_sizes[1]`"),
        ("model.activation", "swish", "Invalid enum value 'swish' - at `$.model.activation`"),
        ("model.dropout", 1.0, "Expected `float` < 1.0 - at `$.model.dropout`"),
        ("model.architecture", "rnn", "Invalid value 'rnn' - at `$.model.architecture`"),
        ("model.channels", [16], "Object contains unknown field `channels` - at `$.model`"),
        ("training.epochs", "30", "Expected `int`, got `str` - at `$.training.epochs`"),
        ("training.epochs", 0, "Expected `int` >= 1 - at `$.training.epochs`"),
        ("training.batch_size", 1.5, "Expected `int`, got `float` - at `$.training.batch_size`"),
        ("training.learning_rate", 0.0, "Expected `float` > 0.0"),
        ("training.optimizer", "lion", "Invalid enum value 'lion' - at `$.training.optimizer`"),
        ("training.val_fraction", 0.2, "Object contains unknown field `val_fraction`"),
        ("training.keep_last", 0, "Expected `int` >= 1 - at `$.training.keep_last`"),
        ("training.checkpoint_every", 0, "Expected `int` >= 1"),
        ("training.best_metric", "f1", "Invalid enum value 'f1' - at `$.training.best_metric`"),
        ("placement.device", "tpu", "Invalid enum value 'tpu' - at `$.placement.device`"),
        ("placement.nproc_per_node", 0, "Expected `int` >= 1"),
        ("placement.master_port", 70_000, "Expected `int` <= 65535"),
        ("placement.node_rank", 1, "node_rank 1 is not below nnodes 1 - at `$.placement`"),
    ],
)
def test_a_node_refuses_a_spec_with_a_wrong_field_and_says_which(
    path: str, value: Any, error: str
) -> None:
    with pytest.raises(MessageInvalid) as refused:
        AttemptSpec.from_json(changed(spec_json(), path, value))
    assert error in str(refused.value)


def test_the_envelope_of_a_refused_spec_still_addresses_its_exit() -> None:
    bad = changed(spec_json(), "training.epochs", "30")
    envelope = spec_envelope(bad)
    assert envelope is not None
    assert (envelope.job_id, envelope.attempt_id, envelope.node_name) == (1, 7, "n1")
    assert envelope.placement.node_rank == 0
    report = exited_entry(
        spec=envelope, exit_code=-1, cancelled=False, reason="r", retryable=False, ts=TS
    )
    assert (report.job, report.attempt, report.node, report.node_rank) == (1, 7, "n1", 0)
    # Without an attempt to name, nobody can be told: the node only logs the refusal.
    assert spec_envelope(changed(spec_json(), "attempt_id", "7")) is None
    assert spec_envelope(["not", "a", "spec"]) is None


METRIC: dict[str, Any] = {
    "job": 1,
    "attempt": 2,
    "seq": 0,
    "split": "train",
    "step": 1,
    "epoch": 1,
    "loss": 0.5,
    "accuracy": 0.75,
    "ts": TS,
}
LOG: dict[str, Any] = {
    "job": 1,
    "attempt": 2,
    "node_rank": 0,
    "rank": 1,
    "local_rank": 1,
    "seq": 0,
    "stream": "stdout",
    "line": "epoch 1",
    "ts": TS,
}
STARTED: dict[str, Any] = {
    "type": "attempt.started",
    "job": 1,
    "attempt": 2,
    "node": "n1",
    "node_rank": 0,
    "ts": TS,
}
EXITED: dict[str, Any] = STARTED | {
    "type": "attempt.exited",
    "exit_code": 1,
    "cancelled": False,
    "reason": "boom",
    "retryable": True,
}
SAVED: dict[str, Any] = {
    "type": "checkpoint.saved",
    "job": 1,
    "attempt": 2,
    "epoch": 3,
    "step": 30,
    "name": "attempt-2/epoch-3.pt",
    "sha256": "ab" * 32,
    "size_bytes": 1234,
    "val_loss": 0.25,
    "val_accuracy": None,
    "is_best": True,
    "ts": TS,
}
GPU: dict[str, Any] = {
    "index": 0,
    "uuid": "GPU-5e2b",
    "name": "H200",
    "utilization": 97.0,
    "memory_used": 1,
    "memory_total": 2,
    "temperature": 60.0,
    "power": 300.0,
    "ecc_uncorrected": 0,
}
HEALTH: dict[str, Any] = {
    "node": "n1",
    "hostname": "box",
    "address": "10.0.0.7",
    "pool": "default",
    "labels": {"zone": "a"},
    "cpu_slots": 8,
    "gpu_count": 1,
    "cpu_percent": 12.5,
    "memory_used": 1,
    "memory_total": 2,
    "disk_used": 3,
    "disk_total": 4,
    "gpus": [GPU],
    "running_attempts": [2],
    "claimed_attempts": [2, 3],
    "ts": TS,
}


@pytest.mark.parametrize(
    ("kind", "valid"),
    [
        (MetricEntry, METRIC),
        (MetricEntry, METRIC | {"accuracy": None}),
        (LogEntry, LOG),
        (EventEntry, STARTED),
        (EventEntry, EXITED),
        (EventEntry, SAVED),
        (HealthEntry, HEALTH),
        (HealthEntry, HEALTH | {"gpus": [], "surplus_field": "ignored"}),
    ],
)
def test_a_valid_entry_decodes_and_round_trips(kind: Any, valid: dict[str, Any]) -> None:
    entry = decode(json.dumps(valid), kind)
    assert msgspec.to_builtins(entry) == {k: v for k, v in valid.items() if k != "surplus_field"}
    assert decode(encode(entry), kind) == entry


@pytest.mark.parametrize(
    ("kind", "data", "error"),
    [
        (MetricEntry, METRIC | {"seq": -1}, "Expected `int` >= 0 - at `$.seq`"),
        (MetricEntry, METRIC | {"seq": 2**31}, "Expected `int` <= 2147483647 - at `$.seq`"),
        (MetricEntry, METRIC | {"job": 0}, "Expected `int` >= 1 - at `$.job`"),
        (MetricEntry, METRIC | {"split": "test"}, "Invalid enum value 'test' - at `$.split`"),
        (MetricEntry, METRIC | {"loss": "0.5"}, "Expected `float`, got `str` - at `$.loss`"),
        (MetricEntry, METRIC | {"step": True}, "Expected `int`, got `bool` - at `$.step`"),
        (MetricEntry, METRIC | {"ts": -1.0}, "Expected `float` >= 0.0 - at `$.ts`"),
        (MetricEntry, METRIC | {"ts": 1e300}, "Expected `float` <= 253402300799.0 - at `$.ts`"),
        (MetricEntry, {"job": 1, "attempt": 2}, "Object missing required field"),
        (LogEntry, LOG | {"stream": "stdin"}, "Invalid enum value 'stdin' - at `$.stream`"),
        (LogEntry, LOG | {"line": 5}, "Expected `str`, got `int` - at `$.line`"),
        (EventEntry, STARTED | {"type": "attempt.paused"}, "Invalid value 'attempt.paused'"),
        (EventEntry, STARTED | {"node": ""}, "Expected `str` of length >= 1 - at `$.node`"),
        (EventEntry, SAVED | {"name": "../etc/passwd;"}, "Expected `str` matching regex"),
        (EventEntry, SAVED | {"sha256": "x"}, "Expected `str` matching regex"),
        (EventEntry, EXITED | {"cancelled": 0}, "Expected `bool`, got `int` - at `$.cancelled`"),
        (EventEntry, EXITED | {"exit_code": "1"}, "Expected `int`, got `str` - at `$.exit_code`"),
        (
            EventEntry,
            {k: v for k, v in EXITED.items() if k != "retryable"},
            "Object missing required field `retryable`",
        ),
        (HealthEntry, HEALTH | {"cpu_slots": "eight"}, "Expected `int`, got `str`"),
        (HealthEntry, HEALTH | {"node": "x" * 101}, "Expected `str` of length <= 100"),
        (HealthEntry, HEALTH | {"cpu_percent": math.nan}, "Expected `float` >= 0.0"),
        (HealthEntry, HEALTH | {"running_attempts": [True]}, "at `$.running_attempts[0]`"),
        (
            HealthEntry,
            {k: v for k, v in HEALTH.items() if k != "claimed_attempts"},
            "Object missing required field `claimed_attempts`",
        ),
        (
            HealthEntry,
            HEALTH | {"gpus": [GPU | {"memory_used": -1}]},
            "Expected `int` >= 0 - at `$.gpus[0].memory_used`",
        ),
    ],
)
def test_a_wrong_entry_is_refused_with_the_field_at_fault(
    kind: Any, data: dict[str, Any], error: str
) -> None:
    with pytest.raises(MessageInvalid) as refused:
        decode(json.dumps(data), kind)
    assert error in str(refused.value)


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"', b"\xff\xfe"])
def test_data_that_is_no_json_object_is_refused(raw: str | bytes) -> None:
    with pytest.raises(MessageInvalid, match="data is not"):
        decode(raw, MetricEntry)


def test_a_diverged_loss_is_kept_and_a_missing_gpu_reading_becomes_none() -> None:
    # What a Python node's json.dumps writes: NaN and Infinity, which are not JSON.
    point = decode(json.dumps(METRIC | {"loss": math.nan}), MetricEntry)
    assert math.isnan(point.loss)
    gpu = GPU | {"utilization": math.nan, "temperature": math.nan, "power": math.inf}
    beat = decode(json.dumps(HEALTH | {"gpus": [gpu]}), HealthEntry)
    reading = beat.gpus[0]
    assert (reading.utilization, reading.temperature, reading.power) == (None, None, None)
    # The sender's constructor does the same, so a node never sends a NaN reading.
    built = GpuHealth(**gpu)
    assert json.loads(encode(built))["temperature"] is None


def test_a_log_line_loses_its_nul_bytes_and_its_runaway_tail() -> None:
    entry = decode(json.dumps(LOG | {"line": "a\x00b" + "x" * MAX_LINE_CHARS}), LogEntry)
    assert entry.line.startswith("a\ufffdb")
    assert len(entry.line) == MAX_LINE_CHARS
    exited = decode(json.dumps(EXITED | {"reason": "bad\x00"}), EventEntry)
    assert isinstance(exited, AttemptExitedEntry)
    assert exited.reason == "bad\ufffd"


def test_events_decode_to_their_own_type_by_tag() -> None:
    assert isinstance(decode(json.dumps(STARTED), EventEntry), AttemptStartedEntry)
    assert isinstance(decode(json.dumps(EXITED), EventEntry), AttemptExitedEntry)
    assert isinstance(decode(json.dumps(SAVED), EventEntry), CheckpointSavedEntry)
    fields = {k: v for k, v in STARTED.items() if k != "type"}
    assert json.loads(encode(AttemptStartedEntry(**fields)))["type"] == "attempt.started"
