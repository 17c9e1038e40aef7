# syntax=docker/dockerfile:1
# Lepton Runtime images, one Dockerfile, several targets:
#   inference      CPU workers, the API and Flower: onnxruntime, no torch (small)
#   inference-gpu  CUDA workers: onnxruntime-gpu with the CUDA 13 / cuDNN 9 pip libraries, no torch
#   trainer        the lepton.training worker: PyTorch (CPU wheel by default; TORCH_INDEX_URL for CUDA)
# Build: docker compose build (see docker-compose.yml), or docker build --target inference -t lepton .

FROM python:3.11-slim AS source
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY lepton_runtime lepton_runtime
COPY producer producer
COPY workers workers
COPY export export
RUN useradd --create-home --uid 10001 lepton && mkdir -p /models /checkpoints && chown lepton /models /checkpoints

FROM source AS inference
RUN pip install ".[cpu,api]"
USER lepton
ENV LEPTON_MODEL_DIR=/models
CMD ["lepton", "worker"]

FROM source AS inference-gpu
RUN pip install ".[gpu,api]" "onnxruntime-gpu[cuda,cudnn]"
USER lepton
ENV LEPTON_MODEL_DIR=/models LEPTON_DEVICE=cuda
CMD ["lepton", "worker", "--device", "cuda"]

FROM source AS trainer
# torch first, from the index that matches the machine (CPU wheels by default: no gigabytes of CUDA)
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install "torch==2.13.0" --index-url "${TORCH_INDEX_URL}" && pip install ".[cpu,train]"
USER lepton
ENV LEPTON_MODEL_DIR=/models LEPTON_CHECKPOINT_DIR=/checkpoints
CMD ["lepton", "worker", "-Q", "lepton.training"]
