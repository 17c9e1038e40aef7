"""Inference: tokenisation, length-aware batching, ONNX Runtime sessions and predictions (never torch)."""

from lepton_runtime.inference.batching import pad_batch, plan_batches
from lepton_runtime.inference.engine import Engine, EngineStats, choose_variant
from lepton_runtime.prediction import ItemError, Prediction, Provenance

__all__ = [
    "Engine",
    "EngineStats",
    "ItemError",
    "Prediction",
    "Provenance",
    "choose_variant",
    "pad_batch",
    "plan_batches",
]
