"""The node agent: `python -m workers.node --name NAME`.

One process: the health reporter and the attempt sweeper in threads, and the Celery worker
that consumes the node's queue in the foreground. The worker uses a thread pool because its
tasks only claim a directory, verify a dataset and start a launcher; training runs in
processes of their own. The sweeper lives in this process because it must know which
attempts the worker's threads are still starting (see `workers.agent.attempts_sweep`).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence

from workers import config
from workers.health import HealthReporter, NvmlProbe
from workers.messages import node_queue


def worker_argv(name: str) -> list[str]:
    return [
        "worker",
        "-Q",
        node_queue(name),
        "-n",
        f"node@{name}",
        "--pool",
        "threads",
        "-c",
        "4",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "INFO",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.node")
    parser.add_argument("--name", help="this node's name (default: TRAINYARD_NODE_NAME)")
    args = parser.parse_args(argv)
    if args.name:
        # The tasks, and the launchers they start, read the name from the environment.
        os.environ["TRAINYARD_NODE_NAME"] = config.validate_node_name(args.name)
    name = config.node_name()
    state_dir = config.node_state_dir(name)
    state_dir.mkdir(parents=True, exist_ok=True)
    # Pin the resolved path, so a launcher started from another cwd finds the same directory.
    os.environ["TRAINYARD_NODE_STATE_DIR"] = str(state_dir)

    from workers.agent import sweep_forever
    from workers.celery import app

    probe = NvmlProbe()
    health = HealthReporter.from_env(name, probe=probe)
    thread = health.start()
    # Its own thread: killing an orphaned gang must never delay a heartbeat.
    sweeper = threading.Thread(
        target=sweep_forever,
        args=(health.stop, config.heartbeat_s()),
        name="sweeper",
        daemon=True,
    )
    sweeper.start()
    try:
        app.worker_main(worker_argv(name))
    finally:
        health.stop.set()
        thread.join(timeout=5.0)
        sweeper.join(timeout=5.0)
        probe.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
