"""The log API beyond paging: holes, filters, the streamed download, the cap, rank samples."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import cast

from django.contrib.auth.models import User
from django.http import StreamingHttpResponse
from django.utils import timezone

from portal.jobs.models import Attempt, Job, JobLogVolume, LogLine, RankSample
from tests.api.conftest import TokenClient
from tests.factories import make_attempt, make_job


def add_lines(attempt: Attempt, seqs: range, *, node_rank: int = 0, rank: int = 0) -> None:
    LogLine.objects.bulk_create(
        LogLine(
            job_id=attempt.job_id,
            attempt=attempt,
            node_rank=node_rank,
            rank=rank,
            local_rank=rank,
            seq=seq,
            stream=LogLine.Stream.STDOUT,
            line=f"rank {rank} says {seq}",
            reported_at=timezone.now(),
        )
        for seq in seqs
    )


def test_a_page_stops_at_a_line_not_stored_yet_and_the_next_one_fills_the_hole(
    client_for: TokenClient, owner: User
) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    attempt = make_attempt(job)
    # Another ingest process committed seq 3-4 of node 0 before seq 2; node 1 is whole.
    add_lines(attempt, range(2))
    add_lines(attempt, range(3, 5))
    add_lines(attempt, range(3), node_rank=1, rank=1)
    client = client_for(owner)

    page = client.get(f"/api/v1/jobs/{job.pk}/logs/").json()
    assert [(line["node_rank"], line["seq"]) for line in page["lines"]] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    assert page["next"] == {"after": f"{attempt.pk}.0.1,{attempt.pk}.1.2"}

    add_lines(attempt, range(2, 3))
    rest = client.get(f"/api/v1/jobs/{job.pk}/logs/", page["next"]).json()
    assert [(line["node_rank"], line["seq"]) for line in rest["lines"]] == [(0, 2), (0, 3), (0, 4)]


def test_it_filters_by_rank_and_text_and_downloads_the_same_selection(
    client_for: TokenClient, owner: User
) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    attempt = make_attempt(job)
    add_lines(attempt, range(3), node_rank=0, rank=0)
    add_lines(attempt, range(3), node_rank=1, rank=1)
    client = client_for(owner)

    ranked = client.get(f"/api/v1/jobs/{job.pk}/logs/", {"rank": 1}).json()
    assert {line["rank"] for line in ranked["lines"]} == {1}
    assert len(ranked["lines"]) == 3
    found = client.get(f"/api/v1/jobs/{job.pk}/logs/", {"q": "SAYS 2"}).json()
    assert [line["line"] for line in found["lines"]] == ["rank 0 says 2", "rank 1 says 2"]

    download = client.get(f"/api/v1/jobs/{job.pk}/logs/download/", {"rank": 0})
    assert download.status_code == 200
    assert download.streaming
    assert download["Content-Disposition"] == f'attachment; filename="job-{job.pk}.log"'
    assert isinstance(download, StreamingHttpResponse)
    text = b"".join(cast(Iterator[bytes], download.streaming_content)).decode()
    assert text.splitlines() == [
        f"[attempt {attempt.pk} node 0 rank 0 stdout] rank 0 says {seq}" for seq in range(3)
    ]


def test_a_truncated_log_says_so_in_the_page_and_the_download(
    client_for: TokenClient, owner: User
) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    add_lines(make_attempt(job), range(1))
    JobLogVolume.objects.create(job=job, bytes=10, lines=1, truncated_at=timezone.now())
    client = client_for(owner)

    assert client.get(f"/api/v1/jobs/{job.pk}/logs/").json()["truncated"] is True
    download = client.get(f"/api/v1/jobs/{job.pk}/logs/download/")
    assert isinstance(download, StreamingHttpResponse)
    text = b"".join(cast(Iterator[bytes], download.streaming_content))
    assert text.decode().splitlines()[-1].startswith("[trainyard] this log reached the job's cap")


def test_another_users_log_and_ranks_are_404(
    client_for: TokenClient, owner: User, outsider: User
) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    for suffix in ("logs/", "logs/download/", "ranks/"):
        assert client_for(outsider).get(f"/api/v1/jobs/{job.pk}/{suffix}").status_code == 404


def test_rank_samples_are_listed_oldest_first_within_the_range(
    client_for: TokenClient, owner: User
) -> None:
    job = make_job(owner, state=Job.State.RUNNING)
    attempt = make_attempt(job)
    start = timezone.now() - timedelta(minutes=1)
    RankSample.objects.bulk_create(
        RankSample(
            job=job,
            attempt=attempt,
            node_rank=0,
            rank=rank,
            local_rank=rank,
            step=10 * (i + 1),
            steps=10,
            step_time_s=0.01,
            samples_per_s=1600.0,
            gpu_memory_used=None if rank else 2**30,
            reported_at=start + timedelta(seconds=i),
        )
        for i in range(3)
        for rank in (0, 1)
    )
    client = client_for(owner)

    samples = client.get(f"/api/v1/jobs/{job.pk}/ranks/").json()
    assert [(s["rank"], s["step"]) for s in samples] == [
        (0, 10),
        (1, 10),
        (0, 20),
        (1, 20),
        (0, 30),
        (1, 30),
    ]
    assert samples[0] == {
        "attempt": attempt.pk,
        "node_rank": 0,
        "rank": 0,
        "local_rank": 0,
        "step": 10,
        "steps": 10,
        "step_time_s": 0.01,
        "samples_per_s": 1600.0,
        "gpu_memory_used": 2**30,
        "ts": samples[0]["ts"],
    }
    since = (start + timedelta(seconds=1)).isoformat()
    later = client.get(f"/api/v1/jobs/{job.pk}/ranks/", {"since": since}).json()
    assert [s["step"] for s in later] == [20, 20, 30, 30]
