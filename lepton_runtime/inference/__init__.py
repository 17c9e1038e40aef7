"""Inference: tokenisation, length-aware batching, ONNX Runtime sessions and the tasks' results (never torch)."""

from lepton_runtime.inference.batching import pad_batch, plan_batches
from lepton_runtime.inference.engine import Engine, EngineStats, choose_variant
from lepton_runtime.prediction import Embedding, Entities, Entity, ItemError, Prediction, Provenance

__all__ = [
    "Embedding",
    "Engine",
    "Entities",
    "Entity",
    "EngineStats",
    "ItemError",
    "Prediction",
    "Provenance",
    "choose_variant",
    "pad_batch",
    "plan_batches",
]
