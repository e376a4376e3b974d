"""The new-search form: a model and dataset, a base job, and one space field per
hyperparameter of the model's architecture and per searchable training setting.

A space field reads `low..high` (uniform), `low..high log` (log-uniform), `low..high int`
(integers, `step N` optional) or a JSON list of choices (`["relu", "tanh"]`, `[[8], [16, 16]]`);
blank leaves the base's value. The form builds a `SearchRequest` payload; the service checks
the values against the architecture, and its errors come back on the fields they name.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms

from portal.catalog.models import Dataset, ModelArchitecture
from portal.experiments.schemas import METRICS, TRAINING_DIMENSIONS
from portal.jobs.forms import hyperparameter_fields

SPACE_PREFIX = "space__"
_RANGE = re.compile(
    r"^\s*(?P<low>[-+0-9.eE]+)\s*\.\.\s*(?P<high>[-+0-9.eE]+)\s*"
    r"(?P<kind>log|int)?\s*(?:step\s+(?P<step>\d+))?\s*$"
)
SPACE_HELP = "low..high, low..high log, low..high int [step N], or a JSON list of choices"


def parse_dimension(name: str, text: str) -> dict[str, Any]:
    """One space field's text as a `Dimension` payload; ValueError with the reason."""
    text = text.strip()
    if text.startswith("["):
        try:
            choices = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"Not a JSON list: {exc.msg}.") from exc
        return {"name": name, "kind": "choice", "choices": choices}
    match = _RANGE.match(text)
    if match is None:
        raise ValueError(f"Write {SPACE_HELP}.")
    kind = {"log": "log_uniform", "int": "int", None: "uniform"}[match["kind"]]
    dimension: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "low": float(match["low"]),
        "high": float(match["high"]),
    }
    if match["step"]:
        if kind != "int":
            raise ValueError("Only an int range has a step.")
        dimension["step"] = int(match["step"])
    return dimension


class SearchForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    model = forms.ModelChoiceField(queryset=ModelArchitecture.objects.none())
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none())
    method = forms.ChoiceField(
        choices=[("random", "Random"), ("grid", "Grid"), ("tpe", "Bayesian (TPE)")]
    )
    metric = forms.ChoiceField(choices=[(m, m) for m in METRICS])
    direction = forms.ChoiceField(
        choices=[("", "automatic"), ("minimize", "minimize"), ("maximize", "maximize")],
        required=False,
    )
    max_trials = forms.IntegerField(min_value=1, max_value=500, initial=10)
    parallelism = forms.IntegerField(min_value=1, max_value=64, initial=2)
    seed = forms.IntegerField(min_value=0, initial=0)
    early_stopping = forms.ChoiceField(
        choices=[
            ("none", "None"),
            ("successive_halving", "Successive halving (ASHA)"),
            ("hyperband", "Hyperband"),
            ("median", "Median"),
        ]
    )
    min_resource = forms.IntegerField(min_value=1, initial=1, label="Epochs before judging")
    reduction_factor = forms.IntegerField(min_value=2, max_value=10, initial=3)
    epochs = forms.IntegerField(min_value=1, max_value=10_000, initial=10)
    batch_size = forms.IntegerField(min_value=1, initial=16)
    learning_rate = forms.FloatField(min_value=0.0, initial=0.01)
    procs_per_node = forms.IntegerField(min_value=1, initial=1, label="Processes per trial")

    def __init__(
        self,
        *args: Any,
        models: Any,
        datasets: Any,
        architecture: ModelArchitecture | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        model_field = self.fields["model"]
        dataset_field = self.fields["dataset"]
        assert isinstance(model_field, forms.ModelChoiceField)
        assert isinstance(dataset_field, forms.ModelChoiceField)
        model_field.queryset = models
        dataset_field.queryset = datasets
        self.architecture = architecture
        self.space_names: list[str] = []
        names = [f"training.{name}" for name in TRAINING_DIMENSIONS]
        if architecture is not None:
            model_field.initial = architecture.pk
            names += [
                f"hyperparameters.{name}"
                for name in hyperparameter_fields(architecture)
                if architecture.family != ModelArchitecture.Family.CUSTOM
            ]
        for name in names:
            field_name = SPACE_PREFIX + name.replace(".", "__")
            self.fields[field_name] = forms.CharField(
                label=name, required=False, help_text=SPACE_HELP
            )
            self.space_names.append(name)

    def space_fields(self) -> list[forms.BoundField]:
        return [self[SPACE_PREFIX + name.replace(".", "__")] for name in self.space_names]

    def field_for(self, key: str) -> str | None:
        """The form field an error key of the service names (`space.2`, `job.dataset`)."""
        if key.startswith("space."):
            index = int(key.split(".")[1])
            return SPACE_PREFIX + self._space_used[index].replace(".", "__")
        last = key.split(".")[-1]
        return last if last in self.fields else None

    def payload(self) -> dict[str, Any]:
        """The `SearchRequest` payload of a valid form (space errors added to the form)."""
        data = self.cleaned_data
        space: list[dict[str, Any]] = []
        self._space_used: list[str] = []
        for name in self.space_names:
            field_name = SPACE_PREFIX + name.replace(".", "__")
            text = data.get(field_name) or ""
            if not text.strip():
                continue
            try:
                space.append(parse_dimension(name, text))
                self._space_used.append(name)
            except ValueError as exc:
                self.add_error(field_name, str(exc))
        if not space and not self.errors:
            self.add_error(None, "Search at least one dimension: fill in a space field.")
        return {
            "name": data["name"],
            "job": {
                "dataset": data["dataset"].pk,
                "model": data["model"].pk,
                "training": {
                    "epochs": data["epochs"],
                    "batch_size": data["batch_size"],
                    "learning_rate": data["learning_rate"],
                },
                "resources": {"nodes": 1, "procs_per_node": data["procs_per_node"]},
            },
            "space": space,
            "method": data["method"],
            "metric": data["metric"],
            "direction": data["direction"] or None,
            "max_trials": data["max_trials"],
            "parallelism": data["parallelism"],
            "seed": data["seed"],
            "early_stopping": {
                "kind": data["early_stopping"],
                "min_resource": data["min_resource"],
                "reduction_factor": data["reduction_factor"],
            },
        }
