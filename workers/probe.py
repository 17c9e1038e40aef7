"""A provider check run in a spawned process: load a model on the asked device and report what really ran."""

from __future__ import annotations

from lepton_runtime.inference.engine import Engine
from lepton_runtime.registry import ModelRegistry


def probe_provider(model_dir: str, reference: str, device: str) -> str:
    """Load ``reference`` on ``device``; the Engine raises ProviderUnavailableError if CUDA is not active."""
    engine = Engine(ModelRegistry(model_dir).resolve(reference).path, device=device)  # type: ignore[arg-type]
    return engine.provenance.provider
