"""`bin/dev` answers the commands the Makefile and CI call, and nothing else."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_ci_runs_exactly_bin_dev_test():
    ci = ROOT / ".ci" / "run"
    assert ci.read_text().splitlines() == ["#!/usr/bin/env bash", "exec bin/dev test"]
    assert os.access(ci, os.X_OK)
    assert os.access(ROOT / "bin" / "dev", os.X_OK)


def test_bin_dev_help_names_each_command_without_setting_up():
    result = subprocess.run(
        [str(ROOT / "bin" / "dev"), "help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    usage = result.stdout.splitlines()
    for command in ("run", "test", "lint"):
        words = [line.removeprefix("usage:").split()[:2] for line in usage]
        assert ["bin/dev", command] in words, result.stdout


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
