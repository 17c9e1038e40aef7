"""``/healthz``, ``/readyz`` and ``/metrics``: whether the API lives, whether it can serve, what waits in the queues."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from lepton_runtime import __version__
from lepton_runtime.constants import INFERENCE_QUEUE, TRAINING_QUEUE
from lepton_runtime.errors import BrokerUnavailableError
from lepton_runtime.jobs.connection import broker_errors
from lepton_runtime.jobs.queues import queue_depths
from lepton_runtime.monitoring.collectors import QueueCollector
from producer.api.dependencies import READ, Client, Settings
from producer.api.errors import error_responses
from producer.api.schemas import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, responses=error_responses(500))
def healthz() -> Health:
    """The API process answers (no dependency is checked)."""
    return Health(version=__version__)


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}, **error_responses(500)})
def readyz(settings: Settings, client: Client) -> Response:
    """Ready when Redis answers and a worker consumes the inference queue."""
    problems: list[str] = []
    workers = {INFERENCE_QUEUE: 0, TRAINING_QUEUE: 0}
    depth: dict[str, int] = {}
    broker = True
    try:
        with broker_errors(settings.broker_url):
            client.redis.ping()
            depth = queue_depths(client.redis)
    except BrokerUnavailableError as error:
        broker = False
        problems.append(str(error))
    if broker:
        for queues in (client.celery.control.inspect(timeout=1.0).active_queues() or {}).values():
            for queue in queues:
                if queue.get("name") in workers:
                    workers[queue["name"]] += 1
        if not workers[INFERENCE_QUEUE]:
            problems.append(f"no worker consumes {INFERENCE_QUEUE}: start one with `lepton worker`")
        for process in client.fleet():
            for alias, why in process.problems.items():
                problems.append(
                    f"worker {process.worker} (pid {process.pid}) on {process.host} cannot serve {alias}: {why}"
                )
            if process.store_error is not None and process.ready:  # it serves the copies its host has
                problems.append(
                    f"worker {process.worker} (pid {process.pid}) on {process.host}: the model store does not answer "
                    f"({process.store_error}); it serves the models its host has copies of"
                )
    ready = broker and workers[INFERENCE_QUEUE] > 0
    answer = Readiness(ready=ready, broker=broker, workers=workers, queue_depth=depth, problems=problems)
    return JSONResponse(answer.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    dependencies=READ,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
        **error_responses(401, 403, 500, 503, beside="text/plain"),
    },
)
def metrics(settings: Settings, client: Client) -> PlainTextResponse:
    """Queue depth and the age of the oldest waiting message per queue, in the Prometheus text format
    (the collector the workers' /metrics use)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(client.redis, strict=True))
    with broker_errors(settings.broker_url):
        body = generate_latest(registry)
    return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
