"""How fast the dashboard and the job list answer on a big, old cluster, and how many queries
each page costs.

A scratch database gets 100,000 jobs over 30 days (200 users in 20 teams; 2,000 queued, 1,000
running, the rest finished), 1,000 nodes of 8 GPUs in 10 pools with a heartbeat each, an
attempt and a placement for every job of the last week and every running one, 10 metric points
per running job, and 30 days of cluster samples (one a minute: the dashboard's history). Then
each page is fetched through Django's test client (the whole middleware stack, templates and
all, but no network), in rounds with the order rotating, and the p50 and p95 per page are
printed with the queries it ran.

    . /work/devstate/env.sh && python bench/dashboard.py
    python -m portal.devservers run -- python bench/dashboard.py   # embedded servers
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import timedelta
from typing import Any

# bench/ is the script's directory, so sys.path[0] when run as `python bench/<name>.py`.
from scratch import scratch_database
from tables import table


def populate(args: argparse.Namespace) -> dict[str, Any]:
    """The big cluster; returns the personas and names the pages are fetched with."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils import timezone

    from portal.accounts.models import Team
    from portal.catalog.models import Dataset, ModelArchitecture
    from portal.catalog.services import IRIS_SLUG, MLP_SLUG, catalog_ensure_builtins
    from portal.cluster.models import Node
    from portal.dashboard.models import ClusterSample
    from portal.jobs.models import Attempt, Job, MetricPoint, Placement
    from portal.jobs.schemas import JobRequest

    rng = random.Random(7)
    now = timezone.now()
    catalog_ensure_builtins()
    dataset = Dataset.objects.get(slug=IRIS_SLUG)
    model = ModelArchitecture.objects.get(slug=MLP_SLUG)
    spec = JobRequest(name="bench", dataset=dataset.pk, model=model.pk).model_dump(mode="json")

    teams = Team.objects.bulk_create(Team(name=f"team-{n}") for n in range(20))
    users = User.objects.bulk_create(User(username=f"user-{n}") for n in range(args.users))
    Team.members.through.objects.bulk_create(
        Team.members.through(team_id=teams[n % len(teams)].pk, user_id=user.pk)
        for n, user in enumerate(users)
    )
    admin = User.objects.create(username="bench-admin", is_staff=True, is_superuser=True)

    gpus = [{"index": i, "name": "H200", "utilization": 60.0} for i in range(8)]
    nodes = Node.objects.bulk_create(
        Node(
            name=f"node-{n:04d}",
            pool=f"pool-{n % 10}",
            cpu_slots=64,
            gpu_count=8,
            gpu_model="H200",
            state=Node.State.OFFLINE if n % 97 == 0 else Node.State.ONLINE,
            is_draining=n % 89 == 0,
            last_heartbeat_at=now,
            health={"cpu_percent": 40.0, "gpus": gpus},
        )
        for n in range(args.nodes)
    )

    jobs: list[Job] = []
    for n in range(args.jobs):
        created = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        if n < 2000:
            state, started, finished = Job.State.QUEUED, None, None
        elif n < 2000 + len(nodes):
            state = Job.State.RUNNING
            created = now - timedelta(hours=rng.uniform(1, 12))
            started, finished = created + timedelta(seconds=rng.uniform(1, 600)), None
        else:
            state = rng.choices(
                [Job.State.SUCCEEDED, Job.State.FAILED, Job.State.CANCELLED], [80, 15, 5]
            )[0]
            started = created + timedelta(seconds=rng.uniform(1, 900))
            finished = started + timedelta(seconds=rng.uniform(60, 7200))
            if finished > now:
                started, finished = now - timedelta(hours=3), now - timedelta(hours=1)
        user = users[n % len(users)]
        jobs.append(
            Job(
                owner=user,
                team_id=teams[(n % len(users)) % len(teams)].pk,
                name=f"run-{n}",
                dataset=dataset,
                model=model,
                spec=spec,
                gpus_per_node=8,
                pool=f"pool-{n % 10}",
                state=state,
                created_at=created,
                started_at=started,
                finished_at=finished,
            )
        )
    Job.objects.bulk_create(jobs, batch_size=5000)

    week = now - timedelta(days=7)
    placed = [job for job in jobs if job.started_at and (job.finished_at or now) > week]
    attempts = Attempt.objects.bulk_create(
        (
            Attempt(
                job=job,
                number=1,
                state=Attempt.State.RUNNING if job.finished_at is None else Attempt.State.SUCCEEDED,
                master_addr="10.0.0.1",
                master_port=29500,
                started_at=job.started_at,
                finished_at=job.finished_at,
            )
            for job in placed
        ),
        batch_size=5000,
    )
    running_nodes = iter(nodes)
    Placement.objects.bulk_create(
        (
            Placement(
                attempt=attempt,
                node=next(running_nodes) if job.finished_at is None else nodes[i % len(nodes)],
                node_rank=0,
                slots=8,
                gpus=8,
                started_at=job.started_at,
                finished_at=job.finished_at,
            )
            for i, (job, attempt) in enumerate(zip(placed, attempts, strict=True))
        ),
        batch_size=5000,
    )
    MetricPoint.objects.bulk_create(
        (
            MetricPoint(
                job=job,
                attempt=attempt,
                seq=seq,
                split="val",
                step=seq,
                epoch=seq + 1,
                loss=1.0,
                reported_at=now,
            )
            for job, attempt in zip(placed, attempts, strict=True)
            if job.finished_at is None
            for seq in range(10)
        ),
        batch_size=5000,
    )
    minutes = 30 * 24 * 60
    ClusterSample.objects.bulk_create(
        (
            ClusterSample(
                at=now - timedelta(minutes=minutes - m),
                nodes_online=990,
                gpus_total=7920,
                gpus_allocated=rng.randint(4000, 7920),
                gpus_used=rng.uniform(3000, 7000),
                cpu_slots_total=63360,
                cpu_slots_allocated=rng.randint(30000, 63360),
                cpu_slots_used=rng.uniform(20000, 60000),
                queued=rng.randint(0, 3000),
                running=rng.randint(500, 1000),
            )
            for m in range(minutes)
        ),
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    normal = users[3]
    teammate = next(u for n, u in enumerate(users) if n != 3 and n % len(teams) == 3)
    return {
        "admin": admin,
        "normal": normal,
        "teammate": teammate.username,
        "placements": len(attempts),
    }


def measure(args: argparse.Namespace, world: dict[str, Any]) -> list[list[str]]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    clients = {}
    for persona in ("admin", "normal"):
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(world[persona])
        clients[persona] = client

    # A deep page, half way down the list, through a cursor like those the list hands out.
    from portal.jobs.listing import cursor_encode
    from portal.jobs.models import Job

    depth = args.jobs // 2
    deep = Job.objects.order_by("-created_at", "-id")[depth]
    deep_cursor = cursor_encode(deep.created_at, deep.pk)
    pages: list[tuple[str, str, str]] = [
        ("dashboard, admin", "admin", "/"),
        ("dashboard, normal user", "normal", "/"),
        ("summary API, normal user", "normal", "/api/v1/cluster/summary/"),
        ("utilisation API, 30 days", "normal", "/api/v1/cluster/utilisation/?hours=720"),
        (
            "jobs: one user's failed, admin",
            "admin",
            f"/jobs/?owner={world['teammate']}&state=failed",
        ),
        (
            "jobs: teammate's failed, normal",
            "normal",
            f"/jobs/?owner={world['teammate']}&state=failed",
        ),
        (f"jobs: page {depth // 50 + 1:,}, admin", "admin", f"/jobs/?after={deep_cursor}"),
        ("jobs: name search, admin", "admin", "/jobs/?q=run-4242"),
    ]
    times: dict[str, list[float]] = {name: [] for name, _, _ in pages}
    queries: dict[str, int] = {}
    slowest: dict[str, list[tuple[float, str]]] = {}
    for _ in range(2):  # warm caches and connections
        for _, persona, url in pages:
            clients[persona].get(url)
    for round_ in range(args.rounds):
        shift = round_ % len(pages)
        for name, persona, url in pages[shift:] + pages[:shift]:
            with CaptureQueriesContext(connection) as captured:
                begin = time.perf_counter()
                response = clients[persona].get(url)
                times[name].append(time.perf_counter() - begin)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code}")
            queries[name] = len(captured.captured_queries)
            slowest[name] = sorted(
                ((float(q["time"]), q["sql"]) for q in captured.captured_queries), reverse=True
            )[:2]
    if args.slowest:
        for name, found in slowest.items():
            print(f"{name}:")
            for seconds, text in found:
                print(f"  {seconds * 1000:.0f} ms  {text[:400]}")

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.0f} ms"

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20, method="inclusive")[-1]

    return [
        [name, ms(statistics.median(times[name])), ms(p95(times[name])), str(queries[name])]
        for name, _, _ in pages
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="dashboard and job list at scale")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--slowest", action="store_true", help="print each page's two slowest queries"
    )
    args = parser.parse_args()
    scratch = f"bench_dashboard_{os.getpid()}"
    print(f"dashboard: {os.cpu_count()} CPUs, scratch database {scratch}")
    started = time.perf_counter()
    # The built-in catalog's files, written by populate(), go to a directory of their own.
    os.environ.setdefault("TRAINYARD_STORAGE_ROOT", tempfile.mkdtemp(prefix="bench-storage-"))
    with scratch_database(scratch):
        begin = time.perf_counter()
        world = populate(args)
        print(
            f"  {args.jobs:,} jobs, {args.nodes:,} nodes, {world['placements']:,} placements, "
            f"30 days of samples: built in {time.perf_counter() - begin:.0f} s"
        )
        print(f"{args.rounds} rounds per page, order rotating\n")
        rows = measure(args, world)
        print(table(["page", "p50", "p95", "queries"], rows))
    print(f"\ntotal {time.perf_counter() - started:.1f} s (scratch database dropped)")


if __name__ == "__main__":
    main()
