"""The soak, short version (make test: 2 minutes with the tiny model; make soak runs bench/soak.py for 30 minutes
with the published MiniLM instead): mixed traffic, nothing lost or duplicated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lepton_runtime.datasets import BANKING77_DEV
from lepton_runtime.registry import ModelVersion
from tests.queue_fixtures import REPO_ROOT
from tests.reliability.conftest import LONG, Figures

pytestmark = [
    pytest.mark.slow,
    pytest.mark.soak,
    pytest.mark.skipif(LONG, reason="make soak runs the 30-minute soak (bench/soak.py) with the real model"),
]

SHORT_SOAK_MINUTES = 2


def test_two_minutes_of_bulk_jobs_and_32_clients_lose_and_duplicate_nothing(
    published: ModelVersion, tmp_path: Path, figures: Figures
) -> None:
    report = tmp_path / "soak.md"
    done = subprocess.run(
        [sys.executable, "bench/soak.py", "--minutes", str(SHORT_SOAK_MINUTES), "--clients", "32",
         "--bulk-texts", "2000", "--model", "tiny@production", "--registry", str(published.path.parent.parent),
         "--texts", str(BANKING77_DEV), "--report", str(report)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=SHORT_SOAK_MINUTES * 60 + 300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = report.read_text()
    assert "| lost results | **0** |" in text and "| duplicated results | **0** |" in text
    assert "| failed requests or jobs | 0 |" in text
    bulk_jobs = int(text.split("| bulk jobs finished | ")[1].split(" |")[0])
    requests = int(text.split("| one-text requests answered | ")[1].split(" ")[0].replace(",", ""))
    assert bulk_jobs >= 3 and requests >= 1000, text
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith(("| figure", "| ---")):
            figure, value = (cell.strip() for cell in line.strip("|").split("|"))
            figures.add(f"Soak ({SHORT_SOAK_MINUTES} minutes, tiny model, 32 clients)", figure, value)
