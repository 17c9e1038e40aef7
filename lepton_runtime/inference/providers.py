"""Execution providers: what to ask ONNX Runtime for, and proof that the session really got it."""

from __future__ import annotations

import os
from typing import Any, Literal

import onnxruntime as ort

from lepton_runtime.errors import ProviderUnavailableError

Device = Literal["cpu", "cuda"]
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


def providers_for(device: Device) -> list[Any]:
    """Providers to ask for; CUDA is asked for only if this onnxruntime build has it."""
    if device == "cpu":
        return [CPU_PROVIDER]
    available = ort.get_available_providers()
    if CUDA_PROVIDER not in available:
        raise ProviderUnavailableError(
            f"Asked to use {CUDA_PROVIDER}, but the available execution providers are {available}."
            " Install onnxruntime-gpu (pip install 'lepton-runtime[gpu]', never together with"
            " onnxruntime) on a machine with an NVIDIA driver, or run with --device cpu."
        )
    return [(CUDA_PROVIDER, {"device_id": 0}), CPU_PROVIDER]


def session_options(intra_op_threads: int, allow_spinning: bool = True) -> ort.SessionOptions:
    """Session options for throughput: a fixed thread count, sequential execution, all graph optimisations.

    Spinning keeps ONNX Runtime's threads busy-waiting between calls: faster on dedicated cores,
    wasteful when processes share them.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads or (os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return options


def create_session(
    model_path: str, device: Device, intra_op_threads: int, allow_spinning: bool = True
) -> ort.InferenceSession:
    """Create a session and refuse it if CUDA was asked for but ONNX Runtime fell back to the CPU."""
    session = ort.InferenceSession(
        model_path, sess_options=session_options(intra_op_threads, allow_spinning), providers=providers_for(device)
    )
    active = session.get_providers()
    if device == "cuda" and active[0] != CUDA_PROVIDER:
        raise ProviderUnavailableError(
            f"Asked to use {CUDA_PROVIDER}, but the session runs on {active}: ONNX Runtime fell back"
            " silently (missing CUDA/cuDNN libraries or no visible GPU). Fix the CUDA install or use --device cpu."
        )
    return session
