"""The browser's job form. `JobRequest` (pydantic) stays the one source of truth for limits:
the form only converts text to Python values, then lets the schema and `job_submit` judge them,
and puts each complaint next to the field it is about.

The hyperparameter fields are those of the selected model's architecture: one form field per
field of its msgspec Struct (`workers.messages`), of the kind its type asks for (a number box
with its bounds, a choice, a checkbox, a comma-separated list), prefilled with the model's
defaults. They are named `hp_<field>`; picking another model reloads the form for it
(`?model=<id>`), so the page stays server-rendered. Custom code takes a JSON object.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
from django import forms
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from portal.accounts.models import Team
from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.selectors import datasets_visible_to, models_visible_to
from portal.cluster.selectors import PoolCapacity, pools_with_capacity
from portal.jobs.schemas import JobRequest, Resources, TrainingParams
from portal.jobs.specs import spec_merged
from workers.hyperparameters import ParameterField, architecture_of, parameter_fields

HP_PREFIX = "hp_"

# Form field -> its path inside JobRequest. Errors travel back along the same map.
FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "dataset": ("dataset",),
    "model": ("model",),
    "epochs": ("training", "epochs"),
    "batch_size": ("training", "batch_size"),
    "learning_rate": ("training", "learning_rate"),
    "optimizer": ("training", "optimizer"),
    "loss": ("training", "loss"),
    "seed": ("training", "seed"),
    "checkpoint_every": ("training", "checkpoint_every"),
    "keep_last": ("training", "keep_last"),
    "best_metric": ("training", "best_metric"),
    "nodes": ("resources", "nodes"),
    "procs_per_node": ("resources", "procs_per_node"),
    "gpus_per_node": ("resources", "gpus_per_node"),
    "pool": ("resources", "pool"),
    "gpu_model": ("resources", "gpu_model"),
    "priority": ("priority",),
    "max_restarts": ("max_restarts",),
    "team": ("team",),
    "preemptible": ("scheduling", "preemptible"),
}
_FIELD_FOR_PATH = {path: field for field, path in FIELD_PATHS.items()}

# Groups of fields, in the order the template lays them out.
SECTIONS: dict[str, tuple[str, ...]] = {
    "What to train": ("name", "dataset", "model"),
    "Training": (
        "epochs",
        "batch_size",
        "learning_rate",
        "optimizer",
        "loss",
        "seed",
        "checkpoint_every",
        "keep_last",
        "best_metric",
    ),
    "Resources": (
        "nodes",
        "procs_per_node",
        "gpus_per_node",
        "pool",
        "gpu_model",
        "priority",
        "max_restarts",
        "team",
        "preemptible",
    ),
}


# How the page names each choice the schema allows.
CHOICE_LABELS: dict[str, dict[str, str]] = {
    "activation": {"relu": "ReLU", "tanh": "tanh", "gelu": "GELU", "sigmoid": "sigmoid"},
    "output": {"logits": "Logits (softmax)", "sigmoid": "Sigmoid (one unit for two classes)"},
    "best_metric": {"val_loss": "Lowest validation loss", "val_accuracy": "Highest accuracy"},
    "optimizer": {"adam": "Adam", "sgd": "SGD"},
    "loss": {"cross_entropy": "Cross-entropy", "mse": "Mean squared error"},
}


# ---- hyperparameter fields, read from the architecture's Struct ------------------------------

# A custom model's hyperparameters are one JSON object (its `hparams`).
CUSTOM_HPARAMS = "hparams"


class IntegerListField(forms.CharField):
    """Whole numbers separated by commas ("32,32"), as a list; bounds are the schema's."""

    def to_python(self, value: Any) -> list[int] | None:  # type: ignore[override]
        text = str(super().to_python(value) or "").replace(" ", "")
        if not text:
            return None
        try:
            return [int(part) for part in text.split(",") if part]
        except ValueError:
            raise ValidationError(
                "Enter whole numbers separated by commas, like 32,32.", code="invalid"
            ) from None

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return ",".join(str(item) for item in value)
        return value


class JsonObjectField(forms.CharField):
    """A JSON object of names to numbers, booleans or short strings."""

    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false"})

    def to_python(self, value: Any) -> dict[str, Any]:  # type: ignore[override]
        text = str(super().to_python(value) or "").strip()
        if not text:
            return {}
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"Enter a JSON object: {exc}.", code="invalid") from None
        if not isinstance(data, dict):
            raise ValidationError('Enter a JSON object, like {"width": 64}.', code="invalid")
        return data

    def prepare_value(self, value: Any) -> Any:
        return json.dumps(value) if isinstance(value, dict) else value


def _bounds_help(field: ParameterField) -> str:
    """`≥ 1 and ≤ 4096`, from a field's bounds (of each item, for a list)."""
    parts = []
    if field["min"] is not None:
        parts.append(f"{'>' if field['min_exclusive'] else '≥'} {field['min']}")
    if field["max"] is not None:
        parts.append(f"{'<' if field['max_exclusive'] else '≤'} {field['max']}")
    return " and ".join(parts)


def _parameter_field(field: ParameterField, initial: Any) -> forms.Field:
    """The form field for one hyperparameter; its description and bounds are the help text."""
    name, label, kind = field["name"], field["label"], field["kind"]
    form_field: forms.Field
    if kind == "choice":
        labels = CHOICE_LABELS.get(name, {})
        values = list(field["choices"] or [])
        by_text = {str(value): value for value in values}
        form_field = forms.TypedChoiceField(
            label=label,
            choices=[(value, labels.get(str(value), str(value))) for value in values],
            # Posted as text; the schema wants the Literal's own value (3, not "3").
            coerce=lambda text: by_text.get(str(text), text),
            initial=initial,
        )
    elif kind == "bool":
        form_field = forms.BooleanField(label=label, required=False, initial=initial)
    elif kind == "int":
        form_field = forms.IntegerField(
            label=label, initial=initial, widget=_number(), help_text=_bounds_help(field)
        )
    elif kind == "float":
        form_field = forms.FloatField(
            label=label,
            initial=initial,
            widget=_number({"step": "any"}),
            help_text=_bounds_help(field),
        )
    else:  # int_list
        most = field["max_items"]
        sizes = f"{field['min_items'] or 0} to {most} values" if most else ""
        item = _bounds_help(field)
        form_field = IntegerListField(
            label=label,
            initial=list(initial) if initial is not None else None,
            help_text=", ".join(part for part in (sizes, f"each {item}" if item else "") if part),
        )
    if field["help"]:
        form_field.help_text = " ".join(
            str(part) for part in (field["help"], form_field.help_text) if part
        )
    return form_field


def hyperparameter_fields(architecture: ModelArchitecture) -> dict[str, forms.Field]:
    """The form fields of `architecture`'s hyperparameters, prefilled with its defaults: the
    Struct's own fields (`workers.hyperparameters.parameter_fields`), so the form and the
    validation cannot disagree."""
    defaults = dict(architecture.default_params)
    if architecture.family == ModelArchitecture.Family.CUSTOM:
        return {
            CUSTOM_HPARAMS: JsonObjectField(
                label="Hyperparameters",
                required=False,
                initial=defaults,
                help_text="A JSON object passed to your build_model(**hparams).",
            )
        }
    try:
        struct = architecture_of(architecture.family)
    except ValueError:
        return {}
    return {
        field["name"]: _parameter_field(field, defaults.get(field["name"], field["default"]))
        for field in parameter_fields(struct)
    }


def _model_or_first(models: Any, wanted: str | int | None) -> ModelArchitecture | None:
    if wanted not in (None, ""):
        try:
            chosen: ModelArchitecture | None = models.filter(pk=int(wanted)).first()
        except (TypeError, ValueError):
            chosen = None
        if chosen is not None:
            return chosen
    first: ModelArchitecture | None = models.first()
    return first


def field_for_path(path: tuple[str | int, ...]) -> str | None:
    """The form field that owns `path` (or a prefix of it), e.g. hp_hidden_sizes for
    ("hyperparameters", "hidden_sizes", 2); None when the error is about the whole job."""
    names = tuple(str(part) for part in path)
    if names[:1] == ("hyperparameters",):
        return f"{HP_PREFIX}{names[1]}" if len(names) > 1 else f"{HP_PREFIX}all"
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
    checkpoint_every = forms.IntegerField(
        label="Checkpoint every",
        initial=_TRAINING.checkpoint_every,
        widget=_number(),
        help_text="Epochs between checkpoints (the last epoch always gets one).",
    )
    keep_last = forms.IntegerField(
        label="Keep checkpoints",
        initial=_TRAINING.keep_last,
        widget=_number(),
        help_text="The newest this many are kept, and the best besides.",
    )
    best_metric = forms.ChoiceField(
        label="Best checkpoint by",
        choices=_choices(TrainingParams, "best_metric", CHOICE_LABELS["best_metric"]),
        initial=_TRAINING.best_metric,
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
    preemptible = forms.BooleanField(
        label="Preemptible",
        required=False,
        initial=False,
        help_text=(
            "A higher-priority job may stop it (it checkpoints first); it is requeued and "
            "resumes from that checkpoint, without using up a restart."
        ),
    )

    team = forms.ChoiceField(
        required=False,
        help_text="The team the job is charged to (its quota applies).",
    )

    def __init__(
        self,
        *args: Any,
        user: AbstractBaseUser | AnonymousUser,
        selected_model: str | None = None,
        selected_dataset: str | None = None,
        source: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # A stored spec the form starts from (a job to run again, a template): its fields
        # prefill the form, and what the form does not show (labels, team, scheduling) is
        # kept, so the new request differs from it only where the user changed a field.
        self.source = source if isinstance(source, dict) else None
        if self.source is not None and not self.is_bound:
            # A model or dataset picked on the page (`?model=`, the form reloading for another
            # model) wins over the source's; the rest of the source still fills the form.
            selected_model = selected_model or str(self.source.get("model", ""))
            selected_dataset = selected_dataset or str(self.source.get("dataset", ""))
            for field_name, path in FIELD_PATHS.items():
                value: Any = self.source
                for part in path:
                    value = value.get(part) if isinstance(value, dict) else None
                if value is not None:
                    self.initial[field_name] = value
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
        team_field = self.fields["team"]
        assert isinstance(team_field, forms.ChoiceField)
        team_field.choices = [("", "Your first team")] + [
            (name, name)
            for name in Team.objects.filter(members=user.pk).values_list("name", flat=True)
        ]
        self.job_request: JobRequest | None = None
        # The architecture whose fields the form shows: the one posted, else the one asked
        # for (`?model=`), else the first the user may use.
        wanted = self.data.get("model") if self.is_bound else selected_model
        self.architecture = _model_or_first(self.models, wanted)
        self.hyperparameter_names: list[str] = []
        if not self.is_bound and selected_dataset:
            self.initial["dataset"] = selected_dataset
        if self.architecture is not None:
            if not self.is_bound:
                # The model select shows the architecture whose fields the form has.
                self.initial["model"] = self.architecture.pk
            stored = (self.source or {}).get("hyperparameters")
            from_source = (
                isinstance(stored, dict)
                and self.source is not None
                and self.source.get("model") == self.architecture.pk
            )
            for name, field in hyperparameter_fields(self.architecture).items():
                self.fields[f"{HP_PREFIX}{name}"] = field
                self.hyperparameter_names.append(name)
                if from_source and not self.is_bound:
                    assert isinstance(stored, dict)
                    if name == CUSTOM_HPARAMS:
                        self.initial[f"{HP_PREFIX}{name}"] = stored
                    elif name in stored:
                        self.initial[f"{HP_PREFIX}{name}"] = stored[name]

    def sections(self) -> list[tuple[str, list[forms.BoundField]]]:
        hyper = [self[f"{HP_PREFIX}{name}"] for name in self.hyperparameter_names]
        sections = [(title, [self[name] for name in names]) for title, names in SECTIONS.items()]
        title = f"Hyperparameters of {self.architecture.name}" if self.architecture else ""
        return [sections[0], (title, hyper), *sections[1:]] if hyper else sections

    def clean_pool(self) -> str | None:
        return self.cleaned_data["pool"] or None

    def clean_team(self) -> str | None:
        return self.cleaned_data["team"] or None

    def clean_gpu_model(self) -> str | None:
        return self.cleaned_data["gpu_model"].strip() or None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        payload: dict[str, Any] = {"hyperparameters": {}}
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
        for name in self.hyperparameter_names:
            if (value := cleaned.get(f"{HP_PREFIX}{name}")) is not None:
                if name == CUSTOM_HPARAMS:
                    payload["hyperparameters"].update(value)
                else:
                    payload["hyperparameters"][name] = value
        if self.source is not None:
            # What the form shows replaces the source's; the rest of the source stays.
            source = dict(self.source)
            if source.get("model") != payload.get("model"):
                source.pop("hyperparameters", None)  # another model's do not apply
            payload = spec_merged(source, payload)
            if "hyperparameters" in payload and CUSTOM_HPARAMS in self.hyperparameter_names:
                payload["hyperparameters"] = cleaned.get(f"{HP_PREFIX}{CUSTOM_HPARAMS}") or {}
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
