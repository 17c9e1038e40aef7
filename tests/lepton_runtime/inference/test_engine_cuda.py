"""The Engine on a real GPU: CUDA provider with IO binding, the same answers as the CPU, fp16 gated and chosen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lepton_runtime.inference import Engine
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelRegistry, ModelVersion

pytestmark = [pytest.mark.slow, pytest.mark.gpu]


def test_cuda_engine_gives_the_cpu_answers_across_many_batches(published: ModelVersion, banking: LabelledTexts) -> None:
    texts = banking.texts[:300]
    on_cpu = Engine(published.path, variant="fp32").classify(texts)
    engine = Engine(published.path, variant="fp32", device="cuda", max_batch_tokens=512, max_batch_size=32)
    on_gpu = engine.classify(texts)
    assert engine.provenance.provider == "CUDAExecutionProvider"
    assert engine.overlap_batches and engine.stats.batches > 5
    assert [p.label for p in on_gpu] == [p.label for p in on_cpu]
    np.testing.assert_allclose([p.score for p in on_gpu], [p.score for p in on_cpu], atol=1e-3)
    assert all(p.model.provider == "CUDAExecutionProvider" for p in on_gpu)


def test_fp16_is_gated_on_the_gpu_then_chosen_automatically_on_cuda(
    tmp_path: Path, tiny_checkpoint: Path, golden_file: Path, banking: LabelledTexts
) -> None:
    from export.publish import export_checkpoint

    version = export_checkpoint(
        tiny_checkpoint, ModelRegistry(tmp_path), "tiny16", variants=["fp32", "fp16"], golden=golden_file
    )
    fp16 = version.manifest.variants["fp16"]
    assert fp16.verified and fp16.gate["agreement_with_fp32"] >= 0.995
    engine = Engine(version.path, device="cuda")
    assert (engine.provenance.variant, engine.provenance.precision) == ("fp16", "fp16")
    fp32 = Engine(version.path, variant="fp32", device="cuda")
    labels16 = [p.label for p in engine.classify(banking.texts)]
    labels32 = [p.label for p in fp32.classify(banking.texts)]
    assert np.mean(np.asarray(labels16) == np.asarray(labels32)) >= 0.995
    assert Engine(version.path).provenance.variant == "fp32", "the CPU never runs the fp16 graph by default"


def test_cuda_asked_with_no_gpu_visible_is_refused(published: ModelVersion) -> None:
    code = (
        "from lepton_runtime.inference import Engine\n"
        "from lepton_runtime.errors import ProviderUnavailableError\n"
        "try:\n"
        f"    Engine({str(published.path)!r}, device='cuda')\n"
        "except ProviderUnavailableError as error:\n"
        "    print('refused:', error)\n"
        "    raise SystemExit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "CUDAExecutionProvider" in done.stdout
