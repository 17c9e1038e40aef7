"""Shared fixtures: a tiny BERT classifier built and fine-tuned here (never downloaded), real data samples.

The real data is BANKING77's development split, which ships in the repository (CC BY 4.0,
lepton_runtime/datasets): its 77 intents seen as a binary task, whether a customer reports a problem
(declined, failed, lost, pending, charged twice...) or asks a question. Nothing is read from outside the
checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lepton_runtime.datasets import BANKING77_DEV
from lepton_runtime.labelled_data import LabelledTexts, read_labelled
from lepton_runtime.registry import ModelRegistry, ModelVersion

pytest_plugins = ["tests.queue_fixtures", "tests.store_fixtures"]


@pytest.fixture(scope="session", autouse=True)
def data_store_of_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Bulk jobs of tests that name no data store write to a temporary folder, never to ./lepton-data."""
    previous = os.environ.get("LEPTON_DATA_STORE")
    os.environ["LEPTON_DATA_STORE"] = str(tmp_path_factory.mktemp("data-store"))
    yield
    if previous is None:
        os.environ.pop("LEPTON_DATA_STORE", None)
    else:
        os.environ["LEPTON_DATA_STORE"] = previous


def cuda_available() -> bool:
    """Whether ONNX Runtime has the CUDA provider and the driver answers with a GPU."""
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers() or not shutil.which("nvidia-smi"):
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True, check=False).returncode == 0


# The test files that run longest (pytest --durations), started first: with `--dist loadfile` a file runs in one
# process, so the short files then fill in around the long ones instead of one long file running alone at the end.
LONGEST_FIRST = (
    "tests/test_readme.py",
    "tests/reliability/test_chaos.py",
    "tests/producer/test_api.py",
    "tests/workers/test_training.py",
    "tests/reliability/test_mixed.py",
    "tests/reliability/test_worker_faults.py",
    "tests/workers/test_flower.py",
)


def _start_rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_start_rank)  # stable: the order within each rank is the collection's
    gpu_tests = [item for item in items if "gpu" in item.keywords]
    if gpu_tests and not cuda_available():
        skip = pytest.mark.skip(reason="needs onnxruntime-gpu and an NVIDIA GPU (see docs/operations/gpu.md)")
        for item in gpu_tests:
            item.add_marker(skip)


# Words of the BANKING77 intents that report something gone wrong; every other intent asks a question.
PROBLEM_INTENT_WORDS = (
    "declined", "failed", "not_working", "not_recognised", "lost_or_stolen", "compromised", "twice", "wrong",
    "pending", "reverted", "not_received", "swallowed", "blocked", "not_updated", "not_showing", "forgotten",
    "extra_charge", "unable",
)  # fmt: skip
BINARY_LABELS = ("problem", "question")


def problem_or_question(intent: str) -> str:
    """The binary view of a BANKING77 intent."""
    return BINARY_LABELS[0] if any(word in intent for word in PROBLEM_INTENT_WORDS) else BINARY_LABELS[1]


# Queries the tests use: the first 1,920 of BANKING77 dev (1,500 to train the tiny model on, 420 golden).
TEST_QUERIES = 1920


@pytest.fixture(scope="session")
def banking() -> LabelledTexts:
    """1,920 real customer queries (BANKING77 dev, shipped in the repository), labelled problem or question."""
    intents = read_labelled(BANKING77_DEV)
    assert intents.labels is not None
    labels = [problem_or_question(label) for label in intents.labels[:TEST_QUERIES]]
    return LabelledTexts(intents.texts[:TEST_QUERIES], labels, intents.source)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 2-layer, 32-wide BERT checkpoint with MiniLM's tokenizer (a base to fine-tune); seeded, so the
    figures tests assert stay put."""
    from export.tiny_models import tiny_classifier

    base = tiny_classifier(tmp_path_factory.mktemp("tiny-base"), BINARY_LABELS, seed=0)
    return base


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path, banking: LabelledTexts) -> Path:
    """The tiny BERT fine-tuned for a few steps on real customer queries."""
    from lepton_runtime.training import TrainingConfig, fine_tune

    base = tiny_base
    out = tmp_path_factory.mktemp("tiny-checkpoint")
    sample = LabelledTexts(banking.texts[:1500], banking.labels[:1500] if banking.labels else None, banking.source)
    result = fine_tune(sample, base, out, TrainingConfig(epochs=4, learning_rate=3e-3, head_learning_rate=3e-3))
    assert result.validation_accuracy > 0.6, "the tiny model should learn something real"
    return out


@pytest.fixture(scope="session")
def golden_file(tmp_path_factory: pytest.TempPathFactory, banking: LabelledTexts) -> Path:
    """420 real labelled queries the tiny model never trained on."""
    path = tmp_path_factory.mktemp("golden") / "golden.jsonl"
    assert banking.labels is not None
    rows = zip(banking.texts[1500:1920], banking.labels[1500:1920], strict=True)
    path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in rows))
    return path


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, golden_file: Path) -> ModelVersion:
    """The tiny model exported, gated and published (fp32 + int8) as tiny@1, promoted to production, and shared: the
    tests' tenants all run it."""
    from export.publish import export_checkpoint

    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    version = export_checkpoint(tiny_checkpoint, registry, "tiny", golden=golden_file, promote="production")
    registry.share("tiny", True)
    return version


@pytest.fixture
def copy_of_published(tmp_path: Path, published: ModelVersion) -> ModelRegistry:
    """A private copy of the published registry, for tests that change or damage it."""
    root = tmp_path / "registry"
    shutil.copytree(published.path.parent.parent, root)
    return ModelRegistry(root)


@pytest.fixture(scope="session")
def tiny_sentence_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 2-layer, 32-wide BERT saved as a sentence-transformers model (mean pooling, normalised)."""
    from export.tiny_models import tiny_sentence_encoder as build

    directory = build(tmp_path_factory.mktemp("tiny-sentence-encoder"), seed=1)
    return directory


@pytest.fixture(scope="session")
def published_embedding(tiny_sentence_encoder: Path, published: ModelVersion) -> ModelVersion:
    """The tiny sentence encoder exported (fp32) as tiny-embed@1 beside tiny@1 in the published registry."""
    from export.publish import export_checkpoint

    registry = ModelRegistry(published.path.parent.parent)
    if "tiny-embed" in registry.list_models():
        return registry.resolve("tiny-embed@1")
    version = export_checkpoint(tiny_sentence_encoder, registry, "tiny-embed", task="embedding", promote="production")
    registry.share("tiny-embed", True)
    return version


ENTITY_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


@pytest.fixture(scope="session")
def published_entities(tmp_path_factory: pytest.TempPathFactory, published: ModelVersion) -> ModelVersion:
    """A tiny random token classifier whose labels depend on each token alone (attention outputs and positions
    zeroed: the same text gives the same labels in any window), exported as tiny-ner@1 beside tiny@1."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    from export.publish import export_checkpoint
    from lepton_runtime.training import default_base_model

    registry = ModelRegistry(published.path.parent.parent)
    if "tiny-ner" in registry.list_models():
        return registry.resolve("tiny-ner@1")
    directory = tmp_path_factory.mktemp("tiny-token-classifier")
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=512, num_labels=len(ENTITY_LABELS), id2label=dict(enumerate(ENTITY_LABELS)),
        label2id={label: i for i, label in enumerate(ENTITY_LABELS)},
    )  # fmt: skip
    torch.manual_seed(2)
    model = BertForTokenClassification(config)
    with torch.no_grad():
        model.bert.embeddings.position_embeddings.weight.zero_()
        for layer in model.bert.encoder.layer:
            layer.attention.output.dense.weight.zero_()
            layer.attention.output.dense.bias.zero_()
        model.classifier.weight.mul_(20)  # confident, varied labels
    model.save_pretrained(directory)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(default_base_model() / name, directory / name)
    version = export_checkpoint(
        directory, registry, "tiny-ner", task="token-classification", max_sequence_length=32, promote="production"
    )
    registry.share("tiny-ner", True)
    return version
