"""The one export pipeline every task's graph goes through: PyTorch to ONNX, ONNX Runtime's transformer fusions, the
parity gate with the task's metric, the tokenizer and config beside the graph, int8 under one gate policy, and the
one manifest builder, in one flow (``publish_graph``). A task brings its loaded module (a ``Graph``), its parity
metric and its variants' gates.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.onnx_graph import INPUT_NAMES, export_onnx, fuse_transformer_graph
from export.parity import ParityMetric, check_parity
from export.quality import GateResult
from export.quantization import gated_int8
from lepton_runtime import constants
from lepton_runtime.errors import QualityGateError
from lepton_runtime.registry import Manifest, ModelRegistry, ModelVersion, VariantInfo

VARIANT_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}
Reporter = Callable[[str], None]


@dataclass(frozen=True)
class Graph:
    """A loaded checkpoint as the pipeline sees it: one PyTorch module (input ids, mask, token types -> one output)
    and the facts the manifest records."""

    model: Any
    output_name: str  # "logits", or "sentence_embedding"
    per_token: bool  # one output row per token (entities): padded positions are left out of parity
    architecture: str
    num_attention_heads: int
    hidden_size: int
    vocab_size: int
    tokenizer_file: Path
    config: dict[str, Any]  # written as config.json beside the graph


@dataclass(frozen=True)
class ExportOptions:
    """How a checkpoint is exported, whatever its kind: its variants (fp32 first) and the golden file that gates them,
    the window (None: the kind's default), the opset, whether a variant that fails its gate fails the export
    (``required``: asked for by name), and where progress messages go."""

    variants: list[str]
    golden: Path | None = None
    max_sequence_length: int | None = None
    opset: int = constants.DEFAULT_OPSET
    required: bool = False
    report: Reporter = lambda message: None


@dataclass
class StagedGraph:
    """The fp32 graph in a staged version directory, the unfused export (what int8 quantises), the parity figures,
    and the variants published so far."""

    directory: Path
    raw: Path
    parity: dict[str, Any]
    variants: dict[str, VariantInfo] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # variants left out, and why


def export_fp32(
    graph: Graph,
    directory: Path,
    scratch: Path,
    *,
    metric: ParityMetric,
    max_sequence_length: int,
    opset: int,
    report: Reporter,
) -> StagedGraph:
    """Export ``graph`` into ``directory`` as the fused fp32 variant, gated on parity with PyTorch at every shape up
    to ``max_sequence_length``, with its tokenizer and config beside it."""
    raw = export_onnx(
        graph.model, scratch / "raw.onnx", opset, per_token=graph.per_token, output_name=graph.output_name
    )
    report("exported to ONNX; applying transformer fusions")
    fp32 = directory / VARIANT_FILES["fp32"]
    fused = fuse_transformer_graph(raw, fp32, graph.num_attention_heads, graph.hidden_size)
    report(f"fusions: {', '.join(fused) or 'none applied'}; checking parity with PyTorch")
    lengths = tuple(sorted({*constants.PARITY_SEQUENCE_LENGTHS, max_sequence_length}))
    parity = check_parity(
        graph.model, fp32, graph.vocab_size, metric=metric, output_name=graph.output_name, sequence_lengths=lengths
    )
    report(f"parity passed: {', '.join(f'{k} {v:.6g}' for k, v in parity.items() if isinstance(v, float))}")
    shutil.copy2(graph.tokenizer_file, directory / "tokenizer.json")
    (directory / "config.json").write_text(json.dumps(graph.config, indent=2) + "\n", encoding="utf-8")
    fp32_info = VariantInfo(
        file=VARIANT_FILES["fp32"], precision="fp32", verified=True, gate={"parity": "passed"}, optimizations=fused
    )
    return StagedGraph(directory, raw, parity, {"fp32": fp32_info})


def add_int8(
    staged: StagedGraph, gate: Callable[[str], GateResult], report: Reporter, *, what: str, required: bool
) -> None:
    """The one int8 policy: each quantisation recipe in turn until ``gate`` passes. When none does, the version is
    published without int8 (``staged.notes`` says why) unless int8 was asked for by name (``required``): then the
    QualityGateError goes up and nothing is published."""
    try:
        staged.variants["int8"] = gated_int8(staged.raw, staged.directory, gate, report, what=what)
    except QualityGateError as error:
        if required:
            raise
        report(f"int8 not published: {error}")
        staged.notes.append(f"int8 failed its {what} and was not published")


# What a task adds to a staged version after its fp32 graph: reduced-precision variants (add_int8...) and the figures
# measured on the way (written into the metrics it is handed)
VariantsHook = Callable[[StagedGraph, dict[str, Any]], None]


def publish_graph(
    registry: ModelRegistry,
    name: str,
    graph: Graph,
    *,
    task: str,
    labels: list[str],
    metric: ParityMetric,
    max_sequence_length: int,
    opset: int,
    source: dict[str, Any],
    metrics: dict[str, Any],
    add_variants: VariantsHook,
    report: Reporter,
) -> ModelVersion:
    """The one way a version is made, whatever its task: staged out of sight, the fp32 graph exported and gated on
    parity, the task's variants added under their gates, the manifest built, and the version committed by one atomic
    rename (a gate that raises leaves nothing published)."""
    metrics = dict(metrics)
    with registry.begin_publish(name) as staging, tempfile.TemporaryDirectory() as scratch:
        staged = export_fp32(
            graph, staging.path, Path(scratch), metric=metric, max_sequence_length=max_sequence_length, opset=opset,
            report=report,
        )  # fmt: skip
        add_variants(staged, metrics)
        manifest = build_manifest(
            name=name, task=task, labels=labels, graph=graph, staged=staged, max_sequence_length=max_sequence_length,
            opset=opset, source=source, metrics=metrics,
        )  # fmt: skip
        version = staging.commit(manifest)
    report(f"published {version.reference}")
    return version


def build_manifest(
    *,
    name: str,
    task: str,
    labels: list[str],
    graph: Graph,
    staged: StagedGraph,
    max_sequence_length: int,
    opset: int,
    source: dict[str, Any],
    metrics: dict[str, Any],
) -> Manifest:
    """The one manifest of a published version (its files' checksums are added when the version is committed)."""
    notes = {"variants_left_out": staged.notes} if staged.notes else {}
    return Manifest(
        name=name,
        task=task,
        labels=labels,
        max_sequence_length=max_sequence_length,
        opset=opset,
        architecture=graph.architecture,
        num_attention_heads=graph.num_attention_heads,
        hidden_size=graph.hidden_size,
        input_names=list(INPUT_NAMES),
        source=source,
        parity=staged.parity,
        metrics=metrics | notes,
        variants=staged.variants,
        files={},
    )
