"""The control worker validates uploads without loading torch: only `mapped` imports it."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_package_and_its_builtins_leaves_torch_unloaded():
    code = (
        "import sys, workers.datasets, workers.datasets.builtins; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
