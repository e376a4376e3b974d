"""A node acts only on messages the portal signed, and only within its own bounds.

The real agent tasks, called as the worker calls them (no broker): a refused message logs a
line, claims nothing and starts no process.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.workers.conftest import Node
from tests.workers.support import iris_spec, processes_running, signed_cancel, signed_run
from workers import attempts, bounds, signing
from workers.agent import cancel_attempt, run_attempt
from workers.messages import CANCEL_ATTEMPT_TASK, RUN_ATTEMPT_TASK


def nothing_started(node: Node, attempt_id: int) -> bool:
    directory = attempts.attempt_dir(node.state_dir, attempt_id)
    return not directory.exists() and not processes_running(str(directory))


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("refusing a")]


@pytest.fixture
def spec_json(node: Node, tmp_path: Path) -> dict[str, Any]:
    return iris_spec(node_name=node.name, attempt_id=71, checkpoint_dir=tmp_path / "ck").to_json()


def test_an_unsigned_run_message_is_refused_with_a_log_line(
    node: Node, spec_json: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="workers.agent")

    assert run_attempt(spec_json) == "refused"

    assert refusals(caplog) == ["refusing a run message: the message is not signed"]
    assert nothing_started(node, 71)


def test_an_altered_run_message_is_refused(
    node: Node, spec_json: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="workers.agent")
    [original, signature] = signed_run(spec_json)
    altered = {**original, "training": {**original["training"], "epochs": 10_000}}

    assert run_attempt(altered, signature) == "refused"

    assert "signature does not match" in refusals(caplog)[0]
    assert nothing_started(node, 71)


@pytest.mark.parametrize(
    "key", [b"dev-only-insecure-key-set-DJANGO_SECRET_KEY-in-production", b"k" * 64]
)
def test_a_message_signed_with_another_key_is_refused(
    node: Node, spec_json: dict[str, Any], key: bytes
) -> None:
    forged = signing.sign(RUN_ATTEMPT_TASK, [spec_json], key=key)

    assert run_attempt(spec_json, forged) == "refused"
    assert nothing_started(node, 71)


def test_a_signature_for_a_cancel_does_not_work_as_a_run(
    node: Node, spec_json: dict[str, Any]
) -> None:
    # The task name is inside the MAC.
    [_, _, cancel_signature] = signed_cancel(71)
    assert run_attempt(spec_json, cancel_signature) == "refused"
    assert nothing_started(node, 71)


def test_an_unsigned_cancel_is_refused(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="workers.agent")
    assert cancel_attempt(72, {"kind": "cancel", "grace_s": 3.0}) == "refused"
    assert refusals(caplog) == ["refusing a cancel message: the message is not signed"]
    # Not even the cancel mark was written.
    assert not attempts.attempt_dir(node.state_dir, 72).exists()


def test_a_signed_stop_asking_for_too_long_a_grace_is_refused(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="workers.agent")
    stop = {"kind": "preempt", "grace_s": 86_400.0, "detail": "by job #3"}
    assert cancel_attempt(*signing.signed_args(CANCEL_ATTEMPT_TASK, [73, stop])) == "refused"
    [refusal] = refusals(caplog)
    assert refusal.startswith("refusing a cancel message: the stop request is invalid:")
    assert "grace_s" in refusal
    assert not attempts.attempt_dir(node.state_dir, 73).exists()


def test_a_node_without_the_key_refuses_everything(
    node: Node, spec_json: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    message = signed_run(spec_json)
    monkeypatch.delenv("TRAINYARD_NODE_SECRET", raising=False)
    monkeypatch.delenv("TRAINYARD_NODE_SECRET_FILE", raising=False)
    assert run_attempt(*message) == "refused"
    assert nothing_started(node, 71)


# ---- bounds: signed, but asking for what the node does not give -------------------------


def test_a_spec_pointing_outside_the_storage_root_is_refused(
    node: Node, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="workers.agent")
    outside = Path("/etc/passwd")
    spec = iris_spec(
        node_name=node.name,
        attempt_id=73,
        checkpoint_dir=tmp_path / "ck",
        data=outside,
        sha256="0" * 64,
    )

    assert run_attempt(*signed_run(spec.to_json())) == "refused"

    assert "outside the storage root" in refusals(caplog)[0]
    assert nothing_started(node, 73)


def test_a_checkpoint_dir_outside_the_checkpoint_root_is_refused(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINYARD_CHECKPOINT_ROOT", str(tmp_path / "checkpoints"))
    spec = iris_spec(node_name=node.name, attempt_id=74, checkpoint_dir=tmp_path / "elsewhere")

    assert run_attempt(*signed_run(spec.to_json())) == "refused"
    assert nothing_started(node, 74)


def test_more_processes_than_slots_are_refused(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINYARD_NODE_CPU_SLOTS", "2")
    spec = iris_spec(
        node_name=node.name, attempt_id=75, checkpoint_dir=tmp_path / "ck", nproc_per_node=3
    )

    assert run_attempt(*signed_run(spec.to_json())) == "refused"
    assert nothing_started(node, 75)


LIMITS = bounds.NodeLimits(
    cpu_slots=4,
    gpu_count=0,
    storage_root=Path("/srv/storage"),
    checkpoint_root=Path("/srv/storage/checkpoints"),
)


CUSTOM: dict[str, Any] = {"architecture": "custom", "code_sha256": "0" * 64, "hparams": {}}


def spec_with(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    spec = iris_spec(
        node_name="n",
        attempt_id=1,
        checkpoint_dir=Path("/srv/storage/checkpoints/job-1"),
        data=Path("/srv/storage/datasets/iris.csv"),
        sha256="0" * 64,
    )
    data = spec.to_json()
    for key, value in changes.items():
        section, _, field = key.partition(".")
        if field:
            data[section] = {**data[section], field: value}
        else:
            data[section] = value
    return data


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({}, None),
        ({"dataset.uri": "file:///srv/storage/../../etc/shadow"}, "outside the storage root"),
        ({"dataset.uri": "file:///srv/storage-other/x.csv"}, "outside the storage root"),
        ({"dataset.uri": "https://example.com/x.csv"}, "not under this node's storage URL"),
        ({"dataset.uri": "file://host/srv/storage/x.csv"}, "only local paths"),
        ({"checkpoint_dir": "/srv/storage/checkpoints/../../x"}, "outside"),
        ({"checkpoint_dir": "relative/path"}, "not an absolute path"),
        ({"placement.nproc_per_node": 5}, "this node has 4 CPU slots"),
        ({"placement.nproc_per_node": 0}, "not a positive integer"),
        ({"placement.nproc_per_node": True}, "not a positive integer"),
        ({"placement.device": "cuda", "placement.nproc_per_node": 1}, "this node has 0 GPUs"),
        ({"placement": None}, "malformed"),
        ({"model": CUSTOM | {"code_uri": "file:///srv/storage/models/net.py"}}, None),
        ({"model": CUSTOM | {"code_uri": "file:///home/me/net.py"}}, "model code"),
        ({"model": CUSTOM | {"code_uri": "file:///srv/storage/../x.py"}}, "outside the storage"),
        ({"model": CUSTOM | {"code_uri": 7}}, "code URI is not a string"),
    ],
)
def test_spec_bounds(tmp_path: Path, changes: dict[str, Any], problem: str | None) -> None:
    found = bounds.spec_problem(spec_with(tmp_path, **changes), LIMITS)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_a_symlink_out_of_the_storage_root_is_outside_it(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    root.mkdir()
    (root / "escape").symlink_to("/etc")
    limits = dataclasses.replace(LIMITS, storage_root=root, checkpoint_root=root)
    spec = spec_with(tmp_path, checkpoint_dir=str(root / "ck"))
    spec["dataset"] = {**spec["dataset"], "uri": (root / "escape" / "passwd").as_uri()}

    found = bounds.spec_problem(spec, limits)
    assert found is not None and "outside the storage root" in found


def test_signing_is_independent_of_key_order() -> None:
    key = b"x" * 32
    a = signing.sign("t", [{"a": 1, "b": [1.5, "z"]}], key=key)
    b = signing.sign("t", [{"b": [1.5, "z"], "a": 1}], key=key)
    assert a == b
    assert signing.signature_problem("t", [{"a": 1, "b": [1.5, "z"]}], a, key=key) is None
    assert signing.signature_problem("t", [{"a": 2, "b": [1.5, "z"]}], a, key=key) is not None


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("s3://bucket/trainyard/datasets/x.csv", None),
        ("s3://bucket/trainyard-other/x.csv", "not under this node's storage URL"),
        ("s3://bucket/trainyard/../secrets/x.csv", "steps out"),
        ("gs://bucket/trainyard/x.csv", "not under this node's storage URL"),
        ("file:///srv/storage/datasets/x.csv", None),
    ],
)
def test_an_object_storage_uri_must_be_under_the_nodes_storage_url(
    tmp_path: Path, uri: str, problem: str | None
) -> None:
    limits = dataclasses.replace(LIMITS, storage_url="s3://bucket/trainyard")

    found = bounds.spec_problem(spec_with(tmp_path, **{"dataset.uri": uri}), limits)

    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
