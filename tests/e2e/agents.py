"""More node agents for the end-to-end stack: each is the process table's `node` process,
with its own name, queue and state directory, under a supervisor of its own so a test can
kill it (`kill -9`, with everything it started) and start it again."""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from portal.catalog.models import Dataset, ModelArchitecture
from portal.ops.processes import NODE, ProcessSpec, process_table
from portal.ops.supervisor import ProcessSupervisor


class NodeAgent:
    """One `python -m workers.node` (optionally behind a prefix such as `ip netns exec ns`)."""

    def __init__(
        self,
        *,
        name: str,
        state_dir: Path,
        env: Mapping[str, str],
        prefix: Sequence[str] = (),
    ) -> None:
        self.name = name
        [spec] = process_table(
            python=sys.executable,
            web_host="127.0.0.1",
            web_port=0,
            node_name=name,
            state_dir=state_dir,
            include={NODE},
        )
        self.spec = ProcessSpec(NODE, (*prefix, *spec.argv), spec.env)
        self.node_state_dir = Path(spec.env["TRAINYARD_NODE_STATE_DIR"])
        self.log_dir = state_dir / "logs" / name
        self.env = dict(env)
        self._supervisor: ProcessSupervisor | None = None
        self._runs = 0

    def start(self) -> None:
        self._runs += 1
        self._supervisor = ProcessSupervisor(
            [self.spec], log_dir=self.log_dir / f"run-{self._runs}", env=self.env
        )
        self._supervisor.start()

    def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.stop()
            self._supervisor = None

    def processes(self) -> list[psutil.Process]:
        """The agent and everything it runs: its launchers, their torchrun and the ranks (each
        in a session of its own, so found by their command lines too)."""
        found: dict[int, psutil.Process] = {}
        if self._supervisor is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                agent = psutil.Process(self._supervisor.pid(NODE))
                found[agent.pid] = agent
                for child in agent.children(recursive=True):
                    found[child.pid] = child
        marker = str(self.node_state_dir)
        for proc in psutil.process_iter(["cmdline", "status"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.info["status"] != psutil.STATUS_ZOMBIE and marker in cmdline:
                found[proc.pid] = proc
        return list(found.values())

    def kill9(self) -> int:
        """SIGKILL the agent and every process of its attempts at once, as a machine that
        loses power; returns how many processes were killed."""
        victims = self.processes()
        for proc in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(victims, timeout=10)
        self.stop()
        return len(victims)

    def tail(self, lines: int = 40) -> str:
        logs = sorted(self.log_dir.glob("run-*/node.log"))
        text = "\n".join(log.read_text(errors="replace") for log in logs)
        return f"--- node agent {self.name} ---\n" + "\n".join(text.splitlines()[-lines:])


def wait_until(predicate: object, *, timeout: float, interval: float = 0.2) -> float | None:
    """Seconds until `predicate()` held, or None if it did not within `timeout`."""
    assert callable(predicate)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    return None


class TcpForwarder:
    """Accepts on `listen` and relays each connection to `target`: how processes in a network
    namespace reach the stack's Redis, which listens on the root namespace's loopback."""

    def __init__(self, *, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(listen)
        self.port: int = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="forwarder", daemon=True)

    def __enter__(self) -> TcpForwarder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.close()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=10)
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def others_gone(*names: str) -> bool:
    """Whether no node but `names` is online. An agent stopped after a test's flush may
    have sent heartbeats that ingest stores later, bringing its row back online for a few
    seconds until the reaper takes it offline: a job must not be placed on such a ghost."""
    from portal.cluster.models import Node

    online = Node.objects.filter(state=Node.State.ONLINE).values_list("name", flat=True)
    return set(online) <= set(names)


def iris_2x2_body(name: str) -> dict[str, Any]:
    """The Iris job as 2 nodes x 2 processes, for the multi-node tests."""
    return {
        "name": name,
        "dataset": Dataset.objects.get(slug="iris").pk,
        "model": ModelArchitecture.objects.get(slug="mlp").pk,
        "hyperparameters": {"hidden_sizes": [16, 16], "activation": "relu", "dropout": 0.0},
        "training": {
            "epochs": 40,
            "batch_size": 16,
            "learning_rate": 0.01,
            "optimizer": "adam",
            "loss": "cross_entropy",
            "seed": 7,
        },
        "resources": {"nodes": 2, "procs_per_node": 2},
    }
