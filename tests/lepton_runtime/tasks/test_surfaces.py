"""Every task through every surface its spec derives: the Engine's ``infer``, the client (interactive and bulk
lanes), the CLI command, the HTTP route, a bulk job with the task's parameters given once, and the metrics.

Parametrised over ``SPECS``: a task registered there is tested here with no change (a new kind of model needs its
fixture in ``MODEL_OF_TASK``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lepton_runtime.errors import InvalidInputError, WrongTaskError
from lepton_runtime.inference import Engine
from lepton_runtime.prediction import ItemError
from lepton_runtime.registry import ModelRegistry, ModelVersion
from lepton_runtime.settings import LeptonSettings
from lepton_runtime.tasks import SPECS, TaskSpec
from producer import LeptonClient
from tests.queue_fixtures import REPO_ROOT, RunningApi, free_port
from tests.workers.test_metrics import scrape, total
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow

# The tiny model of each kind the tests publish (tests/conftest.py), by the task a model does.
MODEL_OF_TASK = {
    "text-classification": "tiny@production",
    "embedding": "tiny-embed@production",
    "token-classification": "tiny-ner@production",
}
TEXTS = ["my card payment was declined", "how do I top up by card?", "Anna flew from Berlin to Paris."]


@pytest.fixture
def every_model(published: ModelVersion, published_embedding: ModelVersion, published_entities: ModelVersion) -> None:
    """Every kind of tiny model published in the registry the workers read."""


@pytest.fixture
def api(queue_env: dict[str, str], tmp_path: Path) -> Iterator[RunningApi]:
    running = RunningApi({**os.environ, **queue_env}, tmp_path / "api.log", ["--allow-anonymous"])
    yield running
    running.stop()


def test_every_task_has_a_model_kind_the_tests_publish() -> None:
    assert {spec.model_task for spec in SPECS.values()} <= set(MODEL_OF_TASK)
    assert len({spec.command for spec in SPECS.values()}) == len(SPECS), "two tasks share a command"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_engine_infers_every_task_and_refuses_a_model_of_another_kind(
    name: str, every_model: None, published: ModelVersion
) -> None:
    spec = SPECS[name]
    registry = ModelRegistry(published.path.parent.parent)
    engine = Engine.load(MODEL_OF_TASK[spec.model_task], registry=registry)
    results = engine.infer(spec.name, TEXTS, **spec.example_params)
    assert len(results) == len(TEXTS)
    assert all(not isinstance(result, ItemError) and spec.cli_fields(result) for result in results)
    other = next(reference for task, reference in MODEL_OF_TASK.items() if task != spec.model_task)
    with pytest.raises(WrongTaskError, match="use"):
        Engine.load(other, registry=registry).infer(spec.name, TEXTS, **spec.example_params)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_task_through_the_client_cli_http_bulk_jobs_and_metrics(
    name: str,
    every_model: None,
    start_worker: Callable[..., WorkerProcess],
    queue_settings: LeptonSettings,
    queue_env: dict[str, str],
    api: RunningApi,
) -> None:
    spec = SPECS[name]
    model = MODEL_OF_TASK[spec.model_task]
    params = dict(spec.example_params)
    metrics_port = free_port()
    start_worker(extra=["--metrics-port", str(metrics_port)], warm=False)
    with LeptonClient(queue_settings) as client:
        # the client: its method for the task (explicit or from the spec), both lanes
        method = getattr(client, spec.client_method)
        for lane in ("interactive", "bulk"):
            answers = method(TEXTS, model=model, lane=lane, **params).wait(60)
            assert_answers(spec, answers, params)
        # a bulk job with the task's parameters given once
        job = client.submit_bulk(TEXTS * 3, model=model, chunk_size=4, task=spec.name, params=params)
        status = job.wait(120)
        assert status.state == "succeeded" and status.done_texts == 9
        assert status.task in (None, spec.name) and status.params == (spec.check_params(params) if status.task else {})
        rows = list(client.results(job.id))
        assert len(rows) == 9 and not any("error" in row for row in rows)
        if "labels" in params:
            assert {row["label"] for row in rows} <= set(params["labels"])
    # the CLI command
    options = [f"--{key}={value}" for key, values in params.items() for value in values]
    done = subprocess.run(
        [sys.executable, "-m", "lepton_runtime", spec.command, *TEXTS, "--model", model, *options],
        cwd=REPO_ROOT, env={**os.environ, **queue_env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["text"] for line in lines] == TEXTS and "answered in" in done.stderr
    # the HTTP route its spec names
    answer = api.http.post(spec.route, json=spec.http_body(TEXTS, model, params))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body.get("results") or body.get("predictions") or body.get("data")) == len(TEXTS)
    other_task, other = next((task, reference) for task, reference in MODEL_OF_TASK.items() if task != spec.model_task)
    refused = api.http.post(spec.route, json=spec.http_body(TEXTS, other, params))
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "wrong_task"
    # the error points to the calls that do serve that model, from their specs
    serving = [f"{s.client_method}() / POST {s.route}" for s in SPECS.values() if s.model_task == other_task]
    assert all(entry in refused.json()["error"]["message"] for entry in serving)
    # the metrics: texts answered per task asked
    assert total(scrape(metrics_port), "lepton_asked_texts_total", asked=spec.name) >= 2 * len(TEXTS) + 9


@pytest.mark.parametrize("name", sorted(name for name, spec in SPECS.items() if spec.options))
def test_a_task_with_parameters_refuses_bad_ones_at_the_edge_naming_the_field(
    name: str, every_model: None, queue_settings: LeptonSettings
) -> None:
    spec = SPECS[name]
    with LeptonClient(queue_settings) as client, pytest.raises(InvalidInputError) as refused:
        client.infer(spec.name, TEXTS, model=MODEL_OF_TASK[spec.model_task], params={"nonsense": 1})
    assert "nonsense: not a parameter" in str(refused.value)
    required = [option.name for option in spec.options if option.required]
    for option in required:
        with pytest.raises(InvalidInputError, match=f"{option}: required"):
            spec.check_params({})


def assert_answers(spec: TaskSpec, answers: list[Any], params: dict[str, Any]) -> None:
    assert len(answers) == len(TEXTS)
    for answer in answers:
        assert not isinstance(answer, ItemError), answer
        assert spec.cli_fields(answer)
        assert set(answer.as_dict()) - {"model"} == set(spec.result_fields)  # what its route's schema declares
        if "labels" in params:
            assert answer.label in params["labels"]
            assert set(answer.scores) == set(params["labels"])
