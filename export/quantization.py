"""Reduced-precision variants: int8 dynamic quantisation recipes for the CPU, and fp16 for CUDA."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.quality import GateResult
from lepton_runtime.errors import QualityGateError
from lepton_runtime.registry import VariantInfo

INT8_FILE = "model.int8.onnx"


@dataclass(frozen=True)
class Int8Recipe:
    """One way to quantise: per-channel or per-tensor weights, and node name patterns kept in fp32."""

    name: str
    per_channel: bool
    keep_fp32_patterns: tuple[str, ...] = ()

    def excluded_nodes(self, node_names: list[str]) -> list[str]:
        return [n for n in node_names if any(re.search(p, n) for p in self.keep_fp32_patterns)]


# Tried in order until one passes the quality gate. Per-channel weights keep most of fp32's
# accuracy; the fallbacks keep the classifier and then the feed-forward outputs (whose
# activations have the widest ranges) in fp32.
INT8_RECIPES = (
    Int8Recipe("per-channel", per_channel=True),
    Int8Recipe("per-channel, classifier and pooler in fp32", True, (r"classifier", r"pooler")),
    Int8Recipe(
        "per-channel, classifier, pooler and feed-forward outputs in fp32",
        True,
        (r"classifier", r"pooler", r"output/dense"),
    ),
)


def quantize_int8(source: Path, output: Path, recipe: Int8Recipe) -> Path:
    """Quantise the weights of MatMul/Gemm to int8 (activations quantised at run time)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    node_names = [node.name for node in onnx.load(str(source), load_external_data=False).graph.node]
    quantize_dynamic(
        source,
        output,
        per_channel=recipe.per_channel,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm", "Attention"],
        nodes_to_exclude=recipe.excluded_nodes(node_names),
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
    )
    return output


def gated_int8(
    raw: Path, directory: Path, gate: Callable[[str], GateResult], report: Callable[[str], None], *, what: str
) -> VariantInfo:
    """Quantise the unfused graph ``raw`` with each recipe in turn until ``gate`` (given the int8 file's name in
    ``directory``) passes; a QualityGateError naming each recipe's figures otherwise, with the file removed.

    The unfused graph, with per-channel MatMul weights (ONNX Runtime fuses it at load): on a fine-tuned MiniLM
    this agreed more with fp32 and ran faster than quantising the fused graph."""
    tried: list[dict[str, Any]] = []
    for recipe in INT8_RECIPES:
        quantize_int8(raw, directory / INT8_FILE, recipe)
        result = gate(INT8_FILE)
        report(f"int8 ({recipe.name}): {result.reason}: {'passed' if result.passed else 'failed'}")
        if result.passed:
            return VariantInfo(
                file=INT8_FILE,
                precision="int8",
                verified=True,
                gate=result.figures | {"recipe": recipe.name, "tried": tried},
                optimizations=["dynamic int8 of the unfused graph", recipe.name],
            )
        tried.append({"recipe": recipe.name, "reason": result.reason, **result.figures})
    (directory / INT8_FILE).unlink()
    raise QualityGateError(
        f"int8 failed its {what} with every recipe, so nothing was published: "
        + "; ".join(f"{t['recipe']}: {t['reason']}" for t in tried)
        + ". Export with --variant fp32 alone.",
        variant="int8",
    )


def convert_fp16(source: Path, output: Path) -> Path:
    """Convert a (fused) fp32 graph to fp16 weights and compute, keeping fp32 inputs and outputs."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(source)))
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(output))
    return output
