"""A researcher logs in with headless Chromium, submits the Iris job with the form and watches
the chart fill and the state reach succeeded."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from portal.catalog.services import catalog_ensure_builtins
from portal.cluster.models import Node
from tests.e2e.browser import chromium, screenshot, sign_in
from tests.e2e.conftest import Stack, wait_for
from tests.factories import make_user

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_researcher_submits_iris_in_the_browser_and_watches_it_train(stack: Stack) -> None:
    # Everything the database needs happens before the browser starts: Playwright's sync API
    # runs an event loop, and Django refuses ORM calls from inside one.
    catalog_ensure_builtins()
    make_user("browser-researcher")
    wait_for(
        lambda: Node.objects.filter(name=stack.node_name, state=Node.State.ONLINE).exists(),
        timeout=30,
        what="the node to register",
    )
    with chromium(name="job") as browser:
        page = browser.new_page()
        page.goto(f"{stack.base_url}/jobs/new/")
        # Not logged in: the portal sends us to the login page first.
        expect(page).to_have_url(f"{stack.base_url}/login/?next=/jobs/new/")
        sign_in(page, "browser-researcher")
        expect(page).to_have_url(f"{stack.base_url}/jobs/new/")

        page.select_option("select[name=dataset]", label="Iris v1")
        page.select_option("select[name=model]", label="MLP")
        page.fill("input[name=hp_hidden_sizes]", "16,16")
        page.fill("input[name=epochs]", "30")
        page.fill("input[name=batch_size]", "16")
        page.fill("input[name=learning_rate]", "0.01")
        page.fill("input[name=procs_per_node]", "2")
        page.click("[data-testid=submit-job]")

        expect(page).to_have_url(re.compile(r"/jobs/\d+/$"))
        state = page.get_by_test_id("job-state")
        count = page.get_by_test_id("point-count")
        expect(count).not_to_have_text("0", timeout=180_000)
        expect(state).to_have_text("Succeeded", ignore_case=True, timeout=180_000)
        # The server-rendered attempts panel is fetched again when the state changes.
        expect(page.locator("#job-attempts")).to_contain_text("Succeeded", timeout=10_000)
        points = int(count.inner_text())
        assert points >= 30, f"the chart shows only {points} points"
        chart = page.get_by_test_id("chart-loss")
        expect(chart.locator("canvas").first).to_be_visible()
        screenshot(page, "job-succeeded")
