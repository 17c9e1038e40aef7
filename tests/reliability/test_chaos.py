"""The nemesis, short version (make test: 90 seconds with the tiny model; make chaos runs bench/chaos.py for 10
minutes with the published MiniLM): overlapping faults of several kinds, then the checker finds nothing lost,
duplicated or hung."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lepton_runtime.datasets import BANKING77_DEV
from lepton_runtime.registry import ModelVersion
from tests.queue_fixtures import REPO_ROOT
from tests.reliability.conftest import Figures

pytestmark = pytest.mark.slow

SHORT_CHAOS_MINUTES = 1.5


def test_ninety_seconds_of_overlapping_faults_lose_duplicate_and_hang_nothing(
    published: ModelVersion, tmp_path: Path, figures: Figures
) -> None:
    report = tmp_path / "chaos.md"
    run = subprocess.Popen(
        [sys.executable, "bench/chaos.py", "--minutes", str(SHORT_CHAOS_MINUTES), "--seed", "7", "--mean-gap-s", "6",
         "--clients", "4", "--bulk-texts", "2000", "--model", "tiny@production",
         "--registry", str(published.path.parent.parent), "--texts", str(BANKING77_DEV), "--report", str(report)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:  # the run's own limit is under pytest-timeout's 600 s: a hung run is stopped (its fleet too) and shown
        stdout, stderr = run.communicate(timeout=SHORT_CHAOS_MINUTES * 60 + 330)
    except subprocess.TimeoutExpired:
        run.terminate()  # bench/chaos.py unwinds on SIGTERM and stops its Redis servers and workers
        stdout, stderr = run.communicate(timeout=60)
    text = report.read_text() if report.exists() else ""
    assert run.returncode == 0, text or stdout[-3000:] + stderr[-3000:]
    assert "Verdict: **PASS**" in text
    for figure in ("inputs lost", "inputs duplicated", "one-text requests hung past 60 s"):
        assert f"| {figure} | **0** |" in text, text
    struck = text.split("| faults struck (kinds) | ")[1].split(" |")[0]
    faults, kinds = int(struck.split(" ")[0]), int(struck.split("(")[1].split(":")[0])
    assert faults >= 5 and kinds >= 3, text
    for line in text.split("## The schedule")[0].splitlines():
        if line.startswith("| ") and not line.startswith(("| checker", "| ---")):
            figure, value = (cell.strip() for cell in line.strip("|").split("|"))
            figures.add(f"Chaos ({SHORT_CHAOS_MINUTES:g} minutes, tiny model, seed 7)", figure, value)
