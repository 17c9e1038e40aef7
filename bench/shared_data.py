"""The benchmarks' real texts: SST-2 and BANKING77 development sentences from ``shared/datasets`` beside the
checkout (only benchmarks read it; the demo and the tests use the data inside the repository)."""

from __future__ import annotations

import json
import random
from pathlib import Path

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
CORPORA = ("sst2", "banking77")


def shared_file(corpus: str) -> Path:
    """``shared/datasets/CORPUS/dev.jsonl``, or a SystemExit that says what to do when it is missing."""
    path = SHARED_DATASETS / corpus / "dev.jsonl"
    if not path.is_file():
        raise SystemExit(
            f"{path} is missing: the benchmarks measure on the shared datasets, which sit in a `shared/datasets`"
            ' folder beside the checkout (with sst2/ and banking77/ inside, one {"text", "label"} per line).'
            " Put it there, or run the tests and `make demo`, which need only the repository."
        )
    return path


def real_texts(seed: int) -> list[str]:
    """Every SST-2 and BANKING77 development text, shuffled with ``seed``."""
    texts = [json.loads(line)["text"] for corpus in CORPORA for line in shared_file(corpus).open(encoding="utf-8")]
    random.Random(seed).shuffle(texts)
    return texts


def repeated(texts: list[str], count: int) -> list[str]:
    """``count`` texts: ``texts`` repeated as often as needed."""
    return (texts * (count // len(texts) + 1))[:count]
