"""The dashboard in headless Chromium on a live two-node stack: in-use figures and the
utilisation chart follow a job across both nodes as it starts and ends, the API's summary says
what the page says, the job list filters to one user's failed jobs through the URL, and two
queued jobs are cancelled at once."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from portal.accounts.services import api_token_create
from portal.catalog.services import catalog_ensure_builtins
from portal.cluster.models import Node
from portal.jobs.models import Job
from tests.e2e.agents import NodeAgent, iris_2x2_body, others_gone
from tests.e2e.browser import chromium, screenshot, sign_in
from tests.e2e.conftest import Stack, wait_for
from tests.factories import make_job, make_team, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Bounds on waits for the live stack (placing, starting torchrun, nodes confirming a cancel).
LIVE_MS = 180_000


@pytest.fixture(scope="module")
def second_agent(stack: Stack) -> Iterator[NodeAgent]:
    agent = NodeAgent(
        name=f"e2e-dash-{uuid.uuid4().hex[:6]}", state_dir=stack.state_dir, env=stack.env
    )
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()


class Api:
    """The researcher's script: the same REST API a browser's page is built from."""

    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.Client(
            base_url=f"{base_url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def submit(self, body: dict[str, Any]) -> int:
        response = self.client.post("/jobs/", json=body)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def job(self, job_id: int) -> dict[str, Any]:
        body: dict[str, Any] = self.client.get(f"/jobs/{job_id}/").json()
        return body

    def cancel(self, job_id: int) -> None:
        assert self.client.post(f"/jobs/{job_id}/cancel/").status_code == 202

    def close(self) -> None:
        self.client.close()

    def summary(self) -> dict[str, Any]:
        response = self.client.get("/cluster/summary/")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def slots_tile(page: Page) -> Any:
    return page.get_by_test_id("slots-in-use")


def test_the_dashboard_follows_a_two_node_job_and_the_list_filters_and_cancels(
    stack: Stack, second_agent: NodeAgent
) -> None:
    # The database work happens before the browser starts (Playwright's sync API runs an
    # event loop, inside which Django refuses ORM calls); afterwards the test reads the API.
    catalog_ensure_builtins()
    researcher = make_user("dash-researcher")
    mate = make_user("dash-mate")
    team = make_team("dash-team", researcher, mate)
    failed = {
        make_job(mate, state=Job.State.FAILED, team=team, name=f"mate-failed-{n}").pk
        for n in range(2)
    }
    make_job(mate, state=Job.State.SUCCEEDED, team=team, name="mate-succeeded")
    make_job(researcher, state=Job.State.FAILED, name="my-own-failure")
    api = Api(stack.base_url, api_token_create(user=researcher, name="dash").plaintext)
    nodes = (stack.node_name, second_agent.name)
    wait_for(
        lambda: Node.objects.filter(name__in=nodes, state=Node.State.ONLINE).count() == 2,
        timeout=60,
        what="both node agents to register",
    )
    wait_for(lambda: others_gone(*nodes), timeout=30, what="earlier tests' agents to go")
    gang = iris_2x2_body("dash 2x2")
    gang["training"]["epochs"] = 5000  # runs until it is cancelled
    small = iris_2x2_body("dash queued")
    small["resources"] = {"nodes": 1, "procs_per_node": 2}
    gang_id = None
    with chromium(name="dashboard", viewport={"width": 1366, "height": 900}) as context:
        dashboard = context.new_page()
        jobs_page = context.new_page()
        try:
            dashboard.goto(f"{stack.base_url}/")
            sign_in(dashboard, "dash-researcher")
            expect(dashboard).to_have_url(f"{stack.base_url}/")
            expect(dashboard.locator("#live-status")).to_have_attribute("data-status", "open")
            chart = dashboard.get_by_test_id("chart-util")
            expect(slots_tile(dashboard)).to_have_text("0 / 4", timeout=LIVE_MS)
            expect(chart).to_have_attribute("data-now-slots-allocated", "0")
            expect(chart.locator("canvas").first).to_be_visible()

            # A job across both nodes starts: the figures and the chart's "now" move.
            gang_id = api.submit(gang)
            expect(slots_tile(dashboard)).to_have_text("4 / 4", timeout=LIVE_MS)
            expect(chart).to_have_attribute("data-now-slots-allocated", "100")
            expect(dashboard.get_by_test_id("util-now")).to_contain_text(
                "4 of 4 CPU slots allocated (100%)"
            )
            mine = dashboard.get_by_test_id("my-jobs")
            expect(mine.locator(f'tr[data-job-id="{gang_id}"]')).to_contain_text(
                "Running", timeout=LIVE_MS
            )
            [attempt] = api.job(gang_id)["attempts"]
            assert sorted(attempt["nodes"]) == sorted(nodes)

            # Two more jobs wait for the capacity the gang holds.
            queued = {api.submit(small), api.submit(small)}
            expect(dashboard.get_by_test_id("queued")).to_have_text("2", timeout=LIVE_MS)
            # What a script reads is what the page shows.
            summary = api.summary()
            totals = summary["totals"]
            assert f"{totals['cpu_slots_in_use']} / {totals['cpu_slots']}" == "4 / 4"
            assert summary["queue"]["queued"] == 2
            assert summary["names_shown"] is False and summary["top_users"] is None
            expect(dashboard.get_by_test_id("gpus-in-use")).to_have_text(
                f"{totals['gpus_in_use']} / {totals['gpus']}"
            )
            expect(dashboard.get_by_test_id("nodes-online")).to_have_text(
                f"{summary['node_states']['online']} / {sum(summary['node_states'].values())}"
            )
            expect(dashboard.locator("#top-panel")).to_be_hidden()

            # The job list, filtered to the teammate's failed jobs with the filter controls,
            # says so in its address; that address, opened afresh, shows the same jobs.
            jobs_page.goto(f"{stack.base_url}/jobs/")
            jobs_page.select_option("select[name=state]", "failed")
            expect(jobs_page).to_have_url(re.compile(r"[?&]state=failed"))
            jobs_page.select_option("select[name=owner]", "dash-mate")
            expect(jobs_page).to_have_url(re.compile(r"owner=dash-mate"))
            rows = jobs_page.locator("#jobs-table tbody tr")
            expect(rows).to_have_count(2)
            shown = {int(rows.nth(i).get_attribute("data-job-id") or 0) for i in range(2)}
            assert shown == failed
            link = jobs_page.url
            assert "state=failed" in link and "owner=dash-mate" in link
            jobs_page.goto(link)
            expect(rows).to_have_count(2)
            expect(jobs_page.locator("select[name=owner]")).to_have_value("dash-mate")
            screenshot(jobs_page, "jobs-filtered")

            # Cancel both queued jobs at once.
            jobs_page.goto(f"{stack.base_url}/jobs/?state=queued")
            for job_id in queued:
                jobs_page.check(f'input[name=job][value="{job_id}"]')
            expect(jobs_page.get_by_test_id("selected-count")).to_have_text("2 selected")
            jobs_page.get_by_test_id("cancel-selected").click()
            expect(jobs_page).to_have_url(f"{stack.base_url}/jobs/?state=queued")
            expect(jobs_page.locator(".messages")).to_contain_text("Cancelling 2 jobs")
            expect(jobs_page.get_by_test_id("no-matches")).to_be_visible()
            assert {api.job(job_id)["state"] for job_id in queued} == {"cancelled"}
            expect(dashboard.get_by_test_id("queued")).to_have_text("0", timeout=LIVE_MS)

            # The gang ends: its capacity is free again, and the chart's "now" falls back.
            api.cancel(gang_id)
            expect(slots_tile(dashboard)).to_have_text("0 / 4", timeout=LIVE_MS)
            expect(chart).to_have_attribute("data-now-slots-allocated", "0")
            expect(mine.locator(f'tr[data-job-id="{gang_id}"]')).to_have_count(0)
            assert api.job(gang_id)["state"] == "cancelled"
            screenshot(dashboard, "dashboard")
        finally:
            if gang_id is not None:
                api.cancel(gang_id)
            api.close()
