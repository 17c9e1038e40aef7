"""Export a checkpoint, gate every variant, and publish the version: nothing unverified is published as verified."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from export.checkpoint import load_checkpoint
from export.embedding import export_sentence_encoder
from export.entities import entity_gate, staged_span_f1
from export.onnx_graph import INPUT_NAMES, export_onnx, fuse_transformer_graph
from export.parity import check_parity
from export.quality import GateResult, accuracy, compare_predictions, predicted_labels
from export.quantization import convert_fp16, gated_int8
from lepton_runtime import constants
from lepton_runtime.errors import InputIssue, InvalidInputError, QualityGateError
from lepton_runtime.inference.providers import cuda_provider_available
from lepton_runtime.inference.tasks import Classification, SentenceEmbedding, TokenClassification
from lepton_runtime.labelled_data import LabelledTexts, TaggedSentences, read_labelled, read_tagged
from lepton_runtime.registry import Manifest, ModelRegistry, ModelVersion, VariantInfo, validate_model_name

VARIANT_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}
EXPORTED_TASKS = (Classification.name, SentenceEmbedding.name, TokenClassification.name)
Reporter = Callable[[str], None]


def export_checkpoint(
    checkpoint_dir: Path,
    registry: ModelRegistry,
    name: str,
    *,
    task: str = Classification.name,
    variants: Sequence[str] | None = None,
    golden: Path | None = None,
    promote: str | None = None,
    max_sequence_length: int | None = None,
    opset: int = constants.DEFAULT_OPSET,
    report: Reporter = lambda message: None,
) -> ModelVersion:
    """Export ``checkpoint_dir`` to ONNX, pass the parity and quality gates, publish it as ``name`` and promote it.

    ``task`` is ``text-classification`` (a fine-tuned sequence classifier) or ``embedding`` (a
    sentence-transformers directory; see export/embedding.py). Variants default to fp32, plus int8
    when a golden set is given (int8 cannot be gated without one). Any gate that fails raises before
    anything becomes visible in the registry. ``max_sequence_length`` defaults to 128 tokens for a
    classifier and to the checkpoint's own length for an embedding model.
    """
    validate_model_name(name)
    wanted = _wanted_variants(variants, golden)
    if task not in EXPORTED_TASKS:
        raise InvalidInputError(
            f"task {task!r} cannot be exported; choose from {sorted(EXPORTED_TASKS)}",
            issues=[InputIssue("task", "unknown")],
        )
    if task == SentenceEmbedding.name:
        version = export_sentence_encoder(
            checkpoint_dir, registry, name, variants=wanted, golden=golden,
            max_sequence_length=max_sequence_length, opset=opset, report=report,
        )  # fmt: skip
        return _promoted(registry, version, promote, report)
    max_sequence_length = max_sequence_length or constants.DEFAULT_MAX_SEQUENCE_LENGTH
    per_token = task == TokenClassification.name
    if per_token and "fp16" in wanted:
        raise InvalidInputError(
            "an entity model is exported as fp32, and int8 gated on labelled sentences; fp16 is not built for"
            " entities yet: leave out --variant fp16",
            issues=[InputIssue("variant", "fp32 or int8 for token-classification")],
        )
    tagged = read_tagged(golden) if per_token and golden else None
    golden_set = read_labelled(golden) if golden and not per_token else None
    report(f"loading checkpoint {checkpoint_dir}")
    checkpoint = load_checkpoint(checkpoint_dir, per_token=per_token)
    if golden_set and golden_set.labels and not per_token:
        _check_golden_labels(golden_set, checkpoint.labels)
    max_sequence_length = min(max_sequence_length, checkpoint.max_position_embeddings)
    with registry.begin_publish(name) as staged, tempfile.TemporaryDirectory() as scratch:
        directory = staged.path
        raw = export_onnx(checkpoint.model, Path(scratch) / "raw.onnx", opset, per_token=per_token)
        report("exported to ONNX; applying transformer fusions")
        fused = fuse_transformer_graph(
            raw, directory / VARIANT_FILES["fp32"], checkpoint.num_attention_heads, checkpoint.hidden_size
        )
        report(f"fusions: {', '.join(fused) or 'none applied'}; checking parity with PyTorch")
        lengths = tuple(sorted({*constants.PARITY_SEQUENCE_LENGTHS, max_sequence_length}))
        parity = check_parity(
            checkpoint.model, directory / VARIANT_FILES["fp32"], checkpoint.vocab_size, sequence_lengths=lengths
        )
        report(f"parity passed: max |logit diff| {parity['max_abs_diff']:.2g}")
        shutil.copy2(checkpoint.tokenizer_file, directory / "tokenizer.json")
        shutil.copy2(checkpoint.path / "config.json", directory / "config.json")
        infos = {
            "fp32": VariantInfo(
                file=VARIANT_FILES["fp32"],
                precision="fp32",
                verified=True,
                gate={"parity": "passed"},
                optimizations=fused,
            )
        }
        metrics: dict[str, Any] = dict(checkpoint.training_metrics)
        reference = predicted_labels(directory, VARIANT_FILES["fp32"], golden_set.texts) if golden_set else None
        if golden_set and reference and golden_set.labels:
            metrics["golden_fp32_accuracy"] = round(accuracy(reference, golden_set.labels), 4)
        if "int8" in wanted and golden_set and reference:
            infos["int8"] = publish_int8_classifier(raw, directory, golden_set, reference, report)
        if "int8" in wanted and tagged is not None:
            infos["int8"] = _publish_int8_entities(raw, directory, tagged, max_sequence_length, report)
            metrics["golden_fp32_span_f1"] = infos["int8"].gate["fp32_span_f1"]
        if "fp16" in wanted:
            infos["fp16"] = _publish_fp16(directory, golden_set, reference, report)
        manifest = Manifest(
            name=name,
            task=task,
            labels=checkpoint.labels,
            max_sequence_length=max_sequence_length,
            opset=opset,
            architecture=checkpoint.architecture,
            num_attention_heads=checkpoint.num_attention_heads,
            hidden_size=checkpoint.hidden_size,
            input_names=list(INPUT_NAMES),
            source={
                "checkpoint": str(checkpoint.path.resolve()),
                "sha256": checkpoint.sha256,
                "golden": str(golden) if golden else None,
            },
            parity=parity,
            metrics=metrics,
            variants=infos,
            files={},
        )
        version = staged.commit(manifest)
    report(f"published {version.reference}")
    return _promoted(registry, version, promote, report)


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


def publish_int8_classifier(
    raw: Path, directory: Path, golden: LabelledTexts, reference: list[str], report: Reporter
) -> VariantInfo:
    """int8 gated on the golden set: accuracy at most 0.5 point below fp32's (agreement without labels)."""

    def gate(onnx_file: str) -> GateResult:
        return compare_predictions(reference, predicted_labels(directory, onnx_file, golden.texts), golden)

    return gated_int8(raw, directory, gate, report, what="quality gate")


def _publish_int8_entities(
    raw: Path, directory: Path, tagged: TaggedSentences, max_length: int, report: Reporter
) -> VariantInfo:
    """int8 gated on the span F1 of labelled sentences (at most 1 point below fp32's)."""
    reference = staged_span_f1(directory, VARIANT_FILES["fp32"], tagged, max_length)

    def gate(onnx_file: str) -> GateResult:
        result = entity_gate(reference, staged_span_f1(directory, onnx_file, tagged, max_length))
        return GateResult(result.passed, result.figures | {"sentences": len(tagged)}, result.reason)

    return gated_int8(raw, directory, gate, report, what="entity gate")


def _publish_fp16(
    directory: Path, golden: LabelledTexts | None, reference: list[str] | None, report: Reporter
) -> VariantInfo:
    target = VARIANT_FILES["fp16"]
    convert_fp16(directory / VARIANT_FILES["fp32"], directory / target)
    if not cuda_provider_available() or not golden or not reference:
        why = "no CUDA provider at export time" if golden else "no golden set to gate it on"
        report(f"fp16 published UNVERIFIED ({why})")
        return VariantInfo(
            file=target, precision="fp16", verified=False, note=f"unverified: {why}; gate it on a GPU before serving"
        )
    candidate = predicted_labels(directory, target, golden.texts, device="cuda")
    agreement = sum(a == b for a, b in zip(reference, candidate, strict=True)) / len(reference)
    figures = {
        "agreement_with_fp32": round(agreement, 4),
        "min_agreement": constants.FP16_MIN_AGREEMENT,
        "golden_texts": len(reference),
    }
    if agreement < constants.FP16_MIN_AGREEMENT:
        raise QualityGateError(
            f"fp16 agrees with fp32 on {agreement:.4f} of golden texts (limit {constants.FP16_MIN_AGREEMENT});"
            " nothing was published; export without --variant fp16",
            variant="fp16",
        )
    report(f"fp16 gate passed on CUDA: agreement {agreement:.4f}")
    return VariantInfo(file=target, precision="fp16", verified=True, gate=figures, optimizations=["fp16"])
