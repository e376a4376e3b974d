"""Start latency: from submitting a job to its first training step, against a bare torchrun.

    python -m portal.devservers run -- python bench/start_latency.py [--runs 10]

Starts a whole Trainyard (web, control worker, beat, ingest, one node agent with 2 CPU slots,
the processes of `manage.py up`) on a scratch database, then alternates, `--runs` times:

- **job**: POST the Iris job (1 epoch, 2 CPU ranks) to `/api/v1/jobs/` and take the time from
  just before the request to the trainer's `first_step` phase (the node's own timestamp, so
  polling the database for it adds nothing);
- **bare**: `torchrun --standalone --nproc-per-node 2 -m workers.train` of the very spec that
  job ran (its `spec.json`, with a fresh checkpoint directory), from just before `Popen` to
  the first metric point's timestamp on the stream.

Each waits for the previous run to end, so they never share the 2 cores. The first job after
the stack starts is reported on its own (cold caches, first imports), then the medians, their
difference (the target: at most 0.5 s) and each phase's median share of the job's time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

# bench/ is the script's directory, so sys.path[0] when run as `python bench/<name>.py`.
from scratch import scratch_database
from tables import table

# Segments that the bare torchrun has too (from torchrun's start to the first step).
AFTER_TORCHRUN = {"rendezvous", "to first step"}


def iris_job(dataset_id: int, model_id: int) -> dict[str, Any]:
    return {
        "name": "start latency",
        "dataset": dataset_id,
        "model": model_id,
        "hyperparameters": {"hidden_sizes": [16, 16]},
        "training": {"epochs": 1, "batch_size": 16, "learning_rate": 0.01, "seed": 7},
        "resources": {"nodes": 1, "procs_per_node": 2},
    }


def wait_until(predicate: Any, *, timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")


class Bench:
    def __init__(self, *, base_url: str, token: str, node_state: Path, body: dict[str, Any]):
        self.base_url, self.token, self.node_state, self.body = base_url, token, node_state, body

    def job(self) -> tuple[float, dict[str, float], Path]:
        """Submit one job; seconds to its first step, each phase's seconds, its spec.json."""
        from portal.jobs.models import Attempt, AttemptPhase, Job
        from portal.jobs.phases import attempt_marks, phase_segments

        for _ in range(60):
            started = time.time()
            response = httpx.post(
                f"{self.base_url}/api/v1/jobs/",
                json=self.body,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=60,
            )
            # 503: the control worker has not started yet (the dry run found no one).
            if response.status_code != 503:
                break
            time.sleep(1)
        response.raise_for_status()
        job_id = response.json()["id"]
        first = wait_until(
            lambda: (
                AttemptPhase.objects.filter(attempt__job_id=job_id, phase="first_step")
                .values_list("at", flat=True)
                .first()
            ),
            timeout=120,
            what=f"job {job_id}'s first step",
        )
        wait_until(
            lambda: Job.objects.filter(pk=job_id, state__in=Job.TERMINAL).exists(),
            timeout=120,
            what=f"job {job_id} to finish",
            interval=0.1,
        )
        job = Job.objects.get(pk=job_id)
        assert job.state == Job.State.SUCCEEDED, job.state_reason
        attempt = Attempt.objects.prefetch_related("phases").get(job_id=job_id)
        # The job's own submission time, not the request's: queued starts at the commit.
        marks = attempt_marks(attempt, queued_at=job.created_at)
        segments = {s.label: s.seconds for s in phase_segments(marks) if s.phase != "first_step"}
        segments = {"submit (API, dry run)": (job.created_at.timestamp() - started), **segments}
        segments.pop("finishing", None)
        spec = self.node_state / "attempts" / str(attempt.pk) / "spec.json"
        return first.timestamp() - started, segments, spec

    def bare(self, spec_path: Path, redis_url: str, scratch: Path) -> float:
        """torchrun of the same trainer and spec; seconds to its first metric point."""
        from workers.launcher import LaunchSettings, torchrun_command, torchrun_env
        from workers.messages import AttemptSpec
        from workers.spool import STEP, steps_file, unpack_steps

        data = json.loads(spec_path.read_text())
        data["checkpoint_dir"] = str(scratch / uuid.uuid4().hex)
        spec = AttemptSpec.from_json(data)
        path = scratch / f"spec-{uuid.uuid4().hex}.json"
        path.write_text(spec.dumps())
        prefix = f"bench-bare-{os.getpid()}"
        settings = LaunchSettings(
            redis_url=redis_url,
            stream_prefix=prefix,
            # A state directory of its own: the job's attempt already wrote its step spool under
            # the node's, and reading that would time the job's first step, not this one's.
            state_dir=scratch / f"bare-state-{uuid.uuid4().hex}",
            cancel_grace_s=5.0,
            ifname=None,
            stream_maxlen=100_000,
            address="127.0.0.1",
            rendezvous_timeout_s=120.0,
            log_max_bytes=64 * 1024 * 1024,
            log_max_lines=1_000_000,
            stats_interval_s=1.0,
        )
        # No launcher ships it: the first step is the first record of rank 0's step spool.
        command = torchrun_command(spec, path, settings)
        env = torchrun_env(spec, settings, os.environ)
        telemetry = Path(env["TRAINYARD_TELEMETRY_DIR"])
        output = path.with_suffix(".log").open("wb")
        started = time.time()
        proc = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        steps = steps_file(telemetry, 0)
        records: list[Any] = []
        while not records:
            time.sleep(0.005)
            if steps.exists():
                records = unpack_steps(steps.read_bytes()[: STEP.size])
            if not records and proc.poll() is not None:
                raise SystemExit(f"the bare torchrun failed: {path.with_suffix('.log')}")
        proc.wait(timeout=120)
        output.close()
        return float(records[0].ts) - started


def main() -> None:
    parser = argparse.ArgumentParser(description="submit to first step vs a bare torchrun")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        raise SystemExit(
            "REDIS_URL must be set: "
            "python -m portal.devservers run -- python bench/start_latency.py"
        )
    scratch_db = f"bench_start_{os.getpid()}"
    state = Path(tempfile.mkdtemp(prefix="bench-start-"))
    node_name = f"bench-{uuid.uuid4().hex[:6]}"
    env_updates = {
        "TRAINYARD_STATE_DIR": str(state),
        "TRAINYARD_STORAGE_ROOT": str(state / "storage"),
        "TRAINYARD_NODE_CPU_SLOTS": "2",
        "TRAINYARD_STREAM_PREFIX": f"bench-start-{os.getpid()}",
        "TRAINYARD_DEV": "1",
        "TRAINYARD_SUBMIT_RATE": "off",
    }
    os.environ.update(env_updates)
    print(f"start_latency: {os.cpu_count()} CPUs, {args.runs} runs, scratch database {scratch_db}")
    with scratch_database(scratch_db):
        run(args, redis_url, state, node_name)


def run(args: argparse.Namespace, redis_url: str, state: Path, node_name: str) -> None:
    from portal.accounts.services import api_token_create
    from portal.catalog.models import Dataset, ModelArchitecture
    from portal.catalog.services import catalog_ensure_builtins
    from portal.cluster.models import Node
    from portal.devservers import free_port
    from portal.ops.processes import BEAT, CONTROL, INGEST, NODE, WEB, process_table
    from portal.ops.supervisor import ProcessSupervisor
    from tests.factories import make_user

    catalog_ensure_builtins()
    user = make_user("bench")
    token = api_token_create(user=user, name="bench").plaintext
    body = iris_job(
        Dataset.objects.get(slug="iris").pk, ModelArchitecture.objects.get(slug="mlp").pk
    )
    port = free_port()
    specs = process_table(
        python=sys.executable,
        web_host="127.0.0.1",
        web_port=port,
        node_name=node_name,
        state_dir=state,
        include=(WEB, CONTROL, BEAT, INGEST, NODE),
    )
    with ProcessSupervisor(specs, log_dir=state / "logs", env=dict(os.environ)) as supervisor:
        supervisor.wait_for_http(f"http://127.0.0.1:{port}/login/", timeout=120)
        wait_until(
            lambda: Node.objects.filter(name=node_name, state=Node.State.ONLINE).exists(),
            timeout=60,
            what="the node to register",
            interval=0.2,
        )
        bench = Bench(
            base_url=f"http://127.0.0.1:{port}",
            token=token,
            node_state=state / f"node-{node_name}",
            body=body,
        )
        cold, _, spec = bench.job()
        print(f"\nfirst job after start: {cold:.2f} s to its first step")
        jobs, bares, phases = [], [], []
        for index in range(args.runs):
            took, segments, spec = bench.job()
            bare = bench.bare(spec, redis_url, state)
            jobs.append(took)
            bares.append(bare)
            phases.append(segments)
            print(f"  run {index + 1}: job {took:.2f} s, bare torchrun {bare:.2f} s")
    job_m, bare_m = statistics.median(jobs), statistics.median(bares)
    print(f"\nsubmit to first training step (2 CPU ranks, Iris, median of {args.runs})")
    print(
        table(
            ["path", "median", "min", "max"],
            [
                [
                    "Trainyard job (POST to first step)",
                    f"{job_m:.2f} s",
                    f"{min(jobs):.2f} s",
                    f"{max(jobs):.2f} s",
                ],
                [
                    "bare torchrun (Popen to first step)",
                    f"{bare_m:.2f} s",
                    f"{min(bares):.2f} s",
                    f"{max(bares):.2f} s",
                ],
                ["difference (target <= 0.5 s)", f"{job_m - bare_m:+.2f} s", "", ""],
            ],
        )
    )
    # What only the job pays, measured on its own clock: from the POST to torchrun's start.
    # Everything after is the same trainer the bare run starts, so on a noisy machine this
    # is the steadier measure of the difference.
    ahead = [
        sum(seconds for label, seconds in p.items() if label not in AFTER_TORCHRUN) for p in phases
    ]
    print(f"\njob only, POST to torchrun started: median {statistics.median(ahead):.3f} s")
    print("\nwhere the job's time goes (median per phase)")
    labels = list(phases[0])
    print(
        table(
            ["phase", "median"],
            [
                [label, f"{statistics.median(p.get(label, 0.0) for p in phases):.3f} s"]
                for label in labels
            ],
        )
    )


if __name__ == "__main__":
    main()
