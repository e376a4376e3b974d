"""A user's model file: loaded only with a matching checksum; its errors name its lines."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from workers.messages import CustomModel
from workers.models import ModelShapeError, custom_model, load_custom

GOOD = """\
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, features, outputs, hidden):
        super().__init__()
        layers = [nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, outputs)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


def build_model(input_shape, num_classes, hidden=8):
    return Net(input_shape[0], num_classes, hidden)
"""


def _spec(tmp_path: Path, code: str, name: str = "net.py", **hparams) -> CustomModel:
    path = tmp_path / "uploads" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(code))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return CustomModel(code_uri=path.as_uri(), code_sha256=digest, hparams=hparams)


def test_a_file_with_a_matching_checksum_builds_its_model(tmp_path: Path):
    spec = _spec(tmp_path, GOOD, hidden=6)
    build = load_custom(spec, cache_dir=tmp_path / "cache")
    model = build(input_shape=(4,), outputs=3)
    assert model(torch.zeros(5, 4)).shape == (5, 3)
    assert _hidden(model) == 6
    # The verified copy lives in the cache under its checksum.
    assert build.path == tmp_path / "cache" / f"{spec.code_sha256}.py"
    assert build.file_name == "net.py"
    # The trainer's one call also runs the forward check.
    assert custom_model(spec, cache_dir=tmp_path / "cache", input_shape=(4,), outputs=3)


def test_a_file_that_changed_after_it_was_stored_is_refused_and_never_imported(tmp_path: Path):
    marker = tmp_path / "imported"
    spec = _spec(tmp_path, f"open({str(marker)!r}, 'w').close()\n" + GOOD)
    wrong = CustomModel(code_uri=spec.code_uri, code_sha256="a" * 64)
    with pytest.raises(ModelShapeError, match=r"net\.py does not match its recorded SHA-256"):
        load_custom(wrong, cache_dir=tmp_path / "cache")
    assert not marker.exists()
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_exception_while_building_names_the_users_line(tmp_path: Path):
    code = """\
    def helper(shape):
        raise ValueError(f"need 2 features, got {shape[0]}\\nsecond line")


    def build_model(input_shape, num_classes):
        return helper(input_shape)
    """
    build = load_custom(_spec(tmp_path, code), cache_dir=tmp_path / "cache")
    with pytest.raises(ModelShapeError) as caught:
        build(input_shape=(4,), outputs=2)
    assert str(caught.value) == (
        "custom model code net.py: build_model failed for input shape (4,): "
        "line 2: ValueError: need 2 features, got 4"
    )


def test_an_error_on_import_names_its_line(tmp_path: Path):
    broken = "import torch\n\nx = 1 / 0\n"
    with pytest.raises(
        ModelShapeError, match=r"net.py fails when imported: line 3: ZeroDivisionError"
    ):
        load_custom(_spec(tmp_path, broken), cache_dir=tmp_path / "cache")
    syntax = "def build_model(input_shape, num_classes):\n    return (\n"
    with pytest.raises(ModelShapeError, match=r"line 2: SyntaxError: '\(' was never closed"):
        load_custom(_spec(tmp_path, syntax, name="bad.py"), cache_dir=tmp_path / "cache")


def test_a_file_without_build_model_or_with_wrong_hyperparameters_is_refused(tmp_path: Path):
    with pytest.raises(ModelShapeError, match="has no function build_model"):
        load_custom(_spec(tmp_path, "def build(): pass\n"), cache_dir=tmp_path / "cache")
    with pytest.raises(
        ModelShapeError, match=r"cannot take this job's hyperparameters \['depth'\]"
    ):
        load_custom(_spec(tmp_path, GOOD, depth=3), cache_dir=tmp_path / "cache")


def test_a_build_model_that_returns_no_module_or_the_wrong_width_is_refused(tmp_path: Path):
    code = "def build_model(input_shape, num_classes):\n    return {'not': 'a module'}\n"
    build = load_custom(_spec(tmp_path, code), cache_dir=tmp_path / "cache")
    with pytest.raises(ModelShapeError, match=r"returned dict, not a torch\.nn\.Module"):
        build(input_shape=(4,), outputs=2)
    wrong_width = GOOD.replace(
        "Net(input_shape[0], num_classes, hidden)", "Net(input_shape[0], 7, hidden)"
    )
    spec = _spec(tmp_path, wrong_width, name="wide.py")
    with pytest.raises(ModelShapeError, match=r"wide.py returns shape \[2, 7\]"):
        custom_model(spec, cache_dir=tmp_path / "cache", input_shape=(4,), outputs=2)


def test_a_failing_forward_pass_names_the_users_line(tmp_path: Path):
    code = GOOD.replace("return self.body(x)", "return self.body(x[:, :1])")
    with pytest.raises(ModelShapeError) as caught:
        custom_model(
            _spec(tmp_path, code), cache_dir=tmp_path / "cache", input_shape=(4,), outputs=2
        )
    message = str(caught.value)
    assert message.startswith("custom model code net.py fails on input shape (4,): line 12: ")
    assert "RuntimeError" in message


def test_two_versions_of_a_file_are_two_modules(tmp_path: Path):
    first = load_custom(_spec(tmp_path, GOOD), cache_dir=tmp_path / "cache")
    second = load_custom(
        _spec(tmp_path, GOOD.replace("hidden=8", "hidden=3")), cache_dir=tmp_path / "cache"
    )
    assert first.function.__module__ != second.function.__module__
    assert _hidden(first(input_shape=(4,), outputs=2)) == 8
    assert _hidden(second(input_shape=(4,), outputs=2)) == 3


def _hidden(model: nn.Module) -> int:
    first_layer = model.get_submodule("body.0")
    assert isinstance(first_layer, nn.Linear)
    return first_layer.out_features


def test_the_example_in_the_researchers_guide_loads_and_reports_its_own_error(tmp_path: Path):
    guide = (Path(__file__).parents[3] / "docs" / "models.md").read_text()
    example = guide.split("An example, `tabular_net.py`:\n\n```python\n")[1].split("```")[0]
    spec = _spec(tmp_path, example, name="tabular_net.py", hidden=16, depth=3)
    model = custom_model(spec, cache_dir=tmp_path / "cache", input_shape=(10,), outputs=2)
    assert model(torch.zeros(3, 10)).shape == (3, 2)
    with pytest.raises(ModelShapeError) as caught:
        custom_model(spec, cache_dir=tmp_path / "cache", input_shape=(3, 32, 32), outputs=2)
    # The message the guide quotes.
    assert str(caught.value) in " ".join(guide.split()).replace("`", "")
