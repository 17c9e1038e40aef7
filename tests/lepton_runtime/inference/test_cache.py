"""The engine cache keeps the most recently used versions within its memory budget and checks identity."""

from __future__ import annotations

import json
import shutil

import pytest

from lepton_runtime.errors import ModelIntegrityError
from lepton_runtime.inference import Engine
from lepton_runtime.inference.cache import EngineCache
from lepton_runtime.registry import ModelRegistry
from lepton_runtime.registry.manifest import MANIFEST_FILE


def _second_version(registry: ModelRegistry) -> None:
    """tiny@2: the same files as tiny@1 under another version number."""
    first = registry.resolve("tiny@1").path
    second = first.parent / "2"
    shutil.copytree(first, second)
    manifest = json.loads((second / MANIFEST_FILE).read_text())
    manifest["version"] = 2
    (second / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_least_recently_used_versions_leave_when_over_budget(copy_of_published: ModelRegistry) -> None:
    _second_version(copy_of_published)
    loads: list[str] = []

    def make(path: str) -> Engine:
        return Engine(path, intra_op_threads=1)

    small = EngineCache(copy_of_published, make, memory_budget_mb=0.001, on_load=lambda ref, _: loads.append(ref))
    first = small.get("tiny@1")
    assert small.get("tiny@production") is first  # an alias of a loaded version loads nothing
    small.get("tiny@2")
    assert small.loaded() == ["tiny@2"]  # the budget holds one: the older one left
    small.get("tiny@1")
    assert loads == ["tiny@1", "tiny@2", "tiny@1"]

    roomy = EngineCache(copy_of_published, make, memory_budget_mb=10_000)
    roomy.get("tiny@1")
    roomy.get("tiny@2")
    roomy.get("tiny@1")  # now the most recently used
    assert roomy.loaded() == ["tiny@2", "tiny@1"]
    assert roomy.memory_mb > 0


def test_a_version_that_is_not_the_submitted_one_is_refused(copy_of_published: ModelRegistry) -> None:
    cache = EngineCache(copy_of_published, lambda path: Engine(path, intra_op_threads=1), memory_budget_mb=10_000)
    with pytest.raises(ModelIntegrityError, match="registries of producer and worker differ"):
        cache.get("tiny@1", content_sha256="0" * 64)
