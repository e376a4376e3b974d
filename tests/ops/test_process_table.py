"""The process table: what `manage.py up` (and the end-to-end tests) start on one machine."""

from __future__ import annotations

from pathlib import Path

from portal.ops.processes import NODE, process_table


def test_the_node_keeps_its_attempts_under_the_state_dir(tmp_path: Path) -> None:
    # A fresh state dir means a fresh database whose attempt ids start again at 1: the node's
    # attempt directories must start afresh with it, not linger in the working directory.
    [node] = process_table(
        python="/venv/bin/python",
        web_host="127.0.0.1",
        web_port=8000,
        node_name="gpu-01",
        state_dir=tmp_path / "state",
        include=[NODE],
    )
    assert node.env["TRAINYARD_NODE_STATE_DIR"] == str(tmp_path / "state" / "node-gpu-01")
    assert node.env["PYTHONUNBUFFERED"] == "1"
