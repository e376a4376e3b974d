"""The two commands are what the README, the Makefile and CI say they are."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_ci_runs_exactly_the_readme_test_command():
    ci = ROOT / ".ci" / "run"
    assert ci.read_text().splitlines() == ["#!/usr/bin/env bash", "exec bin/dev test"]
    assert os.access(ci, os.X_OK)
    assert os.access(ROOT / "bin" / "dev", os.X_OK)


def test_the_readme_puts_the_two_commands_first():
    readme = (ROOT / "README.md").read_text()
    first_section = readme.split("\n## ", 2)[1]
    assert first_section.startswith("Two commands")
    assert "bin/dev run" in first_section
    assert "bin/dev test" in first_section


def test_make_targets_call_bin_dev():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test", "lint"):
        assert re.search(rf"^{target}:\n\tbin/dev {target}$", makefile, re.MULTILINE)


def test_bin_dev_is_valid_bash_and_rejects_unknown_commands_before_setting_up():
    subprocess.run(["bash", "-n", str(ROOT / "bin" / "dev")], check=True)
    result = subprocess.run(
        [str(ROOT / "bin" / "dev"), "deploy"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "usage: bin/dev run" in result.stderr


def test_constraints_pin_every_direct_dependency_at_the_pyproject_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pinned[canonical(name)] = version
    for requirement in wanted:
        name, version = requirement.split("==")
        name = canonical(name.split("[")[0])
        assert pinned.get(name) == version, f"constraints.txt: {name}=={pinned.get(name)}"
    # A local build tag (+cpu) would make the pin impossible to satisfy on a GPU host.
    assert all("+" not in version for version in pinned.values())
