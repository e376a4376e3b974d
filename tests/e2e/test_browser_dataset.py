"""A researcher uploads a CSV in headless Chromium, watches the progress bar and the page
follow validation to ready, sees the schema, preview and class chart, and submits a job on
it from the "Train on this dataset" link (queued is enough here: training is another test's)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from portal.catalog.services import catalog_ensure_builtins
from portal.cluster.models import Node
from tests.e2e.browser import chromium, screenshot, sign_in
from tests.e2e.conftest import Stack, wait_for
from tests.factories import make_user, small_csv

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_researcher_uploads_a_csv_sees_its_schema_and_trains_on_it(
    stack: Stack, tmp_path: Path
) -> None:
    catalog_ensure_builtins()
    make_user("dataset-researcher")
    wait_for(
        lambda: Node.objects.filter(name=stack.node_name, state=Node.State.ONLINE).exists(),
        timeout=30,
        what="the node to register",
    )
    csv = tmp_path / "plants.csv"
    csv.write_bytes(small_csv(80))
    with chromium(name="dataset") as browser:
        page = browser.new_page()
        page.goto(f"{stack.base_url}/catalog/datasets/upload/")
        sign_in(page, "dataset-researcher")
        expect(page).to_have_url(f"{stack.base_url}/catalog/datasets/upload/")

        page.set_input_files("input[name=file]", str(csv))
        page.fill("input[name=target]", "label")
        page.select_option("select[name=normalization]", "minmax")
        page.click("[data-testid=upload-submit]")

        expect(page).to_have_url(re.compile(r"/catalog/datasets/\d+/$"), timeout=30_000)
        dataset_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
        # The page polls the API and reloads when validation (the stack's control
        # worker) settles.
        expect(page.get_by_test_id("dataset-state")).to_have_text("Ready", timeout=60_000)
        schema = page.get_by_test_id("schema")
        for column in ("height", "width", "label"):
            expect(schema).to_contain_text(column)
        expect(page.get_by_test_id("preview")).to_contain_text("0.5")
        expect(page.get_by_test_id("num-rows")).to_have_text("80")
        expect(page.get_by_test_id("dataset-chart").locator("canvas").first).to_be_visible()
        screenshot(page, "dataset-ready")

        page.click("[data-testid=train-on-dataset]")
        expect(page).to_have_url(f"{stack.base_url}/jobs/new/?dataset={dataset_id}")
        page.select_option("select[name=dataset]", value=str(dataset_id))
        page.select_option("select[name=model]", label="MLP")
        page.fill("input[name=epochs]", "2")
        page.fill("input[name=procs_per_node]", "1")
        page.click("[data-testid=submit-job]")

        expect(page).to_have_url(re.compile(r"/jobs/\d+/$"), timeout=30_000)
        expect(page.get_by_test_id("job-state")).to_have_text(
            re.compile("queued|scheduled|running|succeeded", re.IGNORECASE), timeout=30_000
        )
        expect(page.locator("#job-summary")).to_contain_text("plants")
