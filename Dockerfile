# Lepton Runtime images, one Dockerfile, several targets (docker-compose.yml builds them; `make images` too):
#   inference      CPU workers, the API and Flower: onnxruntime, no torch
#   inference-gpu  CUDA workers: onnxruntime-gpu with the CUDA 13 / cuDNN 9 pip libraries, no torch
#   trainer        the lepton.training worker: PyTorch (the CPU wheel; build it on a CUDA base for GPUs)
#   redis          Debian's redis-server, run by compose with a password and an append-only file
#   prometheus     Debian's Prometheus with the fleet's scrape configuration (docker/prometheus.yml)
#   s3-standin     moto's S3 server, in memory: the object store of `make compose-test` where MinIO's image cannot
#                  be pulled (docker/compose.offline.yml). A test double: it keeps nothing and checks no keys.
#
# Every image starts from BASE_IMAGE, a Debian bookworm: debian:bookworm-slim where a registry answers, or the one
# `make base-image` makes from Debian's archive alone (BASE_IMAGE=lepton-base:bookworm). Python packages come only
# from the wheelhouse `make wheels` fills (build/wheels), at the versions docker/requirements-<image>.txt pins, then
# the project's own wheel (build/project) in a layer of its own, so that a change of code reuses the dependencies'
# layers: the build needs no package index, and the runtime layers hold no compiler, no pip cache and no wheels.
ARG BASE_IMAGE=debian:bookworm-slim

# -- the interpreter and the user every Python image runs as -----------------------------------------------------
FROM ${BASE_IMAGE} AS python
ARG DEBIAN_FRONTEND=noninteractive
ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/lepton/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && useradd --create-home --uid 10001 lepton \
    && mkdir -p /models /checkpoints /cache && chown lepton /models /checkpoints /cache

# -- a virtual environment per image, from the pinned wheels; each image right after its build stage, cheapest
# first: the classic builder builds every stage above the target (BuildKit only those it needs) -------------------
FROM python AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends python3-venv && rm -rf /var/lib/apt/lists/*
COPY build/wheels /wheels
COPY docker/requirements-*.txt /requirements/

FROM build AS build-inference
RUN python3 -m venv /opt/lepton \
    && /opt/lepton/bin/pip install --no-cache-dir --no-index --find-links /wheels --no-deps \
       -r /requirements/requirements-inference.txt
COPY build/project /project
RUN /opt/lepton/bin/pip install --no-cache-dir --no-index --no-deps /project/*.whl && /opt/lepton/bin/pip check

FROM python AS inference
COPY --from=build-inference /opt/lepton /opt/lepton
USER lepton
WORKDIR /home/lepton
ENV LEPTON_MODEL_DIR=/models LEPTON_MODEL_CACHE_DIR=/cache
# the command answers: workers, the API and Flower each get a sharper check from docker-compose.yml
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s CMD ["lepton", "--version"]
CMD ["lepton", "worker"]

FROM ${BASE_IMAGE} AS redis
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
HEALTHCHECK --interval=10s --timeout=5s --retries=5 CMD ["sh", "-c", "redis-cli ping | grep -q -e PONG -e NOAUTH"]
CMD ["redis-server", "--dir", "/data", "--appendonly", "yes", "--protected-mode", "no"]

FROM ${BASE_IMAGE} AS prometheus
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* \
    && mkdir -p /prometheus && chown prometheus /prometheus
COPY docker/prometheus.yml /etc/prometheus/prometheus.yml
COPY docker/prometheus-entrypoint.sh /usr/local/bin/prometheus-entrypoint
USER prometheus
EXPOSE 9090
HEALTHCHECK --interval=10s --timeout=5s --retries=5 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090 && printf 'GET /-/ready HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["prometheus-entrypoint"]

FROM build AS build-s3-standin
RUN python3 -m venv /opt/lepton \
    && /opt/lepton/bin/pip install --no-cache-dir --no-index --find-links /wheels --no-deps \
       -r /requirements/requirements-s3-standin.txt \
    && /opt/lepton/bin/pip check

FROM python AS s3-standin
COPY --from=build-s3-standin /opt/lepton /opt/lepton
USER lepton
WORKDIR /home/lepton
EXPOSE 9000
HEALTHCHECK --interval=5s --timeout=5s --retries=10 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9000/', timeout=4)"]
CMD ["moto_server", "--host", "0.0.0.0", "--port", "9000"]

FROM build AS build-trainer
RUN python3 -m venv /opt/lepton \
    && /opt/lepton/bin/pip install --no-cache-dir --no-index --find-links /wheels --no-deps \
       -r /requirements/requirements-trainer.txt
COPY build/project /project
RUN /opt/lepton/bin/pip install --no-cache-dir --no-index --no-deps /project/*.whl && /opt/lepton/bin/pip check

FROM python AS trainer
COPY --from=build-trainer /opt/lepton /opt/lepton
USER lepton
WORKDIR /home/lepton
ENV LEPTON_MODEL_DIR=/models LEPTON_MODEL_CACHE_DIR=/cache LEPTON_CHECKPOINT_DIR=/checkpoints
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s CMD ["lepton", "--version"]
CMD ["lepton", "worker", "-Q", "lepton.training"]

FROM build AS build-inference-gpu
RUN python3 -m venv /opt/lepton \
    && /opt/lepton/bin/pip install --no-cache-dir --no-index --find-links /wheels --no-deps \
       -r /requirements/requirements-inference-gpu.txt
COPY build/project /project
RUN /opt/lepton/bin/pip install --no-cache-dir --no-index --no-deps /project/*.whl && /opt/lepton/bin/pip check

FROM python AS inference-gpu
COPY --from=build-inference-gpu /opt/lepton /opt/lepton
USER lepton
WORKDIR /home/lepton
ENV LEPTON_MODEL_DIR=/models LEPTON_MODEL_CACHE_DIR=/cache LEPTON_DEVICE=cuda
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s CMD ["lepton", "--version"]
CMD ["lepton", "worker", "--device", "cuda"]
