"""The app order in pyproject.toml's import-linter contracts holds, and catches a break.

`bin/dev lint` runs the same contracts; these tests show they bite: a copy of the tree with one
import against the order fails the check and names the import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    copy = tmp_path / "tree"
    copy.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("portal", "workers", "trainyard_cli"):
        shutil.copytree(ROOT / package, copy / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        # The cluster app sits below jobs.
        ("portal/cluster/selectors.py", "from portal.jobs import events", "below it"),
        # The neutral plumbing imports no app.
        ("portal/lib/realtime.py", "from portal.accounts import models", "import no app"),
        # The node plane never imports the portal or Django.
        ("workers/storage.py", "import django.db", "never imports"),
        # The CLI is an HTTP client of the portal, nothing more.
        ("trainyard_cli/api.py", "from portal.jobs import models", "talks HTTP"),
    ],
)
def test_an_import_against_the_order_breaks_a_contract(
    tree: Path, module: str, bad_import: str, contract: str
) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n{bad_import}  # noqa\n")

    result = lint_imports(tree)

    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken
    importer = module.removesuffix(".py").replace("/", ".")
    assert importer in broken, result.stdout
