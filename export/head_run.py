"""A ``--method head`` training run: a linear classifier on the frozen, mean-pooled embeddings of a
sentence-transformers base, exported with the encoder as one text-classification graph, gated and published.

    labelled rows -> embeddings (PyTorch, once) -> logistic regression (seconds) -> encoder + pooling + head
                  -> ONNX (fusions, parity gate) -> int8 gated on the validation split -> publish -> promote

Full fine-tuning (``lepton train`` without ``--method``) trains every weight and takes minutes; this trains a
few thousand and takes seconds, at some cost in accuracy (docs/guide/training.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from export.embedding import load_sentence_encoder
from export.parity import LogitDifference
from export.pipeline import VARIANT_FILES, Graph, Reporter, StagedGraph, add_int8, publish_graph
from export.publish import classifier_gate
from export.quality import predicted_labels
from export.training_run import decide_promotion
from lepton_runtime import constants
from lepton_runtime.constants import PRODUCTION_ALIAS
from lepton_runtime.jobs.schemas import TrainingOutcome
from lepton_runtime.labelled_data import LabelledTexts, check_trainable
from lepton_runtime.registry import ModelRegistry, validate_model_name
from lepton_runtime.task_names import TEXT_CLASSIFICATION
from lepton_runtime.training import default_base_model
from lepton_runtime.training.finetune import stratified_split
from lepton_runtime.training.head import embed_texts, fit_linear_head
from lepton_runtime.training.pooled import pooled_classifier


def train_head_and_publish(
    data: LabelledTexts,
    *,
    name: str,
    registry: ModelRegistry,
    validation: LabelledTexts | None = None,
    base: Path | None = None,
    max_length: int = constants.DEFAULT_TRAIN_MAX_LENGTH,
    seed: int = constants.DEFAULT_TRAIN_SEED,
    promote: str = "auto",
    report: Reporter = lambda message: None,
) -> TrainingOutcome:
    """Fit a linear head on ``base``'s embeddings of ``data``, publish encoder + head as ``name``, promote by rule."""
    import torch
    from transformers import AutoTokenizer

    from lepton_runtime.machine import available_cores

    validate_model_name(name)
    check_trainable(data)
    started = time.perf_counter()
    torch.set_num_threads(available_cores())
    base = base or default_base_model()
    if validation is None:
        train_rows, validation_rows = stratified_split(data, 0.2, seed)
        assert data.labels is not None
        validation = LabelledTexts(
            [data.texts[i] for i in validation_rows], [data.labels[i] for i in validation_rows], data.source
        )
        data = LabelledTexts([data.texts[i] for i in train_rows], [data.labels[i] for i in train_rows], data.source)
    assert data.labels is not None and validation.labels is not None
    encoder = load_sentence_encoder(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    report(f"embedding {len(data) + len(validation)} texts with {base} (frozen, {encoder.max_sequence_length} tokens)")
    train_vectors = embed_texts(encoder.model, tokenizer, data.texts, max_length)
    validation_vectors = embed_texts(encoder.model, tokenizer, validation.texts, max_length)
    head = fit_linear_head(train_vectors, data.labels, validation_vectors, validation.labels, seed)
    training_s = time.perf_counter() - started
    report(f"linear head: validation accuracy {head.validation_accuracy:.4f} ({training_s:.0f} s with the embeddings)")
    model = pooled_classifier(encoder.model, head.weight, head.bias)
    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    config |= {"id2label": dict(enumerate(head.labels)), "label2id": {label: i for i, label in enumerate(head.labels)}}
    graph = Graph(
        model=model, output_name="logits", per_token=False,
        architecture=f"{encoder.architecture} + mean pooling + linear head",
        num_attention_heads=encoder.num_attention_heads, hidden_size=encoder.hidden_size,
        vocab_size=encoder.vocab_size, tokenizer_file=base / "tokenizer.json", config=config,
    )  # fmt: skip
    metrics = {
        "validation_accuracy": round(head.validation_accuracy, 4),
        "method": "head",
        "l2_penalty": head.l2_penalty,
        "training_seconds": round(training_s, 1),
        "train_size": len(data),
        "validation_size": len(validation),
    }

    def add_variants(staged: StagedGraph, metrics: dict[str, Any]) -> None:
        reference = predicted_labels(staged.directory, VARIANT_FILES["fp32"], validation.texts)
        add_int8(staged, classifier_gate(staged.directory, validation, reference), report, what="quality gate",
                 required=False)  # fmt: skip

    version = publish_graph(
        registry, name, graph, task=TEXT_CLASSIFICATION, labels=head.labels, metric=LogitDifference(),
        max_sequence_length=max_length, opset=constants.DEFAULT_OPSET,
        source={"base": str(base), "sha256": encoder.sha256, "method": "head"}, metrics=metrics,
        add_variants=add_variants, report=report,
    )  # fmt: skip
    promoted, why = decide_promotion(registry, version, promote)
    if promoted:
        registry.promote(version.reference, PRODUCTION_ALIAS)
    report(f"{version.reference}: {why}")
    return TrainingOutcome(
        version=version.reference, metrics=metrics, promoted=promoted, promotion=why, checkpoint=str(base),
        variants=sorted(version.manifest.variants),
    )  # fmt: skip
