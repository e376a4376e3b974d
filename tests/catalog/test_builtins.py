"""The built-in Iris dataset and MLP architecture."""

from __future__ import annotations

import hashlib
from pathlib import Path

from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.services import catalog_ensure_builtins


def test_iris_is_installed_public_and_ready(iris, storage_root: Path):
    path = storage_root.resolve() / "datasets" / "iris" / "iris.csv"
    assert iris.uri == path.as_uri()
    assert iris.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert iris.size_bytes == path.stat().st_size
    assert (iris.is_public, iris.state, iris.owner) == (True, Dataset.State.READY, None)
    assert [feature["name"] for feature in iris.features] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert iris.target == "species"
    assert iris.node_spec().input_shape == (4,)
    assert iris.classes == ["setosa", "versicolor", "virginica"]
    assert iris.num_rows == 150


def test_mlp_is_public_with_its_defaults_described(mlp):
    assert mlp.is_public and mlp.family == ModelArchitecture.Family.MLP
    assert mlp.name == "MLP"
    assert mlp.default_params == {"hidden_sizes": [32, 32], "activation": "relu", "dropout": 0.0}
    for parameter in ("hidden_sizes", "activation", "dropout"):
        assert parameter in mlp.description


def test_running_it_again_changes_nothing(iris, mlp, storage_root: Path):
    catalog_ensure_builtins()
    catalog_ensure_builtins()
    assert Dataset.objects.get() == iris and ModelArchitecture.objects.get() == mlp
    assert Dataset.objects.get().sha256 == iris.sha256


def test_it_repairs_a_damaged_copy(iris, storage_root: Path):
    path = storage_root / "datasets" / "iris" / "iris.csv"
    path.write_text("broken\n")
    Dataset.objects.filter(pk=iris.pk).update(state=Dataset.State.INVALID)
    catalog_ensure_builtins()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == iris.sha256
    assert Dataset.objects.get().state == Dataset.State.READY
    # No temporary files are left next to it.
    assert [p.name for p in path.parent.iterdir()] == ["iris.csv"]
