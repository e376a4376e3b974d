"""A random search on the live stack: 6 trials, 2 at a time, on the local node agent (real
torchrun), with successive halving. Iris and a small MLP train a few epochs per trial; the
learning rate spans four decades with plain SGD, so some trials barely learn and the pruner
(reduction factor 3: after epoch 1, a trial must be among the best third so far) stops at
least one. The best trial is the best of the completed ones, and registering it creates a
model version whose lineage is its job. The search page then draws in headless Chromium
(the charts, the parallel coordinates, the sortable table) without a script error."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from portal.accounts.services import api_token_create
from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.services import IRIS_SLUG, MLP_SLUG, catalog_ensure_builtins
from portal.cluster.models import Node
from portal.experiments.models import Search, Trial
from portal.jobs.models import Job
from tests.e2e.browser import chromium, screenshot, sign_in
from tests.e2e.conftest import Stack, wait_for
from tests.factories import make_user

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _post(stack: Stack, token: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{stack.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def test_a_random_search_prunes_and_registers_its_best_trial(stack: Stack) -> None:
    catalog_ensure_builtins()
    iris = Dataset.objects.get(slug=IRIS_SLUG)
    mlp = ModelArchitecture.objects.get(slug=MLP_SLUG)
    user = make_user("searcher")
    token = api_token_create(user=user, name="e2e").plaintext
    wait_for(
        lambda: Node.objects.filter(name=stack.node_name, state=Node.State.ONLINE).exists(),
        timeout=30,
        what=f"node {stack.node_name} to register",
    )
    created = _post(
        stack,
        token,
        "/api/v1/searches/",
        {
            "name": "iris lr",
            "job": {
                "dataset": iris.pk,
                "model": mlp.pk,
                "hyperparameters": {"hidden_sizes": [16]},
                "training": {"epochs": 6, "batch_size": 16, "optimizer": "sgd", "seed": 3},
                "resources": {"nodes": 1, "procs_per_node": 1},
            },
            "space": [
                {
                    "name": "training.learning_rate",
                    "kind": "log_uniform",
                    "low": 0.0001,
                    "high": 1.0,
                }
            ],
            "method": "random",
            "metric": "val_loss",
            "max_trials": 6,
            "parallelism": 2,
            "seed": 11,
            "early_stopping": {
                "kind": "successive_halving",
                "min_resource": 1,
                "reduction_factor": 3,
            },
        },
    )
    assert created.status_code == 201, created.text
    search_id = created.json()["id"]

    def unfinished_at_most_two() -> bool:
        unfinished = Job.objects.filter(trial__search_id=search_id).exclude(state__in=Job.TERMINAL)
        assert unfinished.count() <= 2
        return Search.objects.get(pk=search_id).is_terminal

    try:
        wait_for(unfinished_at_most_two, timeout=480, interval=1.0, what="the search to end")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from exc

    search = Search.objects.get(pk=search_id)
    trials = list(search.trials.select_related("job").order_by("number"))
    states = [t.state for t in trials]
    assert search.state == Search.State.SUCCEEDED, (search.state_reason, states, stack.logs())
    assert len(trials) == 6
    pruned = [t for t in trials if t.state == Trial.State.PRUNED]
    assert pruned, [(t.state, t.intermediate) for t in trials]
    for trial in pruned:
        assert trial.pruned_step is not None and "rung" in trial.pruned_comparison
        assert trial.job is not None and trial.job.state in {
            Job.State.CANCELLED,
            Job.State.SUCCEEDED,
        }
    completed = [t for t in trials if t.state == Trial.State.COMPLETED]
    assert completed and all(t.job and t.job.state == Job.State.SUCCEEDED for t in completed)
    best = min(completed, key=lambda t: t.best_value or 0.0)
    assert search.best_trial_id == best.pk
    assert best.best_value == min(t.best_value for t in completed if t.best_value is not None)

    registered = _post(
        stack, token, f"/api/v1/searches/{search_id}/register-best/", {"name": "iris-best"}
    )
    assert registered.status_code == 201, registered.text
    version = registered.json()
    assert version["job"]["id"] == best.job_id
    assert version["dataset"]["id"] == iris.pk
    assert version["hyperparameters"]["training"]["learning_rate"] == pytest.approx(
        best.params["training.learning_rate"]
    )

    lowest = min(t.best_value for t in trials if t.best_value is not None)
    # The page, in a browser (no ORM calls from here on: Playwright runs an event loop).
    with chromium(name="search", viewport={"width": 1400, "height": 1200}) as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{stack.base_url}/searches/{search_id}/")
        sign_in(page, "searcher")
        expect(page.get_by_test_id("search-state")).to_have_text("Succeeded")
        rows = page.locator("[data-testid=trials] tbody tr")
        expect(rows).to_have_count(6)
        expect(page.get_by_test_id("curves-chart").locator("canvas").first).to_be_visible()
        expect(page.get_by_test_id("best-chart").locator("canvas").first).to_be_visible()
        expect(page.get_by_test_id("parallel-chart")).to_be_visible()
        expect(page.get_by_test_id("pruned-why").first).to_contain_text("rung")
        expect(page.get_by_test_id("best-value")).to_have_text(f"{best.best_value:.4f}")
        # Sorting by the best value puts the lowest first (a pruned trial's too: its
        # values are what it reported).
        page.locator("[data-testid=trials] th", has_text="Best").click()
        shown = rows.first.locator("td").nth(2).get_attribute("data-value")
        assert shown is not None and float(shown) == pytest.approx(lowest)
        screenshot(page, "search")
    assert errors == []
