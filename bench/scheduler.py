"""How fast the scheduler admits jobs, and how long one pass takes, on a big cluster.

A scratch database gets a simulated cluster (by default 1,000 nodes of 8 GPUs in 4 pools),
200 users in 20 teams, and a queue of mixed jobs (1, 2, 4 or 8 GPUs on one node, and gangs of
2 or 4 whole nodes; 3 in 4 name a pool, the rest run anywhere; maximum run times of 1 to 24
hours; a few with a higher priority). Then the real pass (`portal.jobs.scheduling.
schedule_pass`, PostgreSQL, and a Celery message to Redis per placed node on commit) runs:

- **fill**: the first pass on the empty cluster, which admits as many jobs as fit;
- **steady**: rounds in which 1% of the running attempts end and as many new jobs arrive
  (written straight to the database, outside the timing), then one pass.

Admissions per second are jobs placed over the time spent in passes; the p99 is over the steady
passes. The same is printed for 100 to 1,000 nodes (10,000 queued) and 1,000 to 10,000
queued jobs (1,000 nodes), with the ratios. Quotas: the pass's `Admission` is `Unlimited` (the
quota ledger is built on another branch; the protocol is asked for every start all the same).

    python -m portal.devservers run -- python bench/scheduler.py
    . /work/devstate/env.sh && python bench/scheduler.py --rounds 10
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

# bench/ is the script's directory, so sys.path[0] when run as `python bench/<name>.py`.
from scratch import scratch_database
from tables import table

ROOT = Path(__file__).resolve().parents[1]
NODE_PREFIX = "bench-sched-"
POOLS = 4


class World:
    """The users, the catalog rows every job points at, and a job factory."""

    def __init__(self, users: int) -> None:
        from django.contrib.auth.models import User

        from portal.accounts.models import Team
        from portal.catalog.models import Dataset, ModelArchitecture
        from portal.catalog.services import IRIS_SLUG, MLP_SLUG, catalog_ensure_builtins
        from portal.jobs.schemas import JobRequest

        catalog_ensure_builtins()
        self.dataset = Dataset.objects.get(slug=IRIS_SLUG)
        self.model = ModelArchitecture.objects.get(slug=MLP_SLUG)
        self.spec = JobRequest(name="bench", dataset=self.dataset.pk, model=self.model.pk)
        teams = Team.objects.bulk_create(Team(name=f"bench-team-{n}") for n in range(20))
        self.users = User.objects.bulk_create(
            User(username=f"bench-user-{n}") for n in range(users)
        )
        Team.members.through.objects.bulk_create(
            Team.members.through(team_id=teams[n % 20].pk, user_id=user.pk)
            for n, user in enumerate(self.users)
        )
        self.team_of = {user.pk: teams[n % 20].pk for n, user in enumerate(self.users)}
        self.rng = random.Random(11)
        self.counter = 0

    def jobs(self, count: int) -> None:
        from django.utils import timezone

        from portal.jobs.models import Job

        rng, now = self.rng, timezone.now()
        rows = []
        for _ in range(count):
            self.counter += 1
            shape = rng.choices(
                [(1, 1), (1, 2), (1, 4), (1, 8), (2, 8), (4, 8)], [40, 20, 15, 15, 7, 3]
            )[0]
            user = self.users[rng.randrange(len(self.users))]
            spec = self.spec.model_copy(
                update={
                    "name": f"bench-{self.counter}",
                    "resources": self.spec.resources.model_copy(
                        update={"nodes": shape[0], "gpus_per_node": shape[1]}
                    ),
                }
            )
            rows.append(
                Job(
                    owner_id=user.pk,
                    team_id=self.team_of[user.pk],
                    name=spec.name,
                    dataset=self.dataset,
                    model=self.model,
                    spec=spec.model_dump(mode="json"),
                    nodes=shape[0],
                    gpus_per_node=shape[1],
                    procs_per_node=1,
                    pool=f"pool-{rng.randrange(POOLS)}" if rng.random() < 0.75 else "",
                    priority=rng.choices([0, 1, 5], [90, 8, 2])[0],
                    max_run_time_s=rng.choice([1, 2, 4, 8, 24]) * 3600,
                    created_at=now - timedelta(seconds=rng.uniform(0, 3600)),
                )
            )
        Job.objects.bulk_create(rows, batch_size=2000)


def reset_cluster(nodes: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from portal.cluster.models import Node
    from portal.jobs.models import Job

    with connection.cursor() as cursor:
        cursor.execute(
            f"TRUNCATE {Job._meta.db_table}, {Node._meta.db_table} RESTART IDENTITY CASCADE"
        )
    Node.objects.bulk_create(
        Node(
            name=f"{NODE_PREFIX}{n:04d}",
            address=f"10.0.{n // 250}.{n % 250}",
            pool=f"pool-{n % POOLS}",
            cpu_slots=64,
            gpu_count=8,
            gpu_model="NVIDIA H200",
            last_heartbeat_at=timezone.now(),
        )
        for n in range(nodes)
    )


def end_some_attempts(fraction: float, rng: random.Random) -> int:
    """End `fraction` of the running attempts as their nodes' exit reports would."""
    from django.db import transaction
    from django.utils import timezone

    from portal.jobs.models import Attempt, Job, Placement

    active = list(Attempt.objects.filter(state__in=Attempt.ACTIVE).values_list("pk", "job_id"))
    ending = rng.sample(active, max(1, int(len(active) * fraction))) if active else []
    now = timezone.now()
    with transaction.atomic():
        ids = [pk for pk, _ in ending]
        Attempt.objects.filter(pk__in=ids).update(state=Attempt.State.SUCCEEDED, finished_at=now)
        Placement.objects.filter(attempt__in=ids).update(finished_at=now)
        Job.objects.filter(pk__in=[job for _, job in ending]).update(
            state=Job.State.SUCCEEDED, finished_at=now
        )
    return len(ending)


def start_placed() -> None:
    """The nodes' start reports, in bulk: every scheduled attempt runs from now."""
    from django.utils import timezone

    from portal.jobs.models import Attempt, Job, Placement

    now = timezone.now()
    Placement.objects.filter(started_at__isnull=True, finished_at__isnull=True).update(
        started_at=now
    )
    Attempt.objects.filter(state=Attempt.State.STARTING).update(
        state=Attempt.State.RUNNING, started_at=now
    )
    Job.objects.filter(state=Job.State.SCHEDULED).update(state=Job.State.RUNNING, started_at=now)


PROFILE: cProfile.Profile | None = None
PROFILE_FILL = bool(os.environ.get("BENCH_PROFILE_FILL"))


def timed_pass(*, steady: bool = False) -> tuple[float, int]:
    from portal.jobs.scheduling import schedule_pass

    # The steady passes only, unless BENCH_PROFILE_FILL is set.
    profile = PROFILE if steady or PROFILE_FILL else None
    begin = time.perf_counter()
    if profile is not None:
        profile.enable()
    placed = schedule_pass()
    if profile is not None:
        profile.disable()
    return time.perf_counter() - begin, placed


def scenario(world: World, *, nodes: int, queued: int, rounds: int) -> dict[str, float]:
    from portal.jobs.models import Job

    reset_cluster(nodes)
    world.jobs(queued)
    fill_s, fill_placed = timed_pass()
    start_placed()
    durations, placed_total = [], 0
    for _ in range(rounds):
        end_some_attempts(0.01, world.rng)
        # Keep the queue at its size: as many new jobs arrive as the last pass placed.
        missing = queued - Job.objects.filter(state=Job.State.QUEUED).count()
        if missing > 0:
            world.jobs(missing)
        seconds, placed = timed_pass(steady=True)
        start_placed()
        durations.append(seconds)
        placed_total += placed
    durations.sort()
    p99 = durations[min(len(durations) - 1, round(0.99 * (len(durations) - 1)))]
    return {
        "fill_placed": fill_placed,
        "fill_s": fill_s,
        "steady_placed": placed_total,
        "steady_s": sum(durations),
        "p50": statistics.median(durations),
        "p99": p99,
        "admissions": (fill_placed + placed_total) / (fill_s + sum(durations)),
    }


def row(label: str, result: dict[str, float]) -> list[str]:
    return [
        label,
        f"{result['fill_placed']:.0f} in {result['fill_s'] * 1000:.0f} ms",
        f"{result['fill_placed'] / result['fill_s']:,.0f}/s",
        f"{result['steady_placed']:.0f}",
        f"{result['p50'] * 1000:.1f} ms",
        f"{result['p99'] * 1000:.1f} ms",
        f"{result['admissions']:,.0f}/s",
    ]


def ratios(smaller: dict[str, float], larger: dict[str, float]) -> list[str]:
    return [
        f"x{larger['p50'] / smaller['p50']:.1f}",
        f"x{larger['p99'] / smaller['p99']:.1f}",
        f"x{larger['admissions'] / smaller['admissions']:.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="scheduler admissions and pass duration")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--queued", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20, help="steady passes per scenario")
    parser.add_argument("--only", action="store_true", help="just --nodes x --queued")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="cProfile the main case's steady passes; print the top N by cumulative time",
    )
    args = parser.parse_args()
    global PROFILE
    if args.profile:
        PROFILE = cProfile.Profile()
    scratch = f"bench_scheduler_{os.getpid()}"
    print(f"scheduler: {os.cpu_count()} CPUs, scratch database {scratch}")
    started = time.perf_counter()
    os.environ.setdefault("TRAINYARD_STORAGE_ROOT", tempfile.mkdtemp(prefix="bench-storage-"))
    with scratch_database(scratch):
        try:
            world = World(args.users)
            headers = ["nodes x queued", "fill pass", "fill rate", "steady placed", "p50", "p99"]
            headers.append("admissions")
            main_result = scenario(world, nodes=args.nodes, queued=args.queued, rounds=args.rounds)
            print(f"\n{args.nodes:,} nodes x 8 GPUs in {POOLS} pools, ", end="")
            print(f"{args.queued:,} queued, ", end="")
            print(f"{args.users} users in 20 teams; {args.rounds} steady passes")
            print(table(headers, [row(f"{args.nodes:,} x {args.queued:,}", main_result)]))
            if PROFILE is not None:
                stats = pstats.Stats(PROFILE, stream=sys.stdout).sort_stats("cumulative")
                stats.print_stats(args.profile)
                stats.sort_stats("tottime").print_stats(args.profile)
                PROFILE = None
            if not args.only:
                small = max(1, args.nodes // 10)
                few = max(1, args.queued // 10)
                by_nodes = scenario(world, nodes=small, queued=args.queued, rounds=args.rounds)
                by_queue = scenario(world, nodes=args.nodes, queued=few, rounds=args.rounds)
                print(f"\ngrowth: {small:,} to {args.nodes:,} nodes, ", end="")
                print(f"{few:,} to {args.queued:,} queued")
                print(
                    table(
                        headers,
                        [
                            row(f"{small:,} x {args.queued:,}", by_nodes),
                            row(f"{args.nodes:,} x {few:,}", by_queue),
                            row(f"{args.nodes:,} x {args.queued:,}", main_result),
                        ],
                    )
                )
                growth = [
                    ["nodes x10", *ratios(by_nodes, main_result)],
                    ["queued x10", *ratios(by_queue, main_result)],
                ]
                print(table(["grows", "p50 pass", "p99 pass", "admissions/s"], growth))
        finally:
            import redis
            from django.conf import settings

            client = redis.Redis.from_url(settings.REDIS_URL)
            for key in client.scan_iter(f"node.{NODE_PREFIX}*"):
                client.delete(key)
    print(f"\ntotal {time.perf_counter() - started:.1f} s (scratch database dropped)")


if __name__ == "__main__":
    main()
