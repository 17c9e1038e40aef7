"""Hugging Face classifier checkpoints (one label per text, or per token): load one for export, with its labels
and tokenizer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.embedding import SOURCE_FILES, load_sentence_encoder
from lepton_runtime.errors import ExportError
from lepton_runtime.registry.checksums import content_sha256, sha256_file
from lepton_runtime.training.pooled import POOLED_HEAD_FILE, pooled_classifier

CHECKPOINT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json")
TRAINING_METRICS_FILE = "training_metrics.json"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the PyTorch model in eval mode and what the manifest needs to know of it."""

    path: Path
    model: Any  # transformers PreTrainedModel
    labels: list[str]
    architecture: str
    num_attention_heads: int
    hidden_size: int
    vocab_size: int
    max_position_embeddings: int
    tokenizer_file: Path
    sha256: str
    training_metrics: dict[str, Any]
    per_token: bool = False  # a token classifier (entity extraction): logits per token


def load_checkpoint(path: Path, *, per_token: bool = False) -> Checkpoint:
    """Load ``path`` as a sequence classifier (``per_token``: a token classifier) with eager attention (the graph
    ONNX fusions recognise); a sentence encoder with a head of ``lepton train`` (lepton_runtime/training/pooled.py)
    as encoder + mean pooling + head."""
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ExportError(f"{path} is not a Hugging Face checkpoint directory: config.json is missing")
    if not per_token and (path / POOLED_HEAD_FILE).is_file():
        return _load_pooled_classifier(path)
    config = json.loads(config_path.read_text(encoding="utf-8"))
    architectures = config.get("architectures") or []
    suffix = "ForTokenClassification" if per_token else "ForSequenceClassification"
    if not any(a.endswith(suffix) for a in architectures):
        kind = "token classifier (--task token-classification)" if per_token else "sequence classifier"
        raise ExportError(
            f"{path} is a {architectures or 'model of unknown architecture'} checkpoint, not a {kind};"
            " fine-tune it first (lepton train DATA --base DIR) and export the result"
        )
    tokenizer_file = path / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise ExportError(
            f"{path} has no tokenizer.json (the fast tokenizer the engine loads);"
            " save it with AutoTokenizer.from_pretrained(path).save_pretrained(path)"
        )
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    loader = AutoModelForTokenClassification if per_token else AutoModelForSequenceClassification
    model = loader.from_pretrained(path, attn_implementation="eager")
    model.eval()
    id2label = model.config.id2label
    labels = [str(id2label[i]) for i in range(len(id2label))]
    return Checkpoint(
        path=path,
        model=model,
        labels=labels,
        architecture=architectures[0],
        num_attention_heads=model.config.num_attention_heads,
        hidden_size=model.config.hidden_size,
        vocab_size=model.config.vocab_size,
        max_position_embeddings=model.config.max_position_embeddings,
        tokenizer_file=tokenizer_file,
        sha256=content_sha256({name: sha256_file(path / name) for name in CHECKPOINT_FILES if (path / name).is_file()}),
        training_metrics=_training_metrics(path),
        per_token=per_token,
    )


def _load_pooled_classifier(path: Path) -> Checkpoint:
    from safetensors.numpy import load_file

    encoder = load_sentence_encoder(path)  # checks that the pooling is the mean the graph computes
    head = load_file(str(path / POOLED_HEAD_FILE))
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    labels = [str(config["id2label"][str(i)]) for i in range(len(config["id2label"]))]
    hashed = (*SOURCE_FILES, POOLED_HEAD_FILE)
    return Checkpoint(
        path=path,
        model=pooled_classifier(encoder.model, head["weight"], head["bias"]),
        labels=labels,
        architecture=f"{encoder.architecture} + mean pooling + linear head",
        num_attention_heads=encoder.num_attention_heads,
        hidden_size=encoder.hidden_size,
        vocab_size=encoder.vocab_size,
        max_position_embeddings=int(config["max_position_embeddings"]),
        tokenizer_file=path / "tokenizer.json",
        sha256=content_sha256({name: sha256_file(path / name) for name in hashed if (path / name).is_file()}),
        training_metrics=_training_metrics(path),
    )


def _training_metrics(path: Path) -> dict[str, Any]:
    """What the training run wrote beside the checkpoint (nothing for a checkpoint from elsewhere)."""
    metrics_path = path / TRAINING_METRICS_FILE
    metrics: dict[str, Any] = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return metrics
