"""Live telemetry to browsers: report-to-socket latency, and fan-out to many viewers.

Both run the real processes against a scratch database (migrated, dropped at the end) and
stream names of their own: daphne serving `portal.asgi` (one web process), and for `latency`
`manage.py ingest`. Sockets are real WebSocket clients (`websockets`), authenticated with a
personal access token, in this process.

    python -m portal.devservers run -- python bench/live.py latency   # 100 jobs x 10 reports/s
    python -m portal.devservers run -- python bench/live.py fanout    # 1,000 viewers of one job

Each runs once per channel layer (`--layer both`, the default: the web process, ingest and the
bench's own sends on `TRAINYARD_CHANNEL_LAYER=core`, then on `pubsub`, alternating over
`--rounds`), so the layers are compared side by side in one run.

latency: a child process writes each job's steps as the trainer's reporting rank does (a
`StepWriter` appending 72-byte records to the attempt's spool) 10 times a second per job, and
runs one `Shipper` per job, as each attempt's launcher does (tailing the spool every 20 ms and
shipping to Redis); each point's `ts` is the time of the write. One socket per job; a point's
latency is its arrival at the socket minus its `ts` (same machine, same clock).

fanout: 1,000 sockets watch one job. The bench sends `job.metrics` events to the job's group
through the channel layer, as ingest does after a commit, each carrying one point whose `ts`
is the send time; every socket must receive every event, and the latency is arrival - `ts`.
After the last event it waits (up to `--drain`) until every delivery is in or none has come
for 5 s, so a late delivery is counted late, not lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from scratch import ROOT, scratch_database
from tables import table


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def wait_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"daphne did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.2)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")
    )


def make_jobs(count: int) -> tuple[str, list[tuple[int, int]]]:
    from portal.accounts.services import api_token_create
    from portal.jobs.models import Job
    from tests.factories import make_attempt, make_job, make_user

    user = make_user(f"bench-live-{uuid.uuid4().hex[:8]}")
    token = api_token_create(user=user, name="bench", expires_in=timedelta(hours=2)).plaintext
    jobs = []
    for _ in range(count):
        job = make_job(user, state=Job.State.RUNNING)
        jobs.append((job.pk, make_attempt(job).pk))
    return token, jobs


async def open_sockets(url: str, paths: list[str], token: str, origin: str) -> list[Any]:
    """Open every socket, in waves of 10 (each handshake reads PostgreSQL: permission, the
    job's state, the backfill), retrying one that daphne dropped (its connect timeout is 5 s,
    and a loaded 2-core machine misses it now and then)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake

    async def one(path: str) -> Any:
        for attempt in range(5):
            try:
                return await connect(
                    f"{url}{path}",
                    origin=origin,  # type: ignore[arg-type]
                    additional_headers={"Authorization": f"Bearer {token}"},
                    max_queue=None,
                    open_timeout=60,
                )
            except (InvalidHandshake, OSError):
                if attempt == 4:
                    raise
                await asyncio.sleep(1 + attempt)
        raise AssertionError("unreachable")

    sockets: list[Any] = []
    for start_at in range(0, len(paths), 10):
        sockets += await asyncio.gather(*(one(path) for path in paths[start_at : start_at + 10]))
    return sockets


async def collect(ws: Any, into: list[tuple[int, int, float]], stop: asyncio.Event) -> None:
    """(attempt, seq, latency s) for every metric point the socket receives until `stop`."""
    while not stop.is_set():
        try:
            raw = await asyncio.wait_for(ws.recv(), 0.5)
        except TimeoutError:
            continue
        now = time.time()
        message = json.loads(raw)
        if message.get("type") == "metrics":
            for point in message["points"]:
                into.append((point["attempt"], point["seq"], now - point["ts"]))


def report_loop(
    redis_url: str, prefix: str, jobs: list[tuple[int, int]], rate: float, seconds: float
) -> None:
    """The child: per job, the reporting rank's spool writer and the launcher's shipper;
    `rate` steps a second each, for `seconds`."""
    import shutil

    sys.path.insert(0, str(ROOT))
    from tests.workers.support import IRIS, iris_spec
    from workers.shipper import Shipper
    from workers.spool import METRIC_TRAIN, StepWriter

    root = Path(tempfile.mkdtemp(prefix="bench-live-spool-"))
    writers, shippers = [], []
    for job, attempt in jobs:
        directory = root / str(attempt)
        directory.mkdir()
        writers.append(StepWriter(directory, rank=0, local_rank=0))
        shippers.append(
            Shipper(
                spec=iris_spec(
                    node_name="bench",
                    attempt_id=attempt,
                    job_id=job,
                    checkpoint_dir=root,
                    data=IRIS,
                ),
                directory=directory,
                redis_url=redis_url,
                prefix=prefix,
                stream_maxlen=1_000_000,
            )
        )
    period = 1.0 / rate
    begin = time.monotonic()
    seq = 0
    while (elapsed := time.monotonic() - begin) < seconds:
        for writer in writers:
            writer.step(flags=METRIC_TRAIN, seq=seq, step=seq, epoch=0, loss=1.0 / (seq + 1))
        seq += 1
        time.sleep(max(0.0, (seq * period) - (time.monotonic() - begin)))
    shipped = all([shipper.close(timeout=30.0) for shipper in shippers])
    for writer in writers:
        writer.close()
    shutil.rmtree(root, ignore_errors=True)
    print(
        f"  reporter child: {seq} steps per job in {elapsed:.1f} s"
        + ("" if shipped else " (some shippers did not drain)"),
        flush=True,
    )


def latency(
    args: argparse.Namespace, env: dict[str, str], url: str, origin: str, logs: Path
) -> list[str]:
    """One round: the measured row (points, percentiles, points per job received)."""
    token, jobs = make_jobs(args.jobs)
    ingest_log = logs / "ingest.log"
    ingest = start([sys.executable, "manage.py", "ingest", "--consumer", "bench"], env, ingest_log)
    try:
        time.sleep(3)
        paths = [f"/ws/jobs/{job}/" for job, _ in jobs]

        async def run() -> list[list[tuple[int, int, float]]]:
            sockets = await open_sockets(url, paths, token, origin)
            received: list[list[tuple[int, int, float]]] = [[] for _ in sockets]
            stop = asyncio.Event()
            tasks = [
                asyncio.ensure_future(collect(ws, got, stop))
                for ws, got in zip(sockets, received, strict=True)
            ]
            child = multiprocessing.get_context("spawn").Process(
                target=report_loop,
                args=(
                    env["REDIS_URL"],
                    env["TRAINYARD_STREAM_PREFIX"],
                    jobs,
                    args.rate,
                    args.seconds,
                ),
            )
            child.start()
            await asyncio.get_running_loop().run_in_executor(None, child.join)
            await asyncio.sleep(args.drain)  # the last points drain
            stop.set()
            await asyncio.gather(*tasks)
            for ws in sockets:
                await ws.close()
            return received

        received = asyncio.run(run())
    finally:
        ingest.terminate()
        ingest.wait(10)
    warm = args.warm_up
    lat = [late for got in received for (_a, seq, late) in got if seq >= warm]
    per_job = [len({seq for (_a, seq, _l) in got}) for got in received]
    return [
        f"{len(lat):,}",
        *(f"{pct(lat, q) * 1000:.0f} ms" for q in (0.5, 0.9, 0.99)),
        f"{max(lat, default=float('nan')) * 1000:.0f} ms",
        f"{min(per_job)}..{max(per_job)}",
    ]


def latency_header(args: argparse.Namespace) -> tuple[str, list[str]]:
    sent = int(args.rate * args.seconds)
    return (
        f"{args.jobs} jobs x {args.rate:g} reports/s for {args.seconds:g} s "
        f"({args.jobs * args.rate:g} points/s); first {args.warm_up} reports per job not counted",
        [
            "points measured",
            "p50",
            "p90",
            "p99",
            "max",
            f"points per job received (min..max of ~{sent})",
        ],
    )


def fanout(args: argparse.Namespace, layer_name: str, url: str, origin: str) -> list[str]:
    """One round: the measured row (deliveries, complete viewers, percentiles, opening)."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    from portal.jobs.events import job_group

    config: dict[str, Any] = settings.TRAINYARD_CHANNEL_LAYERS[layer_name]

    token, [(job, attempt)] = make_jobs(1)

    async def run() -> tuple[list[list[tuple[int, int, float]]], float]:
        begin = time.perf_counter()
        sockets = await open_sockets(url, [f"/ws/jobs/{job}/"] * args.viewers, token, origin)
        opened = time.perf_counter() - begin
        received: list[list[tuple[int, int, float]]] = [[] for _ in sockets]
        stop = asyncio.Event()
        tasks = [
            asyncio.ensure_future(collect(ws, got, stop))
            for ws, got in zip(sockets, received, strict=True)
        ]
        await asyncio.sleep(2)
        # The web process's layer: the same backend and configuration, so the same groups.
        layer = import_string(config["BACKEND"])(**config["CONFIG"])
        for seq in range(args.events):
            point = {
                "attempt": attempt,
                "seq": seq,
                "split": "train",
                "step": seq,
                "epoch": 0,
                "loss": 0.5,
                "accuracy": None,
                "ts": time.time(),
            }
            await layer.group_send(
                job_group(job), {"type": "job.metrics", "job": job, "points": [point]}
            )
            await asyncio.sleep(1.0 / args.event_rate)
        # Late is not lost: wait until every delivery is in, or nothing has come for 5 s
        # (what is missing then is lost), within `--drain`.
        expected, last, quiet_since = args.viewers * args.events, -1, time.monotonic()
        drain_until = time.monotonic() + args.drain
        while time.monotonic() < drain_until:
            got = sum(len(into) for into in received)
            if got >= expected or (got == last and time.monotonic() - quiet_since > 5):
                break
            if got != last:
                last, quiet_since = got, time.monotonic()
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*tasks)
        for ws in sockets:
            await ws.close()
        return received, opened

    received, opened = asyncio.run(run())
    lat = [late for got in received for (_a, _s, late) in got]
    complete = sum(
        1 for got in received if sorted(s for (_a, s, _l) in got) == list(range(args.events))
    )
    return [
        f"{len(lat):,} of {args.viewers * args.events:,}",
        f"{complete:,} of {args.viewers:,}",
        *(f"{pct(lat, q) * 1000:.0f} ms" for q in (0.5, 0.9, 0.99)),
        f"{max(lat, default=float('nan')) * 1000:.0f} ms",
        f"{opened:.1f} s",
    ]


def fanout_header(args: argparse.Namespace) -> tuple[str, list[str]]:
    return (
        f"{args.viewers:,} viewers of one job on one daphne; "
        f"{args.events} events at {args.event_rate:g}/s",
        ["deliveries", "viewers with every event", "p50", "p90", "p99", "max", "sockets opened in"],
    )


def serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """daphne serving `portal.asgi` (one web process) on a free port, once it listens."""
    port = free_port()
    daphne = start(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "portal.asgi:application",
        ],
        env,
        log,
    )
    wait_port(port, daphne, log)
    return daphne, port


def main() -> None:
    parser = argparse.ArgumentParser(description="live telemetry latency and fan-out")
    parser.add_argument("which", choices=["latency", "fanout"])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="reports per second per job")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warm-up", type=int, default=20, help="reports per job not counted")
    parser.add_argument("--drain", type=float, default=30.0, help="s to wait for the last points")
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--event-rate", type=float, default=2.0)
    parser.add_argument("--layer", choices=["both", "core", "pubsub"], default="both")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every layer, alternating")
    args = parser.parse_args()
    scratch = f"bench_live_{os.getpid()}"
    prefix = f"bench-live-{uuid.uuid4().hex[:6]}"
    logs = Path(tempfile.gettempdir()) / scratch
    logs.mkdir(parents=True, exist_ok=True)
    print(
        f"live {args.which}: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"scratch database {scratch}, logs in {logs}"
    )
    started = time.perf_counter()
    os.environ["TRAINYARD_STREAM_PREFIX"] = prefix
    os.environ.setdefault("TRAINYARD_DEV", "1")
    with scratch_database(scratch):
        daphne = None
        try:
            env = dict(os.environ, DJANGO_SETTINGS_MODULE="portal.settings", PYTHONPATH=str(ROOT))
            layers = ["core", "pubsub"] if args.layer == "both" else [args.layer]
            rows = []
            for round_ in range(args.rounds):
                for layer in layers if round_ % 2 == 0 else layers[::-1]:
                    layer_env = dict(env, TRAINYARD_CHANNEL_LAYER=layer)
                    log = logs / f"daphne-{layer}-{round_}.log"
                    daphne, port = serve(layer_env, log)
                    url, origin = f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"
                    load = os.getloadavg()[0]
                    if args.which == "latency":
                        row = latency(args, layer_env, url, origin, logs)
                    else:
                        row = fanout(args, layer, url, origin)
                    daphne.terminate()
                    daphne.wait(10)
                    daphne = None
                    rows.append([layer, str(round_ + 1), f"{load:.1f}", *row])
                    print(f"  {layer}, round {round_ + 1}: {', '.join(row)}", flush=True)
            title, header = latency_header(args) if args.which == "latency" else fanout_header(args)
            print(f"\n{title}")
            print(table(["layer", "round", "load", *header], rows))
        finally:
            if daphne is not None:
                daphne.terminate()
                daphne.wait(10)
            import redis

            client = redis.Redis.from_url(os.environ["REDIS_URL"])
            keys = ("metrics", "ranks", "logs", "events", "health", "dead")
            client.delete(*[f"{prefix}:{k}" for k in keys])
    print(f"\ntotal {time.perf_counter() - started:.1f} s (scratch database dropped)")


if __name__ == "__main__":
    main()
