"""Shared fixtures: a tiny BERT classifier built and fine-tuned here (never downloaded), real data samples."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from lepton_runtime.labelled_data import LabelledTexts, read_labelled
from lepton_runtime.registry import ModelRegistry, ModelVersion

pytest_plugins = ["tests.queue_fixtures"]


def cuda_available() -> bool:
    """Whether ONNX Runtime has the CUDA provider and the driver answers with a GPU."""
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers() or not shutil.which("nvidia-smi"):
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True, check=False).returncode == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_tests = [item for item in items if "gpu" in item.keywords]
    if gpu_tests and not cuda_available():
        skip = pytest.mark.skip(reason="needs onnxruntime-gpu and an NVIDIA GPU (see README: GPU tests)")
        for item in gpu_tests:
            item.add_marker(skip)


SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
SST2 = SHARED_DATASETS / "sst2" / "dev.jsonl"


@pytest.fixture(scope="session")
def sst2() -> LabelledTexts:
    """The real SST-2 development sentences (../shared/datasets/sst2)."""
    if not SST2.is_file():
        pytest.fail(f"{SST2} is missing: the shared datasets must sit beside the checkout")
    return read_labelled(SST2)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 2-layer, 32-wide BERT checkpoint with MiniLM's tokenizer (a base to fine-tune)."""
    from transformers import BertConfig, BertForSequenceClassification

    from lepton_runtime.training import default_base_model

    base = tmp_path_factory.mktemp("tiny-base")
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    import torch

    torch.manual_seed(0)  # the same random base on every run: the figures tests assert stay put
    BertForSequenceClassification(config).save_pretrained(base)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(default_base_model() / name, base / name)
    return base


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path, sst2: LabelledTexts) -> Path:
    """The tiny BERT fine-tuned for a few steps on real SST-2 sentences."""
    from lepton_runtime.training import TrainingConfig, fine_tune

    base = tiny_base
    out = tmp_path_factory.mktemp("tiny-checkpoint")
    sample = LabelledTexts(sst2.texts[:1500], sst2.labels[:1500] if sst2.labels else None, sst2.source)
    result = fine_tune(sample, base, out, TrainingConfig(epochs=4, learning_rate=3e-3, head_learning_rate=3e-3))
    assert result.validation_accuracy > 0.6, "the tiny model should learn something real"
    return out


@pytest.fixture(scope="session")
def golden_file(tmp_path_factory: pytest.TempPathFactory, sst2: LabelledTexts) -> Path:
    """420 real labelled sentences the tiny model never trained on."""
    path = tmp_path_factory.mktemp("golden") / "golden.jsonl"
    assert sst2.labels is not None
    rows = zip(sst2.texts[1500:1920], sst2.labels[1500:1920], strict=True)
    path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows))
    return path


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, golden_file: Path) -> ModelVersion:
    """The tiny model exported, gated and published (fp32 + int8) as tiny@1, promoted to production."""
    from export.publish import export_checkpoint

    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    return export_checkpoint(tiny_checkpoint, registry, "tiny", golden=golden_file, promote="production")


@pytest.fixture
def copy_of_published(tmp_path: Path, published: ModelVersion) -> ModelRegistry:
    """A private copy of the published registry, for tests that change or damage it."""
    root = tmp_path / "registry"
    shutil.copytree(published.path.parent.parent, root)
    return ModelRegistry(root)
