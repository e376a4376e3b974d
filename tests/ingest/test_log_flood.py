"""A job that prints 200 MB: its node ships only its share of the cap and one notice, ingest
stores at most the cap, the portal keeps answering, and the page and API say the log was cut."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from portal.jobs.models import Attempt, JobLogVolume, LogLine
from tests.ingest.conftest import Streams, ingest_command
from tests.workers.support import iris_spec
from workers import attempts
from workers.messages import CustomModel

CAP = 1024 * 1024
FLOOD_MB = 200
# A page request during the flood must come back within this (it reads capped tables only;
# generous, because the flood itself takes both cores of the test machine).
PAGE_LIMIT_S = 5.0

FLOOD_CODE = f"""
import os
import sys

import torch


def build_model(input_shape, num_classes):
    # Rank 0 prints {FLOOD_MB} MB in 100-byte lines, in 1 MB writes.
    if os.environ.get("RANK") == "0":
        chunk = ("x" * 99 + "\\n") * 10_000
        for _ in range({FLOOD_MB}):
            sys.stdout.write(chunk)
        sys.stdout.flush()
    return torch.nn.Linear(input_shape[0], num_classes)
"""


def test_a_job_printing_200_mb_is_cut_at_its_cap_and_the_portal_keeps_answering(
    streams: Streams,
    running_attempt: Attempt,
    owner: User,
    isolated_channel_layer: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node_dir = tmp_path / "node"
    for name, value in {
        "TRAINYARD_STREAM_PREFIX": streams.prefix,
        "TRAINYARD_NODE_NAME": "flood",
        "TRAINYARD_NODE_STATE_DIR": str(node_dir),
        "TRAINYARD_STORAGE_ROOT": str(tmp_path),
        "TRAINYARD_CHECKPOINT_ROOT": str(tmp_path),
        "TRAINYARD_LOG_MAX_BYTES_PER_JOB": str(CAP),
    }.items():
        monkeypatch.setenv(name, value)
    code = tmp_path / "flood.py"
    code.write_text(FLOOD_CODE)
    spec = iris_spec(
        node_name="flood",
        attempt_id=running_attempt.pk,
        job_id=running_attempt.job_id,
        checkpoint_dir=tmp_path / "ck",
        epochs=1,
        model=CustomModel(
            code_uri=code.as_uri(), code_sha256=hashlib.sha256(code.read_bytes()).hexdigest()
        ),
    )
    directory = attempts.attempt_dir(node_dir, spec.attempt_id)
    directory.mkdir(parents=True)
    (directory / "spec.json").write_text(spec.dumps())
    ingest = ingest_command(streams, isolated_channel_layer, "--consumer", "flood")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "workers.launcher", "--spec", str(directory / "spec.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    client = Client()
    client.force_login(owner)
    job_id = running_attempt.job_id
    slowest = 0.0
    requests = 0
    try:
        deadline = time.monotonic() + 300
        while launcher.poll() is None:
            assert time.monotonic() < deadline, "the flooding job did not finish"
            for path in (f"/jobs/{job_id}/", f"/api/v1/jobs/{job_id}/logs/?limit=1000"):
                began = time.monotonic()
                response = client.get(path)
                slowest = max(slowest, time.monotonic() - began)
                requests += 1
                assert response.status_code == 200
            time.sleep(0.2)
        assert launcher.returncode == 0
        deadline = time.monotonic() + 60
        while not LogLine.objects.filter(job_id=job_id, stream="notice").exists():
            assert time.monotonic() < deadline, "the truncation notice was not stored"
            assert ingest.poll() is None
            time.sleep(0.2)
    finally:
        for process in (launcher, ingest):
            if process.poll() is None:
                process.terminate()
        launcher.wait(30)
        ingest.communicate(timeout=30)

    assert requests >= 4
    assert slowest < PAGE_LIMIT_S, f"a page took {slowest:.1f}s during the flood"
    # The node shipped its share of the cap (one node: all of it) and one notice, no more.
    volume = JobLogVolume.objects.get(job_id=job_id)
    assert volume.bytes <= CAP + 16 * 1024
    assert volume.truncated_at is not None
    [notice] = LogLine.objects.filter(job_id=job_id, stream="notice")
    assert "log truncated" in notice.line and "TRAINYARD_LOG_MAX_BYTES_PER_JOB" in notice.line
    assert LogLine.objects.filter(job_id=job_id).count() < 20_000
    # The page and the API say so.
    page = client.get(f"/jobs/{job_id}/").content.decode()
    assert 'data-testid="log-truncated" role="status">' in page
    assert "reached its cap" in page
    assert client.get(f"/api/v1/jobs/{job_id}/logs/").json()["truncated"] is True
