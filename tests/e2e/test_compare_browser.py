"""Comparing runs in headless Chromium: three jobs picked on the job list open the compare
page, whose loss and accuracy charts overlay the three (drawn from the metric points API),
whose settings table highlights what differs, and whose address opens the same comparison."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from portal.jobs.models import Job
from tests.e2e.browser import chromium, screenshot, sign_in
from tests.factories import make_job, make_metric_points, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def run(owner: Any, name: str, lr: float, losses: list[float], accuracies: list[float]) -> Job:
    job = make_job(owner, state=Job.State.SUCCEEDED, name=name)
    job.spec["training"]["learning_rate"] = lr
    job.save(update_fields=["spec"])
    make_metric_points(job, losses=losses, accuracies=accuracies)
    return job


def test_three_runs_overlay_on_the_compare_page(live_server: Any) -> None:
    # The database is set up before the browser starts (Playwright's sync API runs an event
    # loop, and Django refuses ORM calls from inside one).
    owner = make_user("compare-researcher")
    jobs = [
        run(owner, "lr 0.01", 0.01, [1.2, 0.9, 0.7, 0.6], [0.4, 0.6, 0.7, 0.75]),
        run(owner, "lr 0.05", 0.05, [1.1, 0.6, 0.4, 0.35], [0.5, 0.8, 0.9, 0.92]),
        run(owner, "lr 0.5", 0.5, [1.5, 1.4], [0.3, 0.35]),
    ]
    other = make_job(owner, name="not compared")
    ids = ",".join(str(job.pk) for job in jobs)
    base = live_server.url

    with chromium(name="compare") as browser:
        page = browser.new_page()
        page.goto(f"{base}/login/?next=/jobs/")
        sign_in(page, "compare-researcher")
        expect(page).to_have_url(f"{base}/jobs/")

        compare = page.get_by_test_id("compare-selected")
        expect(compare).to_have_attribute("aria-disabled", "true")
        for job in jobs:
            page.check(f'input[name=job][value="{job.pk}"]')
        expect(page.get_by_test_id("selected-count")).to_have_text("3 selected")
        # Finished jobs can be compared, not cancelled.
        expect(page.get_by_test_id("cancel-selected")).to_be_disabled()
        expect(compare).to_have_attribute("aria-disabled", "false")
        compare.click()
        expect(page).to_have_url(re.compile(r"/jobs/compare/\?jobs="))
        shown = page.url.split("jobs=", 1)[1].split(",")
        assert sorted(map(int, shown)) == sorted(job.pk for job in jobs)
        assert str(other.pk) not in shown

        expect(page.locator("body")).to_have_attribute("data-compare-ready", "true")
        for kind in ("loss", "accuracy"):
            chart = page.get_by_test_id(f"compare-{kind}")
            expect(chart).to_have_attribute("data-series", "3")
            expect(chart.locator("canvas")).to_have_count(1)
            # uPlot's legend: the step, then a val and a train series per job.
            legend = chart.locator(".u-legend .u-series")
            expect(legend).to_have_count(1 + 2 * 3)
            for job in jobs:
                expect(chart.locator(".u-legend")).to_contain_text(f"#{job.pk} val")

        settings = page.get_by_test_id("compare-settings")
        differing = settings.locator("tr[data-differs] th")
        expect(differing).to_contain_text(["Learning rate"])
        expect(settings.locator("tr:not([data-differs]) th", has_text="Epochs")).to_have_count(1)
        metrics = page.get_by_test_id("compare-metrics")
        expect(
            metrics.locator(f'tr[data-job-id="{jobs[1].pk}"] [data-role="best-val-accuracy"]')
        ).to_have_text("0.920")
        screenshot(page, "compare")

        # The address is the comparison: opened afresh, it shows the same three.
        page.goto(f"{base}/jobs/compare/?jobs={ids}")
        expect(page.get_by_test_id("compare-loss")).to_have_attribute("data-series", "3")
