"""The reliability suite's two lengths and its report.

``make test`` runs the short versions. ``make soak`` sets ``LEPTON_RELIABILITY_LONG=1`` (more kills, more and
longer Redis outages, more texts) and ``LEPTON_RELIABILITY_REPORT=bench/results/reliability.md``: each test
that passes adds its figures to that markdown report, written when the session ends.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

LONG = os.environ.get("LEPTON_RELIABILITY_LONG") == "1"
REPORT_PATH = os.environ.get("LEPTON_RELIABILITY_REPORT")

Size = TypeVar("Size", int, float)


def scaled(short: Size, long: Size) -> Size:
    """``long`` under ``make soak``, else ``short``."""
    return long if LONG else short


@dataclass
class Figures:
    """What the passing tests measured, in the order they reported it: (section, figure, value)."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, section: str, figure: str, value: object) -> None:
        self.rows.append((section, figure, str(value)))

    def markdown(self, elapsed_s: float) -> str:
        lines = [
            f"# Reliability suite ({'long' if LONG else 'short'} version)",
            "",
            f"`{'LEPTON_RELIABILITY_LONG=1 ' if LONG else ''}pytest tests/reliability` on {os.cpu_count()} cores"
            f" ({platform.machine()}, Python {platform.python_version()}), {elapsed_s / 60:.1f} minutes."
            " Only tests that passed report figures.",
        ]
        section = None
        for name, figure, value in self.rows:
            if name != section:
                lines += ["", f"## {name}", "", "| figure | value |", "| --- | --- |"]
                section = name
            lines.append(f"| {figure} | {value} |")
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    recorded, started = Figures(), time.monotonic()
    yield recorded
    if REPORT_PATH and recorded.rows:
        report = Path(REPORT_PATH)
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(recorded.markdown(time.monotonic() - started), encoding="utf-8")
