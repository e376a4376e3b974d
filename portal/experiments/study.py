"""Optuna, over our own tables: the in-memory study rebuilt from a search's rows.

Our `Search` and `Trial` rows are the truth; Optuna's RDB storage is not used (it would be a
second ledger in PostgreSQL, with its own schema migrations, that could disagree with ours).
Each decision rebuilds a study in Optuna's in-memory storage: every trial is added in number
order with `add_trial` (its params, state, objective, intermediate values and the system
attributes Optuna left on it: successive halving's rung values, the grid id), and then the
study is asked for the next point or its pruner asked about one trial. The attributes the
call leaves are saved back on our row, so the next rebuild is the same study.

The sampler is seeded per trial number (`search.seed` and the number), so a rebuilt random
sampler does not hand out the same first point again and a search is reproducible.
Choices travel through Optuna as canonical JSON strings (its categorical distributions take
only scalars; `hidden_sizes` is a list).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState, create_trial

from portal.experiments.models import Search, Trial
from portal.experiments.schemas import Dimension, canonical


def dimensions(search: Search) -> list[Dimension]:
    return [Dimension.model_validate(raw) for raw in search.space]


def _distribution(dimension: Dimension) -> BaseDistribution:
    if dimension.kind == "choice":
        return CategoricalDistribution([canonical(value) for value in dimension.choices or []])
    assert dimension.low is not None and dimension.high is not None
    if dimension.kind == "int":
        # The highest value on the step's lattice (Optuna warns and moves an unaligned high).
        low, high = dimension.extremes()
        return IntDistribution(low, high, step=dimension.step or 1)
    return FloatDistribution(dimension.low, dimension.high, log=dimension.kind == "log_uniform")


def distributions(search: Search) -> dict[str, BaseDistribution]:
    return {dimension.name: _distribution(dimension) for dimension in dimensions(search)}


def _to_optuna(search: Search, params: dict[str, Any]) -> dict[str, Any]:
    kinds = {dimension.name: dimension.kind for dimension in dimensions(search)}
    return {
        name: canonical(value) if kinds[name] == "choice" else value
        for name, value in params.items()
    }


def _from_optuna(search: Search, params: dict[str, Any]) -> dict[str, Any]:
    kinds = {dimension.name: dimension.kind for dimension in dimensions(search)}
    return {
        name: json.loads(value) if kinds[name] == "choice" else value
        for name, value in params.items()
    }


def _seed(search: Search, number: int) -> int:
    return (search.seed * 1_000_003 + number) % (2**32)


def _epochs(search: Search) -> int:
    return int(search.base_request.get("training", {}).get("epochs", 30))


def _sampler(search: Search, number: int) -> optuna.samplers.BaseSampler:
    seed = _seed(search, number)
    if search.method == Search.Method.GRID:
        grid = {
            dimension.name: [
                canonical(v) if dimension.kind == "choice" else v
                for v in dimension.grid_values() or []
            ]
            for dimension in dimensions(search)
        }
        return optuna.samplers.GridSampler(grid, seed=seed)
    if search.method == Search.Method.TPE:
        # TPE models the space once a few trials have finished; until then it samples at
        # random. A small budget still gets a modelled half.
        startup = max(2, min(10, search.max_trials // 4))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    return optuna.samplers.RandomSampler(seed=seed)


def _pruner(search: Search) -> optuna.pruners.BasePruner:
    settings = search.pruner_settings
    if search.pruner == Search.Pruner.SUCCESSIVE_HALVING:
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=settings.get("min_resource", 1),
            reduction_factor=settings.get("reduction_factor", 3),
            min_early_stopping_rate=settings.get("min_early_stopping_rate", 0),
        )
    if search.pruner == Search.Pruner.HYPERBAND:
        return optuna.pruners.HyperbandPruner(
            min_resource=settings.get("min_resource", 1),
            max_resource=max(_epochs(search), settings.get("min_resource", 1)),
            reduction_factor=settings.get("reduction_factor", 3),
        )
    if search.pruner == Search.Pruner.MEDIAN:
        return optuna.pruners.MedianPruner(
            n_startup_trials=settings.get("startup_trials", 2),
            n_warmup_steps=settings.get("warmup_steps", 0),
        )
    return optuna.pruners.NopPruner()


def intermediate_values(trial: Trial, *, until: int | None = None) -> dict[int, float]:
    """The trial's metric per epoch (finite values only), up to `until` if given."""
    values: dict[int, float] = {}
    for step, value in trial.intermediate.items():
        if value is None or not math.isfinite(value):
            continue
        if until is None or int(step) <= until:
            values[int(step)] = float(value)
    return values


def _frozen(
    search: Search, trial: Trial, dists: dict[str, BaseDistribution], until: int | None
) -> FrozenTrial:
    params = _to_optuna(search, trial.params)
    attrs = dict(trial.optuna_attrs)
    if trial.state == Trial.State.COMPLETED and trial.best_value is not None:
        state, value = TrialState.COMPLETE, trial.best_value
    elif trial.state == Trial.State.PRUNED:
        state, value = TrialState.PRUNED, None
        until = trial.pruned_step if until is None else until
    elif trial.state == Trial.State.RUNNING:
        state, value = TrialState.RUNNING, None
    else:
        state, value = TrialState.FAIL, None
    return create_trial(
        state=state,
        value=value,
        params=params,
        distributions={name: dists[name] for name in params},
        system_attrs=attrs,
        intermediate_values=intermediate_values(trial, until=until),
    )


def build(
    search: Search, trials: list[Trial], *, number: int, judged: tuple[Trial, int] | None = None
) -> optuna.Study:
    """The study of `search` as its rows say, sampler seeded for trial `number`. `judged`
    (trial, epoch) adds that trial with its values up to that epoch only."""
    # Optuna logs every study it creates at INFO; a search creates one per decision.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"search-{search.pk}",
        direction="maximize" if search.direction == Search.Direction.MAXIMIZE else "minimize",
        sampler=_sampler(search, number),
        pruner=_pruner(search),
    )
    dists = distributions(search)
    for trial in sorted(trials, key=lambda t: t.number):
        until = judged[1] if judged is not None and judged[0].pk == trial.pk else None
        study.add_trial(_frozen(search, trial, dists, until))
    return study


@dataclass(frozen=True)
class Point:
    """The next trial's params (our JSON values) and the attributes the sampler left."""

    params: dict[str, Any]
    optuna_attrs: dict[str, Any]


def ask(search: Search, trials: list[Trial]) -> Point:
    number = len(trials)
    study = build(search, trials, number=number)
    asked = study.ask(distributions(search))
    frozen = study.trials[-1]
    return Point(params=_from_optuna(search, asked.params), optuna_attrs=dict(frozen.system_attrs))


@dataclass(frozen=True)
class Verdict:
    pruned: bool
    comparison: str
    optuna_attrs: dict[str, Any]


def judge(search: Search, trials: list[Trial], trial: Trial, step: int) -> Verdict:
    """Ask the search's pruner whether `trial` should stop after reporting epoch `step`."""
    study = build(search, trials, number=trial.number, judged=(trial, step))
    [frozen] = [t for t in study.get_trials(deepcopy=False) if t.number == trial.number]
    pruned = study.pruner.prune(study, frozen)
    [after] = [t for t in study.get_trials(deepcopy=False) if t.number == trial.number]
    comparison = _comparison(search, study, after, step) if pruned else ""
    return Verdict(pruned=pruned, comparison=comparison, optuna_attrs=dict(after.system_attrs))


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _comparison(search: Search, study: optuna.Study, trial: FrozenTrial, step: int) -> str:
    """Why the pruner stopped `trial` at `step`, in words, from what the study holds."""
    value = trial.intermediate_values[step]
    metric = search.metric
    head = f"{metric} {_fmt(value)} at epoch {step}"
    if math.isnan(value):
        return f"{head} is not a number"
    others = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
    if search.pruner == Search.Pruner.SUCCESSIVE_HALVING:
        rungs = sorted(
            int(key.removeprefix("completed_rung_"))
            for key in trial.system_attrs
            if key.startswith("completed_rung_")
        )
        rung = rungs[-1] if rungs else 0
        key = f"completed_rung_{rung}"
        competing = [t.system_attrs[key] for t in others if key in t.system_attrs] + [value]
        factor = int(search.pruner_settings.get("reduction_factor", 3))
        index = max(len(competing) // factor - 1, 0)
        ordered = sorted(competing, reverse=search.direction == Search.Direction.MAXIMIZE)
        return (
            f"successive halving, rung {rung}: {head} is not among the best 1/{factor} of the "
            f"{len(competing)} trials that reached this rung (needed "
            f"{'≥' if search.direction == Search.Direction.MAXIMIZE else '≤'} "
            f"{_fmt(ordered[index])})"
        )
    at_step = [t.intermediate_values[step] for t in others if step in t.intermediate_values]
    if search.pruner == Search.Pruner.MEDIAN:
        done = [
            t.intermediate_values[step]
            for t in others
            if t.state == TrialState.COMPLETE and step in t.intermediate_values
        ]
        if done:
            return (
                f"median: {head} is worse than the median {_fmt(statistics.median(done))} of "
                f"the {len(done)} completed trials at that epoch"
            )
    if at_step:
        best = (max if search.direction == Search.Direction.MAXIMIZE else min)(at_step)
        return (
            f"{search.get_pruner_display().lower()}: {head}, against the best "
            f"{_fmt(best)} of {len(at_step)} other trials at that epoch"
        )
    return f"{search.get_pruner_display().lower()}: {head}"
