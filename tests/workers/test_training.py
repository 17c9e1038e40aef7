"""Training runs through real Redis and a real training worker: progress, publish, promotion, cancel, bad data."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import redis
from click.testing import CliRunner

from lepton_runtime.cli import cli
from lepton_runtime.constants import PRODUCTION_ALIAS
from lepton_runtime.errors import InvalidInputError, JobNotFoundError
from lepton_runtime.jobs import TrainingRuns, TrainingStatus
from lepton_runtime.jobs.keys import TrainingKeys
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelRegistry
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import labelled_sample, take_training_message
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow
WAIT_S = 300
TINY = {"learning_rate": 3e-3, "batch_size": 16, "max_length": 64}


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def client(queue_settings: LeptonSettings, registry_dir: Path) -> LeptonClient:
    return LeptonClient(queue_settings.model_copy(update={"model_dir": registry_dir}))


@pytest.fixture
def start_trainer(
    start_worker: Callable[..., WorkerProcess], registry_dir: Path, tmp_path: Path
) -> Callable[..., WorkerProcess]:
    """A real `lepton worker -Q lepton.training` publishing into this test's registry."""

    def start(env: dict[str, str] | None = None) -> WorkerProcess:
        paths = {"LEPTON_MODEL_DIR": str(registry_dir), "LEPTON_CHECKPOINT_DIR": str(tmp_path / "checkpoints")}
        return start_worker(extra=["-Q", "lepton.training"], env={**paths, **(env or {})}, warm=False)

    return start


def test_a_queued_run_reports_progress_publishes_with_metrics_and_promotes_by_the_rule(
    start_trainer: Callable[..., WorkerProcess],
    client: LeptonClient,
    registry_dir: Path,
    tiny_base: Path,
    banking: LabelledTexts,
    tmp_path: Path,
) -> None:
    data = labelled_sample(banking, tmp_path / "train.jsonl", 0, 1200)
    start_trainer()
    seen: list[TrainingStatus] = []

    first = client.train(data, name="sent", base=tiny_base, epochs=3, **TINY).wait(WAIT_S, on_progress=seen.append)

    assert first.state == "succeeded", first.error
    training = [s.progress for s in seen if s.state == "running" and s.progress.phase == "training"]
    assert training and training[0].step < training[-1].step <= training[-1].total_steps
    assert any(p.loss is not None and p.eta_s is not None for p in training)
    assert first.outcome is not None and first.outcome.version == "sent@1"
    accuracy = first.outcome.metrics["validation_accuracy"]
    assert accuracy > 0.62, "the tiny model should beat chance (0.5) by a clear margin"
    assert first.outcome.promoted and "first" in first.outcome.promotion
    registry = ModelRegistry(registry_dir)
    published = registry.resolve("sent@1")
    assert published.manifest.metrics["validation_accuracy"] == accuracy
    assert published.manifest.metrics["per_class"].keys() == {"problem", "question"}
    assert registry.resolve(f"sent@{PRODUCTION_ALIAS}").version == 1
    assert Path(first.outcome.curve or "").stat().st_size > 10_000  # a real PNG, not an empty file

    # a much weaker run (tiny learning rate, one epoch) is published but not promoted
    weak = client.train(data, name="sent", base=tiny_base, epochs=1, learning_rate=1e-6).wait(WAIT_S)
    assert weak.state == "succeeded" and weak.outcome is not None
    assert weak.outcome.metrics["validation_accuracy"] < accuracy
    assert not weak.outcome.promoted and "not promoted" in weak.outcome.promotion
    assert registry.resolve(f"sent@{PRODUCTION_ALIAS}").version == 1
    # ...unless told to
    forced = client.train(data, name="sent", base=tiny_base, epochs=1, learning_rate=1e-6, promote="always")
    assert forced.wait(WAIT_S).outcome.promoted  # type: ignore[union-attr]
    assert registry.resolve(f"sent@{PRODUCTION_ALIAS}").version == 3


def test_a_cancelled_run_publishes_nothing_and_a_run_cancelled_while_queued_never_starts(
    start_trainer: Callable[..., WorkerProcess],
    client: LeptonClient,
    registry_dir: Path,
    tiny_base: Path,
    banking: LabelledTexts,
    tmp_path: Path,
) -> None:
    data = labelled_sample(banking, tmp_path / "train.jsonl", 0, 1500)
    # cancelled before any worker runs: the flag is in Redis, so the worker that starts later skips it
    queued = client.train(data, name="never", base=tiny_base, epochs=1, **TINY)
    assert client.cancel(queued.id).state == "cancelled"
    start_trainer()
    long_run = client.train(data, name="cancelled", base=tiny_base, epochs=60, **TINY)

    def cancel_once_training(status: TrainingStatus) -> None:
        if status.progress.phase == "training" and status.progress.step >= 5 and not status.finished:
            client.cancel(status.id)

    final = long_run.wait(WAIT_S, on_progress=cancel_once_training)

    assert final.state == "cancelled"
    assert final.progress.epoch < 60
    assert final.error is not None and final.error.code == "cancelled"
    skipped = client.training_status(queued.id)
    assert (skipped.state, skipped.attempts) == ("cancelled", 0)  # the worker took it after the run above
    assert ModelRegistry(registry_dir).list_models() == []


def test_a_training_message_the_broker_lost_is_sent_again_and_the_run_finishes_once(
    start_trainer: Callable[..., WorkerProcess],
    client: LeptonClient,
    redis_client: redis.Redis,
    registry_dir: Path,
    tiny_base: Path,
    banking: LabelledTexts,
    tmp_path: Path,
) -> None:
    data = labelled_sample(banking, tmp_path / "train.jsonl", 0, 600)
    run = client.train(data, name="rescued", base=tiny_base, epochs=1, **TINY)
    take_training_message(redis_client, run.id)  # as kombu loses one popped just as Redis goes away
    worker = start_trainer()

    final = run.wait(WAIT_S)

    assert (final.state, final.attempts) == ("succeeded", 1), final.error
    assert final.outcome is not None and final.outcome.version == "rescued@1"
    assert [v.reference for v in ModelRegistry(registry_dir).versions("rescued")] == ["rescued@1"]
    assert "sending it again" in worker.log_tail(20_000)


def test_a_trainer_paused_past_its_heartbeat_is_taken_over_and_publishes_nothing_when_continued(
    start_trainer: Callable[..., WorkerProcess],
    client: LeptonClient,
    redis_client: redis.Redis,
    registry_dir: Path,
    tiny_base: Path,
    banking: LabelledTexts,
    tmp_path: Path,
) -> None:
    trainers = [start_trainer({"LEPTON_TRAIN_HEARTBEAT_TIMEOUT_S": "2"}) for _ in range(2)]
    data = labelled_sample(banking, tmp_path / "train.jsonl", 0, 600)
    run = client.train(data, name="handover", base=tiny_base, epochs=6, **TINY)
    record = TrainingKeys(run.id).record
    paused: list[tuple[WorkerProcess, str]] = []
    continued: list[str] = []

    def pause_the_holder_then_continue_it_once_taken_over(status: TrainingStatus) -> None:
        holder = redis_client.hget(record, "holder")
        if not paused and status.progress.phase == "training" and status.progress.step >= 2:
            pid = int(str(holder).split(":")[1])
            (trainer,) = [t for t in trainers if pid in [c.pid for c in psutil.Process(t.pid).children()]]
            os.killpg(trainer.pid, signal.SIGSTOP)  # frozen mid-run: no heartbeat, no step, no acknowledgement
            paused.append((trainer, str(holder)))
        elif paused and not continued and holder != paused[0][1]:
            os.killpg(paused[0][0].pid, signal.SIGCONT)  # the run was taken over: the old holder wakes up
            continued.append(str(holder))

    try:
        final = run.wait(WAIT_S, on_progress=pause_the_holder_then_continue_it_once_taken_over)
    finally:
        for trainer, _ in paused[len(continued) :]:
            os.killpg(trainer.pid, signal.SIGCONT)
    assert paused and continued, "the run finished before it was paused and taken over"
    assert (final.state, final.attempts) == ("succeeded", 2), final.error
    old = paused[0][0]
    deadline = time.monotonic() + 60
    while "superseded" not in old.log_tail(20_000):  # the old holder stops at its next step
        assert time.monotonic() < deadline, old.log_tail()
        time.sleep(0.1)  # a woken process reaching its next step: nothing to wait on but its log
    assert final.outcome is not None
    assert [v.reference for v in ModelRegistry(registry_dir).versions("handover")] == [final.outcome.version]
    assert client.training_status(run.id) == final, "the old holder finished nothing"


@pytest.mark.parametrize(
    ("content", "suffix", "problem"),
    [
        (b'{"text": "fine", "label": "a"}\n{"label": "b"}\n', ".jsonl", "field 'text' is missing"),
        (b"text,intent\nhello,greet\nbye,leave\n", ".csv", "no row has a 'label'"),
        (b'{"text": "good", "label": "pos"}\n{"text": "great", "label": "pos"}\n', ".jsonl", "one label only"),
        (b"", ".jsonl", "no rows"),
        (b'{"text": "caf\xe9", "label": "a"}\n', ".jsonl", "not valid UTF-8"),
    ],
    ids=["missing-text", "missing-label-column", "one-label", "empty", "non-utf8"],
)
def test_bad_training_data_fails_at_once_and_records_nothing(
    client: LeptonClient, redis_client: redis.Redis, tmp_path: Path, content: bytes, suffix: str, problem: str
) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)

    with pytest.raises(InvalidInputError, match=problem) as raised:
        client.train(path, name="bad")

    assert str(path) in str(raised.value)
    assert TrainingRuns(redis_client).list_runs() == []
    with pytest.raises(JobNotFoundError):
        client.describe("0" * 32)


def test_lepton_train_submit_follows_the_run_and_jobs_status_shows_it(
    start_trainer: Callable[..., WorkerProcess],
    queue_env: dict[str, str],
    registry_dir: Path,
    tiny_base: Path,
    banking: LabelledTexts,
    tmp_path: Path,
) -> None:
    data = labelled_sample(banking, tmp_path / "train.jsonl", 0, 600)
    start_trainer()
    env = {**queue_env, "LEPTON_MODEL_DIR": str(registry_dir)}
    runner = CliRunner()

    submitted = runner.invoke(
        cli, ["train", str(data), "--name", "shell", "--base", str(tiny_base), "--epochs", "1", "--lr", "3e-3",
              "--submit", "--timeout", str(WAIT_S)],
        env=env, catch_exceptions=False,
    )  # fmt: skip

    assert submitted.exit_code == 0, submitted.output
    run_id = next(line.split()[2] for line in submitted.output.splitlines() if line.startswith("training run "))
    assert f"{run_id} succeeded: training shell" in submitted.output
    assert "published shell@1 (fp32" in submitted.output
    status = runner.invoke(cli, ["jobs", "status", run_id], env=env, catch_exceptions=False).output
    assert f"{run_id} succeeded" in status and "done: epoch 1/1" in status
    listed = runner.invoke(cli, ["jobs", "list"], env=env, catch_exceptions=False).output
    assert run_id in listed and "train" in listed


def test_an_entity_model_trains_on_the_queue_from_the_cli_and_serves_entities(
    start_trainer: Callable[..., WorkerProcess],
    queue_env: dict[str, str],
    registry_dir: Path,
    tiny_base: Path,
    client: LeptonClient,
    tmp_path: Path,
) -> None:
    from lepton_runtime.inference import Engine
    from tests.lepton_runtime.training.test_entities import write_synthetic

    files = {
        name: write_synthetic(tmp_path / f"{name}.jsonl", count, seed)
        for name, count, seed in (("train", 400, 1), ("validation", 80, 2))
    }
    with pytest.raises(InvalidInputError, match="validation"):
        client.train(files["train"], name="ner", task="token-classification")
    start_trainer()
    env = {**queue_env, "LEPTON_MODEL_DIR": str(registry_dir)}

    submitted = CliRunner().invoke(
        cli, ["train", str(files["train"]), "--validation", str(files["validation"]), "--task", "token-classification",
              "--name", "ner", "--base", str(tiny_base), "--epochs", "6", "--lr", "3e-3", "--max-length", "64",
              "--submit", "--timeout", str(WAIT_S)],
        env=env, catch_exceptions=False,
    )  # fmt: skip

    assert submitted.exit_code == 0, submitted.output
    assert "published ner@1: validation entity F1" in submitted.output and "PER" in submitted.output
    version = ModelRegistry(registry_dir).resolve("ner@production")
    assert version.manifest.task == "token-classification" and version.manifest.metrics["validation_entity_f1"] > 0.8
    found = Engine(version.path).entities(["Yesterday Kofi Mensah met Li Wei at Lufthansa ."])[0]
    assert {entity.label for entity in found} & {"PER", "ORG"}
