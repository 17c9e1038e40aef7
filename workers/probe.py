"""A provider check run in a spawned process: load a model on the asked device and report what really ran."""

from __future__ import annotations

from lepton_runtime.inference.engine import Engine
from lepton_runtime.registry import open_registry
from lepton_runtime.settings import LeptonSettings


def probe_provider(settings: LeptonSettings, reference: str, device: str) -> str:
    """Load ``reference`` on ``device``; the Engine raises ProviderUnavailableError if CUDA is not active."""
    registry = open_registry(settings)
    engine = Engine(registry.local_copy(registry.resolve(reference)).path, device=device)  # type: ignore[arg-type]
    return engine.provenance.provider


def probe_torch_cuda() -> str:
    """The GPU PyTorch would train on; raises ProviderUnavailableError when it sees none."""
    import torch

    from lepton_runtime.errors import ProviderUnavailableError

    if not torch.cuda.is_available():
        raise ProviderUnavailableError(
            f"asked for --device cuda on a training worker, but PyTorch {torch.__version__} sees no GPU; install a "
            "CUDA build of torch, or leave --device out (training then runs on the CPU)"
        )
    return str(torch.cuda.get_device_name(0))
