"""Real labelled data that ships with Lepton Runtime, for the demo and the tests: BANKING77's development split.

BANKING77 (Casanueva, Temčinas, Gerz, Henderson, Vulić 2020, "Efficient Intent Detection with Dual Sentence
Encoders", arXiv:2003.04807) is licensed CC BY 4.0 (``banking77/LICENSE``). ``banking77/dev.jsonl`` is a
modified form of it: the original train and test files pooled, de-duplicated, whitespace-stripped and
re-split (20% kept here); ``banking77/SOURCE.md`` says exactly how. Other corpora (SST-2, CoNLL-2003) are
used by benchmarks only, from a ``shared/datasets`` folder beside the checkout, and never ship.
"""

from __future__ import annotations

from pathlib import Path

DATASETS_DIR = Path(__file__).resolve().parent
# 2,614 customer queries to a bank, {"text", "label"} per line, 77 intents (categories.json).
BANKING77_DEV = DATASETS_DIR / "banking77" / "dev.jsonl"

__all__ = ["BANKING77_DEV", "DATASETS_DIR"]
