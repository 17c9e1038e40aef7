"""The docs: the site builds with every warning an error, every setting and route is documented, the README stays
a front door."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from lepton_runtime.settings import LeptonSettings

REPOSITORY = Path(__file__).resolve().parent.parent
README_MAX_LINES = 200


def docs_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", REPOSITORY / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setting_has_a_description_in_the_configuration_reference() -> None:
    page = docs_hooks().configuration_page()
    for name, field in LeptonSettings.model_fields.items():
        variable = f"LEPTON_{name.upper()}"
        assert field.description, f"{variable} has no description: Field(description=...) in settings.py"
        assert f"`{variable}`" in page
        assert field.description.replace("|", "\\|") in page


def test_env_example_lists_exactly_the_settings() -> None:
    listed = set(re.findall(r"^(LEPTON_[A-Z0-9_]+)=", (REPOSITORY / ".env.example").read_text(), re.MULTILINE))
    settings = {f"LEPTON_{name.upper()}" for name in LeptonSettings.model_fields}
    assert listed == settings, f"missing from .env.example: {settings - listed}; unknown there: {listed - settings}"


def test_every_route_is_in_the_http_reference_with_a_summary() -> None:
    hooks = docs_hooks()
    document = hooks.openapi_document()
    page = hooks.http_api_page(document)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"
            assert f"`{method.upper()} {path}`" in page


def test_the_readme_is_a_front_door() -> None:
    lines = (REPOSITORY / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move sections to docs/"
    assert lines[0] == "# Lepton Runtime"
    assert "make demo" in "\n".join(lines[:20]) and "make test" in "\n".join(lines[:20])
    assert (REPOSITORY / "LICENSE").read_text().lstrip().startswith("Apache License")


@pytest.mark.slow
def test_the_site_builds_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPOSITORY, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    configuration = (tmp_path / "site" / "reference" / "configuration" / "index.html").read_text()
    assert "LEPTON_CHUNK_SIZE" in configuration
    assert (tmp_path / "site" / "reference" / "openapi.json").is_file()
