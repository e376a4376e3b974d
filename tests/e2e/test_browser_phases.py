"""Where the time went, from a real run: the Iris job through the real agent, launcher and
torchrun; its phases in the API, and the phase bar on the job page in headless Chromium."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from portal.jobs.models import Job
from portal.jobs.phases import PHASES, SEGMENT_LABELS
from tests.e2e.browser import chromium, screenshot, sign_in
from tests.e2e.conftest import Stack, wait_for
from tests.e2e.test_iris_end_to_end import _iris_job, _ready_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _submit_when_ready(stack: Stack, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST the job, again while the control worker is still starting (the dry run's 503)."""
    deadline = time.monotonic() + 90
    while True:
        response = httpx.post(
            f"{stack.base_url}/api/v1/jobs/",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        if response.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def test_a_finished_jobs_phases_show_in_the_api_and_as_a_bar_on_its_page(stack: Stack) -> None:
    token, dataset, model = _ready_cluster(stack)
    job = _submit_when_ready(stack, token, _iris_job(dataset, model, epochs=3))
    wait_for(
        lambda: Job.objects.filter(pk=job["id"], state=Job.State.SUCCEEDED).exists(),
        timeout=180,
        what=f"job {job['id']} to succeed\n{stack.logs()}",
    )
    response = httpx.get(
        f"{stack.base_url}/api/v1/jobs/{job['id']}/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    [attempt] = response.json()["attempts"]
    phases = attempt["phases"]
    # Every phase, once each (one node), in order, from the portal and from the node.
    assert [p["phase"] for p in phases] == list(PHASES), phases
    assert {p["node_rank"] for p in phases[2:-1]} == {0}
    assert [p["at"] for p in phases] == sorted(p["at"] for p in phases)

    with chromium(name="phases") as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{stack.base_url}/login/?next=/jobs/{job['id']}/")
        sign_in(page, "researcher")
        bar = page.get_by_test_id("phase-bar")
        expect(bar).to_have_count(1)
        segments = bar.locator(".phase-seg")
        expect(segments).to_have_count(len(PHASES) - 1)
        shown = [segments.nth(i).get_attribute("data-phase") for i in range(len(PHASES) - 1)]
        assert shown == list(PHASES[:-1])
        # Widths come from phases.js (the CSP forbids inline styles): every segment has
        # one, and the longest phase is the widest segment.
        count = len(PHASES) - 1
        grow = [float(segments.nth(i).evaluate("e => e.style.flexGrow")) for i in range(count)]
        assert all(g > 0 for g in grow), grow
        millis = [int(segments.nth(i).get_attribute("data-ms") or 0) for i in range(count)]
        widths = [segments.nth(i).evaluate("e => e.offsetWidth") for i in range(count)]
        assert widths.index(max(widths)) == millis.index(max(millis)), (widths, millis)
        legend = page.get_by_test_id("job-phases").locator(".phase-legend")
        for label in SEGMENT_LABELS.values():
            expect(legend).to_contain_text(label)
        assert not [e for e in errors if "Content Security Policy" in e], errors
        screenshot(page, "job-phases")
