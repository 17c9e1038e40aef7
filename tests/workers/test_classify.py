"""``lepton.classify`` through a real worker: the same answers as in process, bad items in place, clear errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from lepton_runtime.errors import InvalidInputError, ModelNotFoundError
from lepton_runtime.inference import Engine, ItemError, Prediction
from lepton_runtime.jobs import DeadLetterStore
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelVersion
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow


def test_classify_answers_like_the_engine_with_provenance(
    start_worker: Callable[..., WorkerProcess],
    queue_settings: LeptonSettings,
    published: ModelVersion,
    banking: LabelledTexts,
) -> None:
    start_worker()
    client = LeptonClient(queue_settings)
    texts = banking.texts[:5]
    answers = client.classify(texts, model="tiny@production").wait(60)
    expected = Engine(published.path, intra_op_threads=1).classify(texts)
    assert [a.label for a in answers if isinstance(a, Prediction)] == [e.label for e in expected]
    for answer, want in zip(answers, expected, strict=True):
        assert isinstance(answer, Prediction)
        assert answer.score == pytest.approx(want.score, abs=1e-5)
        assert answer.model == want.model
        assert answer.model.version == 1 and answer.model.provider == "CPUExecutionProvider"


def test_bad_items_are_answered_in_place_and_bad_requests_fail_with_their_code(
    start_worker: Callable[..., WorkerProcess], queue_settings: LeptonSettings, redis_client: redis.Redis
) -> None:
    worker = start_worker()
    client = LeptonClient(queue_settings)
    answers = client.classify(["a fine film", "", "dull\x00"], model="tiny").wait(60)
    assert isinstance(answers[0], Prediction)
    assert [(a.index, a.code) for a in answers[1:] if isinstance(a, ItemError)] == [
        (1, "invalid_input"),
        (2, "invalid_input"),
    ]

    version = client.resolve("tiny")
    raw = client.celery.send_task("lepton.classify", args=["not a list", version.reference], queue="lepton.inference")
    from producer.client import ClassifyJob

    with pytest.raises(InvalidInputError, match="list"):
        ClassifyJob(raw.id, raw).wait(60)
    assert DeadLetterStore(redis_client).list() == []  # the caller's fault: nothing to replay
    assert worker.process.poll() is None

    with pytest.raises(ModelNotFoundError):  # refused at submit, before anything is queued
        client.classify(["x"], model="no-such-model")


def test_an_idempotency_key_returns_the_first_classify_job(
    start_worker: Callable[..., WorkerProcess], queue_settings: LeptonSettings
) -> None:
    client = LeptonClient(queue_settings)
    first = client.classify(["great"], model="tiny", idempotency_key="req-1")
    again = client.classify(["great"], model="tiny", idempotency_key="req-1")
    assert again.id == first.id and not again.created
    start_worker()
    assert again.wait(60)[0].label == first.wait(60)[0].label
