"""Execution providers: what to ask ONNX Runtime for, and proof that the session really got it."""

from __future__ import annotations

import functools
import logging
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from lepton_runtime.errors import ProviderUnavailableError
from lepton_runtime.machine import available_cores

Device = Literal["cpu", "cuda"]
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
CUDA_DEVICE_ID = 0
# Options of the CUDA provider: one device, the arena grown only as needed (several models share a
# GPU), and the default stream for copies so that bound inputs are ready before the kernels run.
CUDA_PROVIDER_OPTIONS = {
    "device_id": CUDA_DEVICE_ID,
    "arena_extend_strategy": "kSameAsRequested",
    "do_copy_in_default_stream": True,
}

logger = logging.getLogger(__name__)


@functools.cache
def preload_cuda_libraries() -> None:
    """Load CUDA and cuDNN from the NVIDIA pip packages when onnxruntime-gpu can (1.21+).

    Without it, a process that has not imported torch first may find no libcublas/libcudnn and
    ONNX Runtime falls back to the CPU (which ``create_session`` then refuses).
    """
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload(cuda=True, cudnn=True, msvc=False)
    except (OSError, RuntimeError) as error:  # libraries may be on LD_LIBRARY_PATH; the session check decides
        logger.info("onnxruntime.preload_dlls found no CUDA libraries in pip packages: %s", error)


def cuda_provider_available() -> bool:
    """Whether this onnxruntime build has the CUDA provider (not whether a GPU answers: sessions check that)."""
    return CUDA_PROVIDER in ort.get_available_providers()


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
    preload_cuda_libraries()
    return [(CUDA_PROVIDER, dict(CUDA_PROVIDER_OPTIONS)), CPU_PROVIDER]


def session_options(intra_op_threads: int, allow_spinning: bool = True) -> ort.SessionOptions:
    """Session options for throughput: a fixed thread count, sequential execution, all graph optimisations.

    Spinning keeps ONNX Runtime's threads busy-waiting between calls: faster on dedicated cores,
    wasteful when processes share them.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads or available_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return options


def create_session(
    model_path: str, device: Device, intra_op_threads: int, allow_spinning: bool = True
) -> ort.InferenceSession:
    """Create a session and refuse it if CUDA was asked for but ONNX Runtime fell back to the CPU."""
    try:
        session = ort.InferenceSession(
            model_path, sess_options=session_options(intra_op_threads, allow_spinning), providers=providers_for(device)
        )
    except (RuntimeError, ort.capi.onnxruntime_pybind11_state.Fail) as error:
        if device == "cuda" and "CUDA" in str(error):
            raise ProviderUnavailableError(
                f"Asked to use {CUDA_PROVIDER}, but it failed to start: {error}. Check that a GPU is visible"
                " (nvidia-smi, CUDA_VISIBLE_DEVICES) and that CUDA/cuDNN match onnxruntime-gpu, or use --device cpu."
            ) from error
        raise
    active = session.get_providers()
    if device == "cuda" and active[0] != CUDA_PROVIDER:
        raise ProviderUnavailableError(
            f"Asked to use {CUDA_PROVIDER}, but the session runs on {active}: ONNX Runtime fell back"
            " silently (missing CUDA/cuDNN libraries or no visible GPU). Fix the CUDA install or use --device cpu."
        )
    return session


def run_on_cuda(session: ort.InferenceSession, feeds: dict[str, np.ndarray], output: str) -> np.ndarray:
    """One run with IO binding: inputs copied to the GPU once, the output bound on the GPU and copied
    back once, so ONNX Runtime makes no extra host copies or synchronisations of its own."""
    binding = session.io_binding()
    for name, array in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", CUDA_DEVICE_ID))
    binding.bind_output(output, "cuda", CUDA_DEVICE_ID)
    session.run_with_iobinding(binding)
    result: np.ndarray = binding.copy_outputs_to_cpu()[0]
    return result
