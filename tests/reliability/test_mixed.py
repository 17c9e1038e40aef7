"""Online and bulk traffic, short version (make test: bench/mixed.py with the tiny model and 3-second windows;
`python bench/mixed.py` measures MiniLM): every bulk row and every one-text answer exactly once, tenant A
refused over its quota, the report and its plot written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lepton_runtime.datasets import BANKING77_DEV
from lepton_runtime.registry import ModelVersion
from tests.queue_fixtures import REPO_ROOT
from tests.reliability.conftest import Figures

pytestmark = pytest.mark.slow

WINDOW_S = 3


def test_mixed_traffic_loses_and_duplicates_nothing_and_refuses_a_tenant_over_its_quota(
    published: ModelVersion, tmp_path: Path, figures: Figures
) -> None:
    report, numbers = tmp_path / "mixed.md", tmp_path / "mixed.json"
    done = subprocess.run(
        [sys.executable, "bench/mixed.py", "--seconds", str(WINDOW_S), "--idle-requests", "30", "--bulk-texts", "1000",
         "--model", "tiny@production", "--registry", str(published.path.parent.parent), "--texts", str(BANKING77_DEV),
         "--report", str(report), "--json", str(numbers), "--rounds", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "LEPTON_BATCH_WAIT_MS": "4"},  # not the default: the report must say what ran
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(numbers.read_text())
    assert result["lost"] == result["duplicated"] == result["failures"] == 0
    assert result["answers_missing"] == result["answers_extra"] == 0 and result["requests_checked"] > 500
    assert result["tenant_a_rejected"] > 0, "tenant A sent 10x its quota: some must have been refused"
    assert result["bulk_mixed_short"] > 0 and result["overload_on_per_s"] > 0
    assert report.with_suffix(".png").stat().st_size > 10_000
    assert result["settings"]["LEPTON_BATCH_WAIT_MS"] == 4 and "LEPTON_BATCH_WAIT_MS=4," in report.read_text()
    idle = result["idle"]
    figures.add("Mixed traffic (tiny model, 3-second windows)", "idle one-text p50 over in process",
                f"+{idle['lane_p50'] - idle['in_p50']:.2f} ms")  # fmt: skip
