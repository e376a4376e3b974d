"""Every asset the pages load is served from /static/ (npm's uPlot included), nothing comes
from a CDN, and every script parses."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

ROOT = Path(settings.BASE_DIR)
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
SCRIPTS = sorted((ROOT / "static" / "js").glob("*.js"))


def test_every_static_reference_in_the_templates_is_found() -> None:
    referenced = {
        match
        for template in TEMPLATES
        for match in re.findall(r"{% static '([^']+)' %}", template.read_text())
    }
    assert "vendor/uplot/uPlot.min.css" in referenced
    missing = sorted(path for path in referenced if finders.find(path) is None)
    assert missing == []


def test_every_relative_import_in_the_scripts_is_found() -> None:
    for script in SCRIPTS:
        for target in re.findall(r'from "(\.[^"]+)"', script.read_text()):
            resolved = (script.parent / target).resolve().relative_to(ROOT / "static")
            assert finders.find(str(resolved)) is not None, f"{script.name} imports {target}"


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: path.name)
def test_no_template_loads_anything_from_another_host(template: Path) -> None:
    text = template.read_text()
    assert not re.search(r"""(src|href)=["'](https?:)?//""", text)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_every_script_parses_as_a_module(script: Path) -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is required: it checks the front end's modules"
    subprocess.run(
        [node, "--experimental-default-type=module", "--check", str(script)],
        check=True,
        capture_output=True,
        timeout=30,
    )
