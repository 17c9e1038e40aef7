"""Export a checkpoint, gate every variant, and publish the version: nothing unverified is published as verified.
Each kind of model has its exporter (``EXPORTERS``: what it loads, its parity metric, its variants' gates); all of
them publish through the one flow of export/pipeline.py."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from export.checkpoint import Checkpoint, load_checkpoint
from export.embedding import export_sentence_encoder
from export.entities import entity_gate, staged_span_f1
from export.parity import LogitDifference
from export.pipeline import (
    VARIANT_FILES,
    ExportOptions,
    Graph,
    Reporter,
    StagedGraph,
    VariantsHook,
    add_int8,
    publish_graph,
)
from export.quality import GateResult, accuracy, compare_predictions, predicted_labels
from export.quantization import convert_fp16
from lepton_runtime import constants
from lepton_runtime.errors import InputIssue, InvalidInputError, QualityGateError
from lepton_runtime.inference.providers import cuda_provider_available
from lepton_runtime.labelled_data import LabelledTexts, TaggedSentences, read_labelled, read_tagged
from lepton_runtime.registry import ModelRegistry, ModelVersion, VariantInfo, validate_model_name
from lepton_runtime.task_names import EMBEDDING, TEXT_CLASSIFICATION, TOKEN_CLASSIFICATION


def export_checkpoint(
    checkpoint_dir: Path,
    registry: ModelRegistry,
    name: str,
    *,
    task: str = TEXT_CLASSIFICATION,
    variants: Sequence[str] | None = None,
    golden: Path | None = None,
    promote: str | None = None,
    max_sequence_length: int | None = None,
    opset: int = constants.DEFAULT_OPSET,
    best_effort: bool = False,
    report: Reporter = lambda message: None,
) -> ModelVersion:
    """Export ``checkpoint_dir`` to ONNX, pass the parity and quality gates, publish it as ``name`` and promote it.

    ``task`` names the kind of model and so its exporter (``EXPORTERS``): ``text-classification`` (a fine-tuned
    sequence classifier), ``token-classification`` (an entity model) or ``embedding`` (a sentence-transformers
    directory; see export/embedding.py). Variants default to fp32, plus int8 when a golden set is given (int8 cannot
    be gated without one). Any gate that fails raises before anything becomes visible in the registry.
    ``max_sequence_length`` defaults to 128 tokens for a classifier and to the checkpoint's own length for an
    embedding model.

    One policy for every reduced-precision variant (export/pipeline.py): variants asked for by name must pass their
    gate or nothing is published; the default ones, and all of them with ``best_effort`` (a training run), are left
    out when they fail it, with a note in the manifest's metrics.
    """
    validate_model_name(name)
    wanted = _wanted_variants(variants, golden)
    exporter = EXPORTERS.get(task)
    if exporter is None:
        raise InvalidInputError(
            f"task {task!r} cannot be exported; choose from {sorted(EXPORTERS)}",
            issues=[InputIssue("task", "unknown")],
        )
    options = ExportOptions(
        variants=wanted, golden=golden, max_sequence_length=max_sequence_length, opset=opset,
        required=variants is not None and not best_effort, report=report,
    )  # fmt: skip
    version = exporter(checkpoint_dir, registry, name, options)
    return _promoted(registry, version, promote, report)


# One kind of model's export: load the checkpoint, then ``publish_graph`` with its parity metric and its variants' gates
Exporter = Callable[[Path, ModelRegistry, str, ExportOptions], ModelVersion]


def export_classifier(checkpoint_dir: Path, registry: ModelRegistry, name: str, options: ExportOptions) -> ModelVersion:
    """A fine-tuned sequence classifier: parity on the logits; int8 gated on accuracy on the golden set (agreement
    without labels); fp16 gated on a GPU."""
    golden_set = read_labelled(options.golden) if options.golden else None
    checkpoint, graph, max_length = _loaded(checkpoint_dir, options, per_token=False)
    if golden_set and golden_set.labels:
        _check_golden_labels(golden_set, checkpoint.labels)

    def add_variants(staged: StagedGraph, metrics: dict[str, Any]) -> None:
        reference = predicted_labels(staged.directory, VARIANT_FILES["fp32"], golden_set.texts) if golden_set else None
        if golden_set and reference and golden_set.labels:
            metrics["golden_fp32_accuracy"] = round(accuracy(reference, golden_set.labels), 4)
        if "int8" in options.variants and golden_set and reference:
            gate = classifier_gate(staged.directory, golden_set, reference)
            add_int8(staged, gate, options.report, what="quality gate", required=options.required)
        if "fp16" in options.variants:
            _add_fp16(staged, golden_set, reference, options.report, required=options.required)

    return _publish_checkpoint(
        registry, name, TEXT_CLASSIFICATION, checkpoint, graph, max_length, options, add_variants
    )


def export_entity_model(
    checkpoint_dir: Path, registry: ModelRegistry, name: str, options: ExportOptions
) -> ModelVersion:
    """A token classifier (entities): parity on the logits of real tokens; int8 gated on span F1 of labelled
    sentences (the golden file: CoNLL-style JSONL)."""
    if "fp16" in options.variants:
        raise InvalidInputError(
            "an entity model is exported as fp32, and int8 gated on labelled sentences; fp16 is not built for"
            " entities yet: leave out --variant fp16",
            issues=[InputIssue("variant", "fp32 or int8 for token-classification")],
        )
    tagged = read_tagged(options.golden) if options.golden else None
    checkpoint, graph, max_length = _loaded(checkpoint_dir, options, per_token=True)

    def add_variants(staged: StagedGraph, metrics: dict[str, Any]) -> None:
        if "int8" in options.variants and tagged is not None:
            reference = staged_span_f1(staged.directory, VARIANT_FILES["fp32"], tagged, max_length)
            metrics["golden_fp32_span_f1"] = reference["f1"]
            gate = _entity_gate(staged.directory, tagged, max_length, reference)
            add_int8(staged, gate, options.report, what="entity gate", required=options.required)

    return _publish_checkpoint(
        registry, name, TOKEN_CLASSIFICATION, checkpoint, graph, max_length, options, add_variants
    )


# The export of each kind of model, by the task its manifest records
EXPORTERS: dict[str, Exporter] = {
    TEXT_CLASSIFICATION: export_classifier,
    EMBEDDING: export_sentence_encoder,
    TOKEN_CLASSIFICATION: export_entity_model,
}


def _loaded(checkpoint_dir: Path, options: ExportOptions, *, per_token: bool) -> tuple[Checkpoint, Graph, int]:
    """A classifier checkpoint (``per_token``: a token classifier) as a Graph, and the window it is exported for."""
    options.report(f"loading checkpoint {checkpoint_dir}")
    checkpoint = load_checkpoint(checkpoint_dir, per_token=per_token)
    graph = Graph(
        model=checkpoint.model, output_name="logits", per_token=per_token, architecture=checkpoint.architecture,
        num_attention_heads=checkpoint.num_attention_heads, hidden_size=checkpoint.hidden_size,
        vocab_size=checkpoint.vocab_size, tokenizer_file=checkpoint.tokenizer_file,
        config=json.loads((checkpoint.path / "config.json").read_text(encoding="utf-8")),
    )  # fmt: skip
    wanted_length = options.max_sequence_length or constants.DEFAULT_MAX_SEQUENCE_LENGTH
    return checkpoint, graph, min(wanted_length, checkpoint.max_position_embeddings)


def _publish_checkpoint(
    registry: ModelRegistry, name: str, task: str, checkpoint: Checkpoint, graph: Graph, max_length: int,
    options: ExportOptions, add_variants: VariantsHook,
) -> ModelVersion:  # fmt: skip
    golden = str(options.golden) if options.golden else None
    source = {"checkpoint": str(checkpoint.path.resolve()), "sha256": checkpoint.sha256, "golden": golden}
    return publish_graph(
        registry, name, graph, task=task, labels=checkpoint.labels, metric=LogitDifference(),
        max_sequence_length=max_length, opset=options.opset, source=source, metrics=dict(checkpoint.training_metrics),
        add_variants=add_variants, report=options.report,
    )  # fmt: skip


def _promoted(registry: ModelRegistry, version: ModelVersion, alias: str | None, report: Reporter) -> ModelVersion:
    if alias:
        registry.promote(version.reference, alias)
        report(f"{version.name}@{alias} -> {version.version}")
    return version


def _wanted_variants(variants: Sequence[str] | None, golden: Path | None) -> list[str]:
    wanted = list(variants) if variants else (["fp32", "int8"] if golden else ["fp32"])
    unknown = sorted(set(wanted) - set(VARIANT_FILES))
    if unknown:
        raise InvalidInputError(f"variant(s) {unknown} are unknown; choose from {sorted(VARIANT_FILES)}")
    if "int8" in wanted and golden is None:
        raise InvalidInputError(
            "the int8 variant is published only after its quality gate on real texts: pass --golden FILE.jsonl"
            " (labels optional), or export --variant fp32 alone",
            issues=[InputIssue("golden", "required for int8")],
        )
    return ["fp32", *[v for v in wanted if v != "fp32"]]


def _check_golden_labels(golden: LabelledTexts, labels: list[str]) -> None:
    unknown = sorted(set(golden.labels or []) - set(labels))
    if unknown:
        raise InvalidInputError(
            f"golden set {golden.source} has labels the model does not know: {unknown[:10]}"
            f" (model labels: {labels[:10]}); use the labels the checkpoint was trained with"
        )


def classifier_gate(directory: Path, golden: LabelledTexts, reference: list[str]) -> Callable[[str], GateResult]:
    """int8 of a classifier against fp32 on the golden set: accuracy at most 0.5 point lower (agreement without
    labels)."""

    def gate(onnx_file: str) -> GateResult:
        return compare_predictions(reference, predicted_labels(directory, onnx_file, golden.texts), golden)

    return gate


def _entity_gate(
    directory: Path, tagged: TaggedSentences, max_length: int, reference: dict[str, Any]
) -> Callable[[str], GateResult]:
    """int8 of an entity model against fp32 on labelled sentences: span F1 at most 1 point lower."""

    def gate(onnx_file: str) -> GateResult:
        result = entity_gate(reference, staged_span_f1(directory, onnx_file, tagged, max_length))
        return GateResult(result.passed, result.figures | {"sentences": len(tagged)}, result.reason)

    return gate


def _add_fp16(
    staged: StagedGraph, golden: LabelledTexts | None, reference: list[str] | None, report: Reporter, *, required: bool
) -> None:
    """fp16, gated on the GPU against fp32 (argmax agreement); published unverified where no GPU or golden set can
    gate it. A failed gate follows the int8 policy: left out with a note, unless asked for by name."""
    target = VARIANT_FILES["fp16"]
    directory = staged.directory
    convert_fp16(directory / VARIANT_FILES["fp32"], directory / target)
    if not cuda_provider_available() or not golden or not reference:
        why = "no CUDA provider at export time" if golden else "no golden set to gate it on"
        report(f"fp16 published UNVERIFIED ({why})")
        staged.variants["fp16"] = VariantInfo(
            file=target, precision="fp16", verified=False, note=f"unverified: {why}; gate it on a GPU before serving"
        )
        return
    candidate = predicted_labels(directory, target, golden.texts, device="cuda")
    agreement = sum(a == b for a, b in zip(reference, candidate, strict=True)) / len(reference)
    figures = {
        "agreement_with_fp32": round(agreement, 4),
        "min_agreement": constants.FP16_MIN_AGREEMENT,
        "golden_texts": len(reference),
    }
    if agreement < constants.FP16_MIN_AGREEMENT:
        message = f"fp16 agrees with fp32 on {agreement:.4f} of golden texts (limit {constants.FP16_MIN_AGREEMENT})"
        if required:
            raise QualityGateError(f"{message}; nothing was published; export without --variant fp16", variant="fp16")
        (directory / target).unlink()
        report(f"fp16 not published: {message}")
        staged.notes.append("fp16 failed its agreement gate and was not published")
        return
    report(f"fp16 gate passed on CUDA: agreement {agreement:.4f}")
    staged.variants["fp16"] = VariantInfo(
        file=target, precision="fp16", verified=True, gate=figures, optimizations=["fp16"]
    )
