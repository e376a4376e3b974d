"""What every-step reporting costs a training loop: steps/s with reporting on, divided by off.

The trainer reports each step by packing one fixed-size record and appending it to its spool
file with one `os.write` (`workers.spool.StepWriter`); the launcher, a separate process, tails
the file and ships it to Redis (`workers.shipper.Shipper`). This measures, in one run:

1. one `report()` (`StepWriter.step`) against nothing and against the old in-process
   `StreamReporter.report` (a deque append, with a flush thread in the same process);
2. a 0.5 ms CPU training step (the Iris MLP, batch 16, Adam) and a 5 ms one (a wider MLP,
   batch 256), each with reporting off, on (a real Shipper in another process shipping to
   Redis while the loop runs), and on with Redis unreachable (a Shipper pointed at a port
   nothing listens on: the spool holds everything, the loop does not notice).

Variants alternate in rounds, the order rotating, so the noise of a shared machine hits each
alike; the numbers are medians over rounds. Compare the ratios, not the absolute times.

    python -m portal.devservers run -- python bench/reporter_overhead.py
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
import torch

# bench/ is the script's directory, so sys.path[0] when run as `python bench/<name>.py`.
from tables import table
from torch import nn

from workers.messages import AttemptSpec, MetricEntry
from workers.reporter import StreamReporter
from workers.shipper import Shipper
from workers.spool import METRIC_TRAIN, STATS, StepWriter


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spec(attempt: int) -> AttemptSpec:
    # The smallest spec the shipper needs: it reads only ids and the placement.
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.workers.support import iris_spec

    return iris_spec(node_name="bench", attempt_id=attempt, checkpoint_dir=Path("/nonexistent"))


def ship_forever(directory: str, redis_url: str, prefix: str, stop: object) -> None:
    """A launcher's shipper in a process of its own, until `stop` (an Event) is set."""
    shipper = Shipper(
        spec=spec(1),
        directory=Path(directory),
        redis_url=redis_url,
        prefix=prefix,
        stream_maxlen=1_000_000,
    )
    stop.wait()  # type: ignore[attr-defined]
    shipper.close(timeout=5.0)


class Step:
    """One optimisation step of an MLP on CPU, as the trainer runs it minus DDP: forward, loss,
    backward, Adam, the batch totals (`tolist`), then the report."""

    def __init__(self, *, inputs: int, hidden: int, batch: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.batch = batch
        self.x = torch.randn(batch * 8, inputs, generator=generator)
        self.y = torch.randint(0, 3, (batch * 8,), generator=generator)
        self.model = nn.Sequential(
            nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 3),
        )  # fmt: skip
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss_fn = nn.CrossEntropyLoss()
        self.step = 0
        self.last = time.perf_counter()

    def __call__(self, writer: StepWriter | None) -> None:
        start = (self.step % 8) * self.batch
        x, y = self.x[start : start + self.batch], self.y[start : start + self.batch]
        self.optimizer.zero_grad(set_to_none=True)
        outputs = self.model(x)
        loss = self.loss_fn(outputs, y)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        with torch.no_grad():
            correct = (outputs.argmax(dim=1) == y).sum()
            totals = torch.stack(
                [loss.detach() * len(y), correct.to(loss.dtype), torch.tensor(float(len(y)))]
            ).double()
        loss_sum, hits, count = totals.tolist()
        if writer is not None:
            # What workers.train.main.Metrics.step does on the reporting rank.
            now = time.perf_counter()
            step_time, self.last = now - self.last, now
            writer.step(
                flags=METRIC_TRAIN | STATS,
                seq=self.step,
                step=self.step,
                epoch=1,
                loss=loss_sum / count,
                accuracy=hits / count,
                step_time_s=step_time,
                samples=len(y),
            )


def per_call(directory: Path, rounds: int, calls: int) -> dict[str, float]:
    writer = StepWriter(directory / "per-call", rank=0, local_rank=0)
    old = StreamReporter(redis_url=f"redis://127.0.0.1:{dead_port()}/0", stream="bench-old")
    entry = MetricEntry(
        job=1, attempt=1, seq=0, split="train", step=0, epoch=1, loss=0.5, accuracy=0.5, ts=0.0
    )

    def new(i: int) -> None:
        writer.step(flags=METRIC_TRAIN | STATS, seq=i, step=i, epoch=1, loss=0.5, accuracy=0.5,
                    step_time_s=0.001, samples=16.0)  # fmt: skip

    variants: dict[str, Callable[[int], None]] = {
        "nothing": lambda i: None,
        "StepWriter.step (report now)": new,
        "StreamReporter.report (before; a thread flushes)": lambda i: old.report(entry),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(rounds):
        for name, call in variants.items():
            begin = time.perf_counter()
            for i in range(calls):
                call(i)
            samples[name].append((time.perf_counter() - begin) / calls)
        del round_
    writer.close()
    old.close(timeout=0.1)
    return {name: statistics.median(values) for name, values in samples.items()}


def training(
    redis_url: str, directory: Path, rounds: int, steps: int, step: Step, label: str
) -> list[list[str]]:
    on_dir, down_dir = directory / f"{label}-on", directory / f"{label}-down"
    on_dir.mkdir()
    down_dir.mkdir()
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    prefix = f"bench-reporter-{os.getpid()}-{label}"
    shippers = [
        context.Process(target=ship_forever, args=(str(on_dir), redis_url, prefix, stop)),
        context.Process(
            target=ship_forever,
            args=(str(down_dir), f"redis://127.0.0.1:{dead_port()}/0", prefix, stop),
        ),
    ]
    for process in shippers:
        process.start()
    writers = {
        "off": None,
        "off again (noise gauge)": None,
        "on (shipped to Redis)": StepWriter(on_dir, rank=0, local_rank=0),
        "on, Redis unreachable": StepWriter(down_dir, rank=0, local_rank=0),
    }
    for _ in range(50):
        step(None)
    samples: dict[str, list[float]] = {name: [] for name in writers}
    names = list(writers)
    try:
        for round_ in range(rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                writer = writers[name]
                begin = time.perf_counter()
                for _ in range(steps):
                    step(writer)
                samples[name].append(steps / (time.perf_counter() - begin))
    finally:
        stop.set()
        for process in shippers:
            process.join(30)
    client = redis.Redis.from_url(redis_url)
    shipped = client.xlen(f"{prefix}:metrics")
    client.delete(f"{prefix}:metrics", f"{prefix}:ranks")
    client.close()
    expected = rounds * steps
    if shipped != expected:
        raise RuntimeError(f"{label}: shipped {shipped} of {expected} reported steps")
    off = statistics.median(samples["off"])
    return [
        [
            f"{label} {name}",
            f"{statistics.median(values):,.0f}",
            f"{statistics.median(values) / off:.4f}",
        ]
        for name, values in samples.items()
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="training overhead of every-step reporting")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=1.0, help="per variant per round")
    args = parser.parse_args(argv)
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        raise SystemExit("REDIS_URL is not set: run under `python -m portal.devservers run --`")
    torch.set_num_threads(1)  # torchrun's OMP_NUM_THREADS=1
    print(f"reporter_overhead: {os.cpu_count()} CPUs, torch {torch.__version__}, 1 torch thread")
    with tempfile.TemporaryDirectory(prefix="bench-spool-") as tmp:
        directory = Path(tmp)
        calls = per_call(directory, args.rounds, args.calls)
        base = calls["nothing"]
        print("\n1. one report() call (median over rounds)")
        print(
            table(
                ["variant", "per call", "over nothing"],
                [
                    [name, f"{value * 1e6:.2f} us", f"{(value - base) * 1e6:.2f} us"]
                    for name, value in calls.items()
                ],
            )
        )
        rows = []
        for label, step in (
            ("0.5 ms step:", Step(inputs=4, hidden=32, batch=16)),
            ("5 ms step:", Step(inputs=256, hidden=1024, batch=256)),
        ):
            for _ in range(20):
                step(None)
            begin = time.perf_counter()
            for _ in range(50):
                step(None)
            per_step = (time.perf_counter() - begin) / 50
            steps = max(50, int(args.seconds / per_step))
            print(
                f"\n{label} measured {per_step * 1e3:.2f} ms; {steps} steps per variant per round"
            )
            rows += training(redis_url, directory, args.rounds, steps, step, label.rstrip(":"))
        print("\n2. training steps/s, every step reported (ratio to off; target >= 0.99)")
        print(table(["variant", "steps/s (median)", "ratio to off"], rows))


if __name__ == "__main__":
    main()
