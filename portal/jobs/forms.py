"""The browser's job form. `JobRequest` (pydantic) stays the one source of truth for limits:
the form only converts text to Python values, then lets the schema and `job_submit` judge them,
and puts each complaint next to the field it is about.
"""

from __future__ import annotations

from typing import Any

import pydantic
from django import forms
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.selectors import datasets_visible_to, models_visible_to
from portal.cluster.selectors import PoolCapacity, pools_with_capacity
from portal.jobs.schemas import JobRequest, MlpParams, Resources, TrainingParams

# Form field -> its path inside JobRequest. Errors travel back along the same map.
FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "dataset": ("dataset",),
    "model": ("model",),
    "hidden_sizes": ("hyperparameters", "hidden_sizes"),
    "activation": ("hyperparameters", "activation"),
    "dropout": ("hyperparameters", "dropout"),
    "epochs": ("training", "epochs"),
    "batch_size": ("training", "batch_size"),
    "learning_rate": ("training", "learning_rate"),
    "optimizer": ("training", "optimizer"),
    "loss": ("training", "loss"),
    "seed": ("training", "seed"),
    "val_fraction": ("training", "val_fraction"),
    "nodes": ("resources", "nodes"),
    "procs_per_node": ("resources", "procs_per_node"),
    "gpus_per_node": ("resources", "gpus_per_node"),
    "pool": ("resources", "pool"),
    "gpu_model": ("resources", "gpu_model"),
    "priority": ("priority",),
    "max_restarts": ("max_restarts",),
}
_FIELD_FOR_PATH = {path: field for field, path in FIELD_PATHS.items()}

# Groups of fields, in the order the template lays them out.
SECTIONS: dict[str, tuple[str, ...]] = {
    "What to train": ("name", "dataset", "model"),
    "Hyperparameters": ("hidden_sizes", "activation", "dropout"),
    "Training": (
        "epochs",
        "batch_size",
        "learning_rate",
        "optimizer",
        "loss",
        "seed",
        "val_fraction",
    ),
    "Resources": (
        "nodes",
        "procs_per_node",
        "gpus_per_node",
        "pool",
        "gpu_model",
        "priority",
        "max_restarts",
    ),
}


# How the page names each choice the schema allows.
CHOICE_LABELS: dict[str, dict[str, str]] = {
    "activation": {"relu": "ReLU", "tanh": "tanh", "gelu": "GELU"},
    "optimizer": {"adam": "Adam", "sgd": "SGD"},
    "loss": {"cross_entropy": "Cross-entropy", "mse": "Mean squared error"},
}


def field_for_path(path: tuple[str | int, ...]) -> str | None:
    """The form field that owns `path` (or a prefix of it), e.g. hidden_sizes for
    ("hyperparameters", "hidden_sizes", 2); None when the error is about the whole job."""
    names = tuple(str(part) for part in path)
    for end in range(len(names), 0, -1):
        field = _FIELD_FOR_PATH.get(names[:end])
        if field is not None:
            return field
    return None


def _choices(schema: type[pydantic.BaseModel], name: str, labels: dict[str, str]) -> list[Any]:
    # The Literal's values come from the schema, so a new option appears here by itself.
    annotation = schema.model_fields[name].annotation
    return [(value, labels.get(value, value)) for value in getattr(annotation, "__args__", ())]


def _number(attrs: dict[str, str] | None = None) -> forms.NumberInput:
    return forms.NumberInput(attrs={"inputmode": "decimal", **(attrs or {})})


_MLP = MlpParams()
_TRAINING = TrainingParams()
_RESOURCES = Resources()


def _pool_label(pool: PoolCapacity) -> str:
    free = f"{pool['cpu_slots_free']} of {pool['cpu_slots']} CPU slots"
    if pool["gpus"]:
        free = f"{pool['gpus_free']} of {pool['gpus']} GPUs, " + free
    return f"{pool['name']} ({free} free)"


class JobForm(forms.Form):
    name = forms.CharField(required=False, max_length=200, help_text="Optional; a label for you.")
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), empty_label=None)
    model = forms.ModelChoiceField(queryset=ModelArchitecture.objects.none(), empty_label=None)

    hidden_sizes = forms.CharField(
        initial=",".join(str(size) for size in _MLP.hidden_sizes),
        help_text="Width of each hidden layer, comma-separated.",
    )
    activation = forms.ChoiceField(
        choices=_choices(MlpParams, "activation", CHOICE_LABELS["activation"]),
        initial=_MLP.activation,
    )
    dropout = forms.FloatField(initial=_MLP.dropout, widget=_number({"step": "any"}))

    epochs = forms.IntegerField(initial=_TRAINING.epochs, widget=_number())
    batch_size = forms.IntegerField(initial=_TRAINING.batch_size, widget=_number())
    learning_rate = forms.FloatField(
        initial=_TRAINING.learning_rate, widget=_number({"step": "any"})
    )
    optimizer = forms.ChoiceField(
        choices=_choices(TrainingParams, "optimizer", CHOICE_LABELS["optimizer"]),
        initial=_TRAINING.optimizer,
    )
    loss = forms.ChoiceField(
        choices=_choices(TrainingParams, "loss", CHOICE_LABELS["loss"]),
        initial=_TRAINING.loss,
    )
    seed = forms.IntegerField(initial=_TRAINING.seed, widget=_number())
    val_fraction = forms.FloatField(
        label="Validation fraction",
        initial=_TRAINING.val_fraction,
        widget=_number({"step": "any"}),
        help_text="Share of rows held out for validation.",
    )

    nodes = forms.IntegerField(initial=_RESOURCES.nodes, widget=_number())
    procs_per_node = forms.IntegerField(
        label="Processes per node",
        initial=_RESOURCES.procs_per_node,
        widget=_number(),
        help_text="CPU slots on each node (CPU jobs).",
    )
    gpus_per_node = forms.IntegerField(
        label="GPUs per node",
        initial=_RESOURCES.gpus_per_node,
        widget=_number(),
        help_text="0 runs on CPU slots; one process per GPU otherwise.",
    )
    pool = forms.ChoiceField(
        required=False,
        choices=[("", "Any pool")],
        help_text="Where it may run; each pool shows what is free now.",
    )
    gpu_model = forms.CharField(
        label="GPU model",
        required=False,
        max_length=100,
        help_text='Optional: only GPUs whose name contains this, like "H200".',
    )
    priority = forms.IntegerField(
        initial=JobRequest.model_fields["priority"].default,
        widget=_number(),
        help_text="Higher runs first, from -100 to 100.",
    )
    max_restarts = forms.IntegerField(
        label="Restarts",
        initial=JobRequest.model_fields["max_restarts"].default,
        widget=_number(),
        help_text="Times to resume from the latest checkpoint after a failure.",
    )

    def __init__(self, *args: Any, user: AbstractBaseUser | AnonymousUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        dataset_field = self.fields["dataset"]
        model_field = self.fields["model"]
        assert isinstance(dataset_field, forms.ModelChoiceField)
        assert isinstance(model_field, forms.ModelChoiceField)
        dataset_field.queryset = datasets_visible_to(user).filter(state=Dataset.State.READY)
        self.models = models_visible_to(user)
        model_field.queryset = self.models
        pool_field = self.fields["pool"]
        assert isinstance(pool_field, forms.ChoiceField)
        pool_field.choices = [("", "Any pool")] + [
            (pool["name"], _pool_label(pool)) for pool in pools_with_capacity()
        ]
        self.job_request: JobRequest | None = None
        if not self.is_bound:
            self._prefill_model_defaults()

    def _prefill_model_defaults(self) -> None:
        # Every hyperparameter the form sends overrides the model's default, so the form
        # starts from the defaults of the model it preselects (the page's script follows
        # later choices).
        defaults = next(iter(self.model_defaults().values()), {})
        for name in ("activation", "dropout"):
            if name in defaults:
                self.initial.setdefault(name, defaults[name])
        sizes = defaults.get("hidden_sizes")
        if isinstance(sizes, list):
            self.initial.setdefault("hidden_sizes", ",".join(str(size) for size in sizes))

    def model_defaults(self) -> dict[str, dict[str, Any]]:
        """Each selectable model's default hyperparameters, for the page to prefill."""
        return {str(model.pk): dict(model.default_params) for model in self.models}

    def sections(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(title, [self[name] for name in names]) for title, names in SECTIONS.items()]

    def clean_pool(self) -> str | None:
        return self.cleaned_data["pool"] or None

    def clean_gpu_model(self) -> str | None:
        return self.cleaned_data["gpu_model"].strip() or None

    def clean_hidden_sizes(self) -> list[int]:
        text: str = self.cleaned_data["hidden_sizes"]
        try:
            return [int(part) for part in text.replace(" ", "").split(",") if part]
        except ValueError:
            raise ValidationError(
                "Enter whole numbers separated by commas, like 32,32.", code="invalid"
            ) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        payload: dict[str, Any] = {}
        for field, path in FIELD_PATHS.items():
            if field not in cleaned:
                # Django already said what is wrong; the schema's default would only hide it.
                continue
            value = cleaned[field]
            if field in {"dataset", "model"}:
                value = value.pk
            target = payload
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = value
        try:
            self.job_request = JobRequest.model_validate(payload)
        except pydantic.ValidationError as exc:
            for error in exc.errors():
                self._add_error_once(field_for_path(error["loc"]), error["msg"])
        return cleaned

    def add_submit_errors(self, exc: ValidationError) -> None:
        """Put `job_submit`'s complaints (keyed by dotted JobRequest paths) on their fields."""
        if not hasattr(exc, "error_dict"):
            for message in exc.messages:
                self._add_error_once(None, message)
            return
        for key, messages in exc.message_dict.items():
            field = None if key == NON_FIELD_ERRORS else field_for_path(tuple(key.split(".")))
            for message in messages:
                self._add_error_once(field, message)

    def _add_error_once(self, field: str | None, message: str) -> None:
        # A field Django already rejected keeps its own, more specific message.
        if field is not None and field in self.errors:
            return
        self.add_error(field, message)
