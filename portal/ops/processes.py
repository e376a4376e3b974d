"""The processes that make up one Trainyard machine, as data.

`python -m portal.devservers up` (and so `python manage.py up` and `bin/dev run`) starts exactly
this table under the `ProcessSupervisor`, and the end-to-end tests start it too, so what a developer
runs and what the tests exercise cannot drift apart. `compose.yaml` runs the same programs as
services; tests/ops checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent
MANAGE_PY = BASE_DIR / "manage.py"

WEB = "web"
CONTROL = "control"
BEAT = "beat"
INGEST = "ingest"
NODE = "node"
PREDICT = "predict"
ALL_PROCESSES: tuple[str, ...] = (WEB, CONTROL, BEAT, INGEST, NODE, PREDICT)


@dataclass(frozen=True)
class ProcessSpec:
    """One long-running process: a name for its log prefix, its argv, and its extra env."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


def process_table(
    *,
    python: str,
    web_host: str,
    web_port: int,
    node_name: str,
    state_dir: Path,
    include: Collection[str] = ALL_PROCESSES,
) -> list[ProcessSpec]:
    """The processes of a whole Trainyard on one machine, in start order.

    Every program runs through `python` (the venv's interpreter) with `-m`, so nothing depends
    on which scripts happen to be on PATH.
    """
    unknown = set(include) - set(ALL_PROCESSES)
    if unknown:
        raise ValueError(f"unknown processes {sorted(unknown)}; choose from {ALL_PROCESSES}")
    # Line-buffered output, so the supervisor's prefixed log shows lines as they happen.
    unbuffered = {"PYTHONUNBUFFERED": "1"}
    table = [
        ProcessSpec(
            WEB,
            (
                python,
                "-m",
                "daphne",
                "-b",
                web_host,
                "-p",
                str(web_port),
                "portal.asgi:application",
            ),
            unbuffered,
        ),
        ProcessSpec(
            CONTROL,
            (
                python,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "-Q",
                "control",
                "-c",
                "2",
                "-n",
                "control@%h",
                "-l",
                "INFO",
            ),
            unbuffered,
        ),
        ProcessSpec(
            BEAT,
            (
                python,
                "-m",
                "celery",
                "-A",
                "portal",
                "beat",
                "-l",
                "INFO",
                "--schedule",
                str(state_dir / "celerybeat-schedule"),
            ),
            unbuffered,
        ),
        ProcessSpec(INGEST, (python, str(MANAGE_PY), "ingest"), unbuffered),
        # Predictions for registered model versions (`portal.registry.tasks`): one process,
        # one at a time, so its cache of loaded models is the only copy in memory. Never the
        # web process: it loads weights and runs torch.
        ProcessSpec(
            PREDICT,
            (
                python,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "-Q",
                "predict",
                "-c",
                "1",
                "-n",
                "predict@%h",
                "-l",
                "INFO",
            ),
            unbuffered,
        ),
        ProcessSpec(
            NODE,
            (python, "-m", "workers.node", "--name", node_name),
            {
                **unbuffered,
                # The node's attempts and cache live with the rest of this machine's state, so
                # starting over with a fresh state directory (and so a fresh database, whose
                # attempt ids start again at 1) never meets the old attempts' directories.
                "TRAINYARD_NODE_STATE_DIR": str(state_dir / f"node-{node_name}"),
            },
        ),
    ]
    return [spec for spec in table if spec.name in include]
