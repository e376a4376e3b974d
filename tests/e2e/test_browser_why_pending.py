"""Why a job waits, in headless Chromium on the live stack: the job page's panel shows the
position, the jobs ahead (another user's only by id), how many nodes fail each requirement and
the start estimate; the job form's "Preview" answers before anything is submitted."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.catalog.services import catalog_ensure_builtins
from portal.cluster.models import Node
from portal.jobs.models import Job
from tests.e2e.browser import chromium, screenshot, sign_in
from tests.e2e.conftest import Stack, wait_for
from tests.factories import make_job, make_node, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_job_page_says_why_a_job_waits_and_the_form_previews_the_plan(stack: Stack) -> None:
    catalog_ensure_builtins()
    researcher = make_user("why-researcher")
    other = make_user("why-other")
    wait_for(
        lambda: Node.objects.filter(name=stack.node_name, state=Node.State.ONLINE).exists(),
        timeout=30,
        what="the node to register",
    )
    # A pool whose only node is cordoned: jobs there wait for nodes, in a queue of their own.
    make_node("why-cordoned", pool="why-pool", cpu_slots=4, is_cordoned=True)
    ahead = make_job(other, pool="why-pool", procs_per_node=2)
    mine = make_job(researcher, pool="why-pool", procs_per_node=2)
    wait_for(
        lambda: Job.objects.get(pk=mine.pk).why_pending is not None,
        timeout=30,
        what="a scheduler pass to explain the waiting job",
    )

    with chromium(name="why-pending") as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{stack.base_url}/login/?next=/jobs/{mine.pk}/")
        sign_in(page, "why-researcher")

        panel = page.get_by_test_id("why-pending")
        expect(panel).to_be_visible()
        expect(page.get_by_test_id("why-waiting-for")).to_have_text("nodes")
        expect(page.get_by_test_id("why-position")).to_have_text("2 of 2")
        # The other user's job ahead: its id only.
        expect(page.get_by_test_id("why-ahead")).to_have_text(f"#{ahead.pk}")
        constraints = page.get_by_test_id("why-constraints")
        expect(constraints.locator("[data-constraint=node_state] td").last).to_have_text("1")
        expect(constraints.locator("[data-constraint=pool] td").last).not_to_have_text("0")
        expect(page.get_by_test_id("why-estimate")).to_have_text("unknown")
        expect(page.get_by_test_id("why-quota")).to_have_text("no limit binds")
        screenshot(page, "job-why-pending")

        # The form's preview: the stack's node is free, so the job would start there.
        page.goto(f"{stack.base_url}/jobs/new/")
        page.select_option("select[name=dataset]", label="Iris v1")
        page.select_option("select[name=model]", label="MLP")
        page.fill("input[name=hp_hidden_sizes]", "16,16")
        page.fill("input[name=epochs]", "3")
        page.fill("input[name=batch_size]", "16")
        page.fill("input[name=learning_rate]", "0.01")
        page.fill("input[name=procs_per_node]", "1")
        answer = page.locator("section#plan-preview")
        # The preview builds the model on the control worker as a submit does; on a busy
        # machine that may not answer in time, and the preview says to try again.
        for _ in range(8):
            page.click("[data-testid=preview-job]")
            expect(answer).to_be_visible(timeout=60_000)
            expect(page.get_by_test_id("preview-job")).to_be_enabled(timeout=60_000)
            if "try again" not in answer.inner_text():
                break
        expect(answer).to_contain_text("Would start now")
        decision = page.get_by_test_id("preview-decision")
        expect(decision).to_have_text(f"Would start now on {stack.node_name}.")
        expect(decision).to_have_attribute("data-would-start", "true")
        screenshot(page, "job-plan-preview")
        assert errors == []
    # The preview stored nothing.
    assert Job.objects.filter(owner=researcher).count() == 1
