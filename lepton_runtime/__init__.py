"""Lepton Runtime: run Transformer models as queued jobs (registry, inference, training, monitoring).

The names users need are re-exported here; ``Engine`` is imported lazily so that
``import lepton_runtime`` stays light for producers that never run a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lepton_runtime.errors import (
    ExportError,
    InvalidInputError,
    InvalidReferenceError,
    LeptonError,
    ModelIntegrityError,
    ModelNotFoundError,
    ParityError,
    ProviderUnavailableError,
    QualityGateError,
    WrongTaskError,
)
from lepton_runtime.prediction import Embedding, Entities, Entity, ItemError, Prediction, Provenance
from lepton_runtime.registry import ModelReference, ModelRegistry, ModelVersion
from lepton_runtime.settings import LeptonSettings, load_settings

if TYPE_CHECKING:
    from lepton_runtime.inference import Engine

__version__ = "0.1.0"

__all__ = [
    # inference
    "Embedding",
    "Engine",
    "Entities",
    "Entity",
    "ItemError",
    "Prediction",
    "Provenance",
    # model management
    "ModelReference",
    "ModelRegistry",
    "ModelVersion",
    # settings
    "LeptonSettings",
    "load_settings",
    # errors
    "ExportError",
    "InvalidInputError",
    "InvalidReferenceError",
    "LeptonError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "ParityError",
    "ProviderUnavailableError",
    "QualityGateError",
    "WrongTaskError",
]


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from lepton_runtime.inference import Engine

        return Engine
    raise AttributeError(f"module 'lepton_runtime' has no attribute {name!r}")
