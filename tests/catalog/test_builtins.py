"""The built-in catalog: Iris, the seed example and the synthetic datasets (validated like an
upload), and one architecture per built-in family with its Struct's defaults."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from portal.catalog.models import Dataset, ModelArchitecture
from portal.catalog.services import BUILTIN_DATASETS, catalog_ensure_builtins
from workers.messages import BUILTIN_ARCHITECTURES, MlpModel, ModelSpec
from workers.storage import local_path_for

BUILTIN_SLUGS = {builtin.slug for builtin in BUILTIN_DATASETS}


def test_iris_is_installed_public_ready_and_validated(iris, storage_root: Path):
    path = local_path_for(iris.uri)
    assert path.is_relative_to(storage_root.resolve())
    assert iris.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert iris.size_bytes == path.stat().st_size
    assert (iris.is_public, iris.state, iris.owner, iris.version) == (
        True,
        Dataset.State.READY,
        None,
        1,
    )
    assert [feature["name"] for feature in iris.features] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert iris.target == "species"
    assert iris.classes == ["setosa", "versicolor", "virginica"]
    assert iris.num_rows == 150
    assert iris.schema and iris.preview and iris.chart["kind"] == "classes"
    # What a node is sent converts under the contract.
    assert iris.node_spec().features[0].name == "sepal_length"


def test_every_builtin_dataset_is_ready_with_a_node_spec(iris):
    builtins = Dataset.objects.filter(slug__in=BUILTIN_SLUGS)
    assert {dataset.slug for dataset in builtins} == BUILTIN_SLUGS
    for dataset in builtins:
        assert dataset.state == Dataset.State.READY, (dataset.slug, dataset.state_reason)
        spec = dataset.node_spec()
        assert spec.num_rows >= 2 and spec.features
    formats = {dataset.slug: dataset.format for dataset in builtins}
    assert formats["synthetic-regression"] == "parquet"
    assert formats["synthetic-sequences"] == "npz"
    assert formats["synthetic-images"] == "images"
    assert Dataset.objects.get(slug="synthetic-regression").task == "regression"
    assert Dataset.objects.get(slug="seed-example").node_spec().input_shape == (10,)


def test_one_architecture_per_family_with_the_structs_defaults(mlp):
    families = set(ModelArchitecture.objects.values_list("family", flat=True))
    assert families == {cls.__struct_config__.tag for cls in BUILTIN_ARCHITECTURES}
    assert msgspec.convert(mlp.default_params, ModelSpec) == MlpModel()
    assert mlp.slug == "mlp" and mlp.name == "MLP"
    seed = ModelArchitecture.objects.get(name="10-5-1 MLP")
    assert msgspec.convert(seed.default_params, ModelSpec) == MlpModel(
        hidden_sizes=(5,), activation="sigmoid", output="sigmoid"
    )
    for parameter in ("hidden_sizes", "activation", "dropout"):
        assert parameter in mlp.description


def test_running_it_again_changes_nothing(iris, mlp):
    before = {d.slug: (d.pk, d.sha256, d.validated_at) for d in Dataset.objects.all()}
    catalog_ensure_builtins()
    after = {d.slug: (d.pk, d.sha256, d.validated_at) for d in Dataset.objects.all()}
    assert after == before
    assert ModelArchitecture.objects.count() == len(BUILTIN_ARCHITECTURES) + 1


def test_it_repairs_a_damaged_copy(iris):
    path = local_path_for(iris.uri)
    path.write_text("broken\n")
    Dataset.objects.filter(pk=iris.pk).update(state=Dataset.State.INVALID)
    catalog_ensure_builtins()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == iris.sha256
    assert Dataset.objects.get(pk=iris.pk).state == Dataset.State.READY
    # No temporary files are left next to it.
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".")]
