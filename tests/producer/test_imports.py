"""Producers stay light: importing the client loads no worker code, no onnxruntime and no torch."""

from __future__ import annotations

import subprocess
import sys


def test_the_producer_imports_neither_workers_nor_onnxruntime_nor_torch() -> None:
    probe = (
        "import sys, producer, producer.cli; from producer import LeptonClient; "
        "heavy = {'workers', 'onnxruntime', 'torch', 'transformers'}; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy); "
        "print(','.join(bad))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""
