"""PyTorch -> ONNX: the exporter call with named dynamic axes, and the transformer fusions of ONNX Runtime."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

# Inputs of a BERT-style encoder; every output has one row per text (logits, sentence_embedding).
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
INPUT_AXES = {name: {0: "batch_size", 1: "sequence_length"} for name in INPUT_NAMES}
# Fused operators we look for after optimisation; reported in the manifest.
FUSED_OPERATORS = ("EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu", "FastGelu")


def export_onnx(model: Any, output: Path, opset: int, output_name: str = "logits", *, per_token: bool = False) -> Path:
    """Export with the TorchScript-based exporter (the dynamo one needs onnxscript and ran slower here);
    ``model`` returns one tensor (or an object with ``.logits``) named ``output_name`` in the graph, with one
    row per text (``per_token``: one row per token of each text)."""
    import torch

    sample = torch.ones((2, 8), dtype=torch.long)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (sample, torch.ones_like(sample), torch.zeros_like(sample)),
            str(output),
            input_names=list(INPUT_NAMES),
            output_names=[output_name],
            dynamic_axes={
                **INPUT_AXES,
                output_name: {0: "batch_size", 1: "sequence_length"} if per_token else {0: "batch_size"},
            },
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return output


def fuse_transformer_graph(source: Path, output: Path, num_heads: int, hidden_size: int) -> list[str]:
    """Apply ONNX Runtime's BERT fusions offline; return the fused operators found, e.g. ``Attention x6``."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(source), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=1
    )
    optimized.save_model_to_file(str(output))
    statistics = optimized.get_fused_operator_statistics()
    return [f"{op} x{statistics[op]}" for op in FUSED_OPERATORS if statistics.get(op)]
