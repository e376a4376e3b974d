"""What metric reporting costs a training loop: the non-blocking reporter vs a synchronous XADD.

The trainer's claim is that training never waits on Redis: `StreamReporter.report()` only
encodes the payload and appends it to an in-memory buffer, and a background thread does the
network work. This measures that claim side by side in one process:

1. the cost of one `report()` call: nothing (the loop and the payload alone), the reporter,
   and a synchronous `redis.Redis.xadd` per metric (what a naive trainer would write);
2. a simulated training step (the Iris-sized MLP, batch 16, Adam, on CPU, one metric report
   per step as rank 0 does) with (a) no reporting, (b) the reporter, (c) a synchronous XADD;
3. the same with Redis unreachable (a port nothing listens on) and hung (a socket that accepts
   connections and never answers): the reporter should still cost next to nothing, while a
   synchronous client raises or blocks.

Variants run in alternating rounds, the order rotating each round, so the noise of a shared
machine hits every variant alike; the numbers are medians over rounds. The ratios are what to
compare, not the absolute times.

    . /work/devstate/env.sh && python bench/reporter_overhead.py
    python -m portal.devservers run -- python bench/reporter_overhead.py   # embedded Redis
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
import torch
from redis.backoff import NoBackoff
from redis.retry import Retry

# bench/ is the script's directory, so sys.path[0] when run as `python bench/<name>.py`.
from tables import table
from torch import nn

from workers.messages import MetricEntry, encode
from workers.reporter import StreamReporter

Report = Callable[[MetricEntry], None]


# ---- helpers ---------------------------------------------------------------------------------


def metric(seq: int) -> MetricEntry:
    """An entry like the trainer's, built as it builds one."""
    return MetricEntry(
        job=1,
        attempt=1,
        seq=seq,
        split="train",
        step=seq,
        epoch=1 + seq // 8,
        loss=1.0 / (seq + 1),
        accuracy=0.5,
        ts=time.time(),
    )


def nothing(_entry: MetricEntry) -> None:
    return None


def encode_only(entry: MetricEntry) -> None:
    """The reporter's own first step, alone: a control for what encoding costs in the loop."""
    encode(entry)


def sync_xadd(client: redis.Redis, stream: str) -> Report:
    """One round trip per metric, the way a trainer without a reporter would write it."""

    def report(entry: MetricEntry) -> None:
        data = encode(entry)
        client.xadd(stream, {"data": data}, maxlen=100_000, approximate=True)

    return report


def catching(report: Report) -> Report:
    """A naive trainer that at least survives Redis errors (and counts them)."""

    def guarded(entry: MetricEntry) -> None:
        try:
            report(entry)
        except redis.RedisError:
            guarded.errors += 1  # type: ignore[attr-defined]

    guarded.errors = 0  # type: ignore[attr-defined]
    return guarded


def dead_port() -> int:
    """A port on 127.0.0.1 that refuses connections (bound once, released, nobody listening)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return port


@contextmanager
def hung_server() -> Iterator[int]:
    """A port whose kernel completes the TCP handshake but whose server never reads or replies:
    what a frozen Redis or a half-dead network path looks like to a client."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def median(values: list[float]) -> float:
    return statistics.median(values)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f} µs"


# ---- 1. one report() call ---------------------------------------------------------------------


def time_calls(report: Report, calls: int, start_seq: int) -> float:
    """Seconds per call, payload construction included."""
    begin = time.perf_counter()
    for seq in range(start_seq, start_seq + calls):
        report(metric(seq))
    return (time.perf_counter() - begin) / calls


def per_call(redis_url: str, stream: str, rounds: int, calls: int) -> dict[str, float]:
    client = redis.Redis.from_url(redis_url)
    sync = sync_xadd(client, f"{stream}:sync")
    names = ["nothing", "reporter", "sync XADD"]
    samples: dict[str, list[float]] = {name: [] for name in names}
    delivered: list[float] = []
    seq = 0
    try:
        for round_ in range(rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                if name == "reporter":
                    # A fresh reporter each round, closed inside the timed window: "until
                    # delivered" charges every entry's full cost, the background thread's
                    # encoding and round trips included, and leaves no flush running into
                    # the next variant's window.
                    reporter = StreamReporter(redis_url=redis_url, stream=f"{stream}:reporter")
                    begin = time.perf_counter()
                    samples[name].append(time_calls(reporter.report, calls, seq))
                    if not reporter.close(timeout=10.0):
                        raise RuntimeError("the reporter did not deliver everything")
                    delivered.append((time.perf_counter() - begin) / calls)
                else:
                    samples[name].append(
                        time_calls(nothing if name == "nothing" else sync, calls, seq)
                    )
                seq += calls
    finally:
        client.delete(f"{stream}:reporter", f"{stream}:sync")
        client.close()
    result = {name: median(values) for name, values in samples.items()}
    result["reporter, until delivered"] = median(delivered)
    return result


# ---- 2. a training step -----------------------------------------------------------------------


class Step:
    """One optimisation step of the Iris MLP (4 -> 32 -> 32 -> 3, batch 16), as the trainer
    runs it, minus DDP: forward, loss, backward, Adam, the batch totals, and one report."""

    def __init__(self, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(120, 4, generator=generator)
        self.y = torch.randint(0, 3, (120,), generator=generator)
        self.model = nn.Sequential(
            nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3)
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-2)
        self.loss_fn = nn.CrossEntropyLoss()
        self.step = 0

    def __call__(self, report: Report | None) -> None:
        start = (self.step * 16) % 112
        x, y = self.x[start : start + 16], self.y[start : start + 16]
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
        if report is not None:
            report(
                MetricEntry(
                    job=1,
                    attempt=1,
                    seq=self.step,
                    split="train",
                    step=self.step,
                    epoch=1,
                    loss=loss_sum / count,
                    accuracy=hits / count,
                    ts=time.time(),
                )
            )


@dataclass(frozen=True)
class Fresh:
    """A new reporter each round, closed inside the round's timed window."""

    redis_url: str
    stream: str

    def make(self) -> StreamReporter:
        return StreamReporter(redis_url=self.redis_url, stream=self.stream)


Variant = Report | Fresh | None


def step_loop(variants: dict[str, Variant], rounds: int, steps: int) -> dict[str, float]:
    """Median over rounds of the mean step time of each variant.

    A `Fresh` variant gives two results: `name`, the steps alone (what the training loop sees
    while the background thread works next to it), and `name + ", incl. flush"`, the steps plus
    `close()`, which charges the round with delivering everything it reported.
    """
    model_step = Step()
    for _ in range(50):  # warm up autograd and the allocator
        model_step(None)
    samples: dict[str, list[float]] = {}
    names = list(variants)
    for round_ in range(rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            variant = variants[name]
            reporter = variant.make() if isinstance(variant, Fresh) else None
            report = reporter.report if reporter is not None else variant
            assert not isinstance(report, Fresh)
            begin = time.perf_counter()
            for _ in range(steps):
                model_step(report)
            samples.setdefault(name, []).append((time.perf_counter() - begin) / steps)
            if reporter is not None:
                if not reporter.close(timeout=10.0):
                    raise RuntimeError("the reporter did not deliver everything")
                samples.setdefault(f"{name}, incl. flush", []).append(
                    (time.perf_counter() - begin) / steps
                )
    return {name: median(values) for name, values in samples.items()}


def training(redis_url: str, stream: str, rounds: int, steps: int) -> dict[str, float]:
    client = redis.Redis.from_url(redis_url)
    try:
        return step_loop(
            {
                "(a) no reporting": None,
                # The same as (a): how far apart two identical variants land is the noise.
                "(a2) no reporting again (noise gauge)": None,
                "(a') encode only, no reporter": encode_only,
                "(b) reporter": Fresh(redis_url, f"{stream}:reporter"),
                "(c) sync XADD": sync_xadd(client, f"{stream}:sync"),
            },
            rounds,
            steps,
        )
    finally:
        client.delete(f"{stream}:reporter", f"{stream}:sync")
        client.close()


# ---- 3. Redis unreachable ---------------------------------------------------------------------


def blocked_for(calls: dict[str, Callable[[], None]], limit: float) -> dict[str, tuple[float, str]]:
    """Run each call in its own daemon thread, all at once; how long each took (capped at
    `limit`) and how it ended. A call still blocked at the limit is left behind."""
    results: dict[str, tuple[float, str]] = {}
    begin = time.perf_counter()

    def target(name: str, call: Callable[[], None]) -> None:
        try:
            call()
        except redis.RedisError as exc:
            results[name] = (time.perf_counter() - begin, type(exc).__name__)
        else:
            results[name] = (time.perf_counter() - begin, "returned")

    threads = [
        threading.Thread(target=target, args=(name, call), daemon=True)
        for name, call in calls.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, limit - (time.perf_counter() - begin)))
    for name in calls:
        results.setdefault(name, (limit, f"still blocked after {limit:.0f} s"))
    return results


def one_xadd(client: redis.Redis, stream: str) -> Callable[[], None]:
    report = sync_xadd(client, stream)
    return lambda: report(metric(0))


def unreachable(rounds: int, steps: int, calls: int) -> tuple[list[list[str]], list[list[str]]]:
    down_port = dead_port()
    down_url = f"redis://127.0.0.1:{down_port}/0"
    stream = "bench-down:metrics"
    rows: list[list[str]] = []
    with hung_server() as hung_port:
        hung_url = f"redis://127.0.0.1:{hung_port}/0"
        # Long-lived, like the trainer's: after the first round their buffers are full and
        # every report() also drops the oldest entry.
        refused = StreamReporter(redis_url=down_url, stream=stream)
        hung = StreamReporter(redis_url=hung_url, stream=stream)
        # Retries off and 50 ms timeouts: the most forgiving synchronous client there is, in
        # a trainer that catches the error and carries on.
        no_retry = Retry(NoBackoff(), 0)
        quick = {"socket_timeout": 0.05, "socket_connect_timeout": 0.05, "retry": no_retry}
        quick_refused = catching(sync_xadd(redis.Redis.from_url(down_url, **quick), stream))
        quick_hung = catching(sync_xadd(redis.Redis.from_url(hung_url, **quick), stream))

        per_call: dict[str, Report] = {
            "nothing": nothing,
            "reporter, refused": refused.report,
            "reporter, hung": hung.report,
            "sync XADD, refused, caught": quick_refused,
        }
        samples: dict[str, list[float]] = {name: [] for name in per_call}
        names = list(per_call)
        for round_ in range(rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                samples[name].append(time_calls(per_call[name], calls, round_ * calls))
        base = median(samples["nothing"])
        for name, values in samples.items():
            value = median(values)
            rows.append([f"report(): {name}", us(value), f"{value / base:.1f}x"])

        step = step_loop(
            {
                "(a) no reporting": None,
                "(b) reporter, refused": refused.report,
                "(b) reporter, hung": hung.report,
                "(c) sync XADD, refused, caught": quick_refused,
            },
            rounds,
            steps,
        )
        # Hung: every step waits out the whole 50 ms timeout, so a few steps say enough.
        step |= step_loop({"(c) sync XADD, hung, 50 ms timeout, caught": quick_hung}, 1, 5)
        base = step["(a) no reporting"]
        for name, value in step.items():
            rows.append([f"step: {name}", us(value), f"{value / base:,.3f}"])
        print(
            f"  the reporters' buffers stay bounded: refused {refused.pending} pending, "
            f"{refused.dropped} dropped; hung {hung.pending} pending, {hung.dropped} dropped"
        )

        # What a trainer that builds a client with the library's defaults gets from one XADD.
        # redis-py's constructor and from_url differ in their default retries.
        blocked = blocked_for(
            {
                "Redis(host, port), refused": one_xadd(
                    redis.Redis(host="127.0.0.1", port=down_port), stream
                ),
                "Redis.from_url(url), refused": one_xadd(redis.Redis.from_url(down_url), stream),
                "Redis(host, port), hung": one_xadd(
                    redis.Redis(host="127.0.0.1", port=hung_port), stream
                ),
                "Redis.from_url(url), hung": one_xadd(redis.Redis.from_url(hung_url), stream),
            },
            limit=6.5,
        )
        sync_rows = [
            [f"one XADD, {name}", f"{elapsed:.3f} s", outcome]
            for name, (elapsed, outcome) in blocked.items()
        ]
        # Their threads hold nothing the caller waits for; stop them without waiting long.
        refused.close(timeout=0.1)
        hung.close(timeout=0.1)
    return rows, sync_rows


# ---- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="reporter overhead vs synchronous XADD")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000, help="report() calls per round")
    parser.add_argument("--steps", type=int, default=700, help="training steps per round")
    args = parser.parse_args()

    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        raise SystemExit("REDIS_URL is not set: source /work/devstate/env.sh or use devservers")
    # torchrun sets OMP_NUM_THREADS=1 for several processes per node; one intra-op thread also
    # keeps a 16-row matmul from fighting the reporter's thread for the second core.
    torch.set_num_threads(1)
    # The reporters pointed at a dead Redis log their give-up at close; not news here.
    logging.getLogger("workers.reporter").setLevel(logging.ERROR)
    stream = f"bench-reporter-{os.getpid()}"
    started = time.perf_counter()
    print(f"reporter_overhead: {os.cpu_count()} CPUs, torch {torch.__version__}, 1 torch thread")
    print(f"{args.rounds} rounds; per variant per round {args.calls} calls, {args.steps} steps")

    print("\n1. one report() call (median over rounds; building the payload included)")
    calls = per_call(redis_url, stream, args.rounds, args.calls)
    base = calls["nothing"]
    rows = [
        [name, us(value), us(value - base), f"{value / base:.1f}x"] for name, value in calls.items()
    ]
    print(table(["variant", "per call", "over nothing", "ratio"], rows))

    print("\n2. training step: Iris-sized MLP, batch 16, Adam, CPU, one report per step")
    steps = training(redis_url, stream, args.rounds, args.steps)
    a = steps["(a) no reporting"]
    rows = [
        [name, us(value), f"{value / a:.3f}", f"{us(value - a)} ({100 * (value / a - 1):+.1f}%)"]
        for name, value in steps.items()
    ]
    print(table(["variant", "step time", "ratio to (a)", "added per step"], rows))

    print("\n3. Redis unreachable (refused: nothing listens; hung: accepts, never answers)")
    rows, sync_rows = unreachable(args.rounds, args.steps, args.calls)
    print(table(["variant", "time", "ratio to nothing / (a)"], rows))
    print()
    print(table(["naive synchronous client, defaults", "blocked for", "outcome"], sync_rows))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
