"""The one-round-trip result store on a real Redis: a stored success is never overwritten, results expire."""

from __future__ import annotations

import uuid

import redis
from celery import Celery, states
from celery.result import AsyncResult
from pydantic import SecretStr

from lepton_runtime.jobs import celery_config
from lepton_runtime.jobs.protocol import RESULT_TTL_S
from lepton_runtime.jobs.result_backend import LeptonResultBackend
from lepton_runtime.settings import LeptonSettings


def _app(redis_url: str) -> Celery:
    app = Celery("test-results", set_as_current=False)
    app.conf.update(celery_config(LeptonSettings(redis_url=SecretStr(redis_url))))
    return app


def test_the_app_stores_results_through_the_lepton_backend(redis_client: redis.Redis, redis_url: str) -> None:
    app = _app(redis_url)
    assert isinstance(app.backend, LeptonResultBackend)
    task_id = uuid.uuid4().hex
    app.backend.mark_as_done(task_id, {"predictions": [{"label": "positive"}]})
    result = AsyncResult(task_id, app=app)
    assert result.get(timeout=5) == {"predictions": [{"label": "positive"}]}
    key = app.backend.get_key_for_task(task_id)
    assert key.startswith(b"lepton:")
    assert 0 < redis_client.ttl(key) <= RESULT_TTL_S
    app.close()


def test_a_late_twin_delivery_never_overwrites_a_stored_success(redis_client: redis.Redis, redis_url: str) -> None:
    app = _app(redis_url)
    task_id = uuid.uuid4().hex
    app.backend.mark_as_done(task_id, {"answer": 1})
    app.backend.mark_as_failure(task_id, RuntimeError("a redelivered twin failed later"))
    app.backend.store_result(task_id, {"answer": 2}, states.SUCCESS)
    result = AsyncResult(task_id, app=app)
    assert (result.state, result.result) == (states.SUCCESS, {"answer": 1})
    app.close()


def test_a_failure_can_be_replaced_by_a_later_success(redis_client: redis.Redis, redis_url: str) -> None:
    app = _app(redis_url)
    task_id = uuid.uuid4().hex
    app.backend.mark_as_failure(task_id, RuntimeError("first attempt"))
    app.backend.mark_as_done(task_id, {"answer": 3})  # what a dead-letter replay under the same id does
    assert AsyncResult(task_id, app=app).get(timeout=5) == {"answer": 3}
    app.close()
