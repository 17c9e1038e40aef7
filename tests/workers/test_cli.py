"""The workers' commands on real processes: `lepton up` starts and stops everything, dead letters replay,
a CUDA worker without CUDA refuses to start, and submit/jobs follow a job from the shell."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
import redis
from celery.result import AsyncResult
from click.testing import CliRunner
from pydantic import SecretStr

from lepton_runtime.cli import cli
from lepton_runtime.errors import InvalidInputError, ModelIntegrityError
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelRegistry, ModelVersion
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from producer.client import ClassifyJob
from tests.queue_fixtures import REPO_ROOT, TEST_LIMITS, free_port
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow


def start_up(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    """`lepton up` (``command``: its arguments) running and ready; its output lines so far and as they come."""
    up = subprocess.Popen([sys.executable, "-m", "lepton_runtime", "up", *command], cwd=REPO_ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert up.stdout is not None
    seen = []
    for line in up.stdout:  # blocks on its output until it says ready
        seen.append(line)
        if "lepton up: ready" in line:
            break
    assert up.poll() is None, "".join(seen)
    # the rest of its output is read as it comes: a full pipe would block `lepton up` in a print and it would
    # never get to stopping its children
    threading.Thread(target=lambda: seen.extend(up.stdout or ()), daemon=True).start()
    return up, seen


def stop_up(up: subprocess.Popen[str], seen: list[str]) -> None:
    up.send_signal(signal.SIGINT)
    assert up.wait(timeout=90) == 0, "".join(seen)


def up_env(published: ModelVersion) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LEPTON_REDIS_URL"}  # no broker configured
    return env | {"LEPTON_MODEL_DIR": str(published.path.parent.parent), **TEST_LIMITS}


def test_lepton_up_runs_a_job_and_leaves_nothing_running(
    published: ModelVersion, banking: LabelledTexts, tmp_path: Path
) -> None:
    redis_port, flower_port, metrics_port = free_port(), free_port(), free_port()
    up, seen = start_up(["-c", "1", "--redis-port", str(redis_port), "--flower-port", str(flower_port),
                         "--metrics-port", str(metrics_port), "--data-dir", str(tmp_path / "up")],
                        up_env(published))  # fmt: skip
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
    assert scraped.status_code == 200 and "lepton_queue_depth" in scraped.text, "the worker's metrics, on loopback"
    children = psutil.Process(up.pid).children(recursive=True)
    assert len(children) >= 6  # redis-server, worker main and pool process, trainer main and pool process, flower
    assert any(line.startswith("trainer ") and "lepton.training" in line for line in seen), "".join(seen)

    settings = LeptonSettings(
        redis_url=SecretStr(f"redis://127.0.0.1:{redis_port}/0"), model_dir=published.path.parent.parent
    )
    with LeptonClient(settings) as client:
        status = client.submit_bulk(banking.texts[:300], model="tiny", chunk_size=50).wait(120)
    assert status.state == "succeeded" and status.done_texts == 300

    stop_up(up, seen)
    assert "lepton up: stopped" in "".join(seen)
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", redis_port)) != 0  # Redis is gone too
    assert (tmp_path / "up" / "redis" / "appendonlydir").is_dir()  # and it kept an append-only file


def test_a_second_lepton_up_on_a_folder_in_use_refuses_and_its_advice_starts_a_separate_fleet(
    published: ModelVersion, banking: LabelledTexts, tmp_path: Path
) -> None:
    env, folder = up_env(published), tmp_path / "up"
    redis_port = free_port()
    first, first_seen = start_up(["-c", "1", "--no-trainer", "--redis-port", str(redis_port), "--flower-port",
                                  str(free_port()), "--data-dir", str(folder)], env)  # fmt: skip
    first_settings = LeptonSettings(
        redis_url=SecretStr(f"redis://127.0.0.1:{redis_port}/0"), model_dir=published.path.parent.parent
    )
    texts = [banking.texts[i % len(banking.texts)] for i in range(3000)]
    second: tuple[subprocess.Popen[str], list[str]] | None = None
    with LeptonClient(first_settings) as client:
        job = client.submit_bulk(texts, model="tiny", chunk_size=50)
        try:
            # what a user did on the old advice ("choose --redis-port"): same folder, another port
            refused = subprocess.run(
                [sys.executable, "-m", "lepton_runtime", "up", "--redis-port", str(free_port()), "--data-dir",
                 str(folder)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert refused.returncode == 2, refused.stderr
            message = " ".join(refused.stderr.split())
            assert message.startswith("error [fleet_conflict]: another `lepton up`"), message
            assert "another `lepton up`" in message and str(folder.resolve()) in message, message
            assert f"LEPTON_REDIS_URL=redis://127.0.0.1:{redis_port}/0" in message, "how to use the running fleet"
            # the separate fleet it suggests, run as written
            suggested = next(
                line.strip() for line in refused.stderr.splitlines() if line.strip().startswith("lepton up")
            )
            export = next(line for line in refused.stderr.splitlines() if "export LEPTON_REDIS_URL=" in line)
            second = start_up(shlex.split(suggested)[2:], env)
            second_url = export.split("export LEPTON_REDIS_URL=")[1].strip()
            second_folder = Path(shlex.split(suggested)[shlex.split(suggested).index("--data-dir") + 1])
            with redis.Redis.from_url(second_url, decode_responses=True) as second_redis:
                assert Path(second_redis.config_get("dir")["dir"]).resolve() == (second_folder / "redis").resolve()
            second_redis_pid = next(child.pid for child in psutil.Process(second[0].pid).children(recursive=True)
                                    if child.name() == "redis-server")  # fmt: skip
            opened = [Path(f.path) for f in psutil.Process(second_redis_pid).open_files()]
            assert not any(folder.resolve() in path.resolve().parents for path in opened), opened
            assert (second_folder / "logs" / "worker.log").is_file()
            other = LeptonSettings(redis_url=SecretStr(second_url), model_dir=published.path.parent.parent)
            with LeptonClient(other) as second_client:
                assert second_client.submit_bulk(texts[:100], model="tiny").wait(120).state == "succeeded"
            assert job.wait(300).state == "succeeded"
            assert [row["id"] for row in client.results(job.id)] == [str(i) for i in range(len(texts))]
        finally:
            if second is not None:
                stop_up(*second)
            stop_up(first, first_seen)


def test_a_corrupt_model_is_dead_lettered_once_and_replays_under_the_same_id(
    start_worker: Callable[..., WorkerProcess],
    queue_env: dict[str, str],
    queue_settings: LeptonSettings,
    copy_of_published: ModelRegistry,
    redis_client: redis.Redis,
) -> None:
    version = copy_of_published.resolve("tiny")
    damaged = version.path / version.manifest.variants["int8"].file
    original = damaged.read_bytes()
    damaged.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    env = {**queue_env, "LEPTON_MODEL_DIR": str(copy_of_published.root)}
    start_worker(env=env)
    client = LeptonClient(queue_settings.model_copy(update={"model_dir": copy_of_published.root}))
    job = client.classify(["a fine film"], model="tiny")
    with pytest.raises(ModelIntegrityError, match=r"model\.int8\.onnx"):
        job.wait(60)

    runner = CliRunner()
    listed = runner.invoke(cli, ["dlq", "list", "--json"], env=env, catch_exceptions=False)
    (letter,) = [json.loads(line) for line in listed.output.splitlines()]
    assert (letter["id"], letter["code"], letter["attempts"], letter["task"]) == (
        job.id, "corrupt_model", 1, "lepton.classify",
    )  # fmt: skip
    damaged.write_bytes(original)  # the operator fixes the cause, then replays
    replayed = runner.invoke(cli, ["dlq", "replay", "--all"], env=env, catch_exceptions=False)
    assert '"replayed": 1' in replayed.output
    again = ClassifyJob(job.id, AsyncResult(job.id, app=client.celery))
    assert again.wait(60)[0].label in {"problem", "question"}  # the same id now holds the answer
    assert runner.invoke(cli, ["dlq", "list", "--json"], env=env).output.strip() == ""


def test_submit_and_jobs_follow_a_job_from_the_shell(
    start_worker: Callable[..., WorkerProcess], queue_env: dict[str, str], banking: LabelledTexts, tmp_path: Path
) -> None:
    source = tmp_path / "reviews.txt"
    source.write_text("\n".join(banking.texts[:200]) + "\n")
    start_worker()
    runner = CliRunner()
    submitted = runner.invoke(
        cli, ["submit", str(source), "--model", "tiny", "--chunk-size", "50", "--out", str(tmp_path / "out.jsonl")],
        env=queue_env, catch_exceptions=False,
    )  # fmt: skip
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.output.splitlines()[0].strip()
    assert "succeeded: 200/200 texts" in submitted.output
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == [str(i) for i in range(1, 201)]  # line numbers
    status = runner.invoke(cli, ["jobs", "status", job_id], env=queue_env, catch_exceptions=False).output
    assert f"{job_id} succeeded: 200/200 texts" in status
    results = runner.invoke(cli, ["jobs", "results", job_id], env=queue_env, catch_exceptions=False).output
    assert [json.loads(line)["id"] for line in results.splitlines()] == [row["id"] for row in rows]
    for columns in ("80", "200"):  # two lines a job in a narrow terminal, a table in a wide one: no word cut
        listed = runner.invoke(cli, ["jobs", "list"], env={**queue_env, "COLUMNS": columns}, catch_exceptions=False)
        assert job_id in listed.output and "bulk succeeded" in listed.output, listed.output
        assert max(len(line) for line in listed.output.splitlines()) <= int(columns)
    assert "no failed chunk" in runner.invoke(cli, ["jobs", "retry", job_id], env=queue_env).output


def test_the_commands_act_as_the_operator_filter_by_tenant_and_write_the_audit_trail(
    queue_env: dict[str, str], queue_settings: LeptonSettings, copy_of_published: ModelRegistry
) -> None:
    env = {**queue_env, "LEPTON_MODEL_DIR": str(copy_of_published.root), "COLUMNS": "200"}
    with LeptonClient(queue_settings.model_copy(update={"model_dir": copy_of_published.root})) as client:
        alpha = client.submit_bulk(["a", "b"], model="tiny", tenant="alpha").id
        beta = client.submit_bulk(["c"], model="tiny", tenant="beta").id
    runner = CliRunner()

    def run(*args: str) -> str:
        done = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        assert done.exit_code == 0, done.output
        return done.output

    everyone = run("jobs", "list")
    assert alpha in everyone and beta in everyone, "the command line is the operator: every tenant's jobs"
    only_alpha = run("jobs", "list", "--tenant", "alpha")
    assert alpha in only_alpha and beta not in only_alpha
    assert "beta" in run("jobs", "cancel", beta)
    assert "private" in run("models", "share", "tiny", "--private")
    assert "default" in run("models", "list", "--tenant", "default") and "tiny" in run("models", "list")
    assert "tiny" not in run("models", "list", "--tenant", "alpha")
    trail = [json.loads(line) for line in run("audit", "--json").splitlines()]
    assert [(e["action"], e["target"], e["tenant"], e["token"]) for e in trail] == [
        ("share", "tiny", "default", "cli"), ("cancel", beta, "default", "cli")
    ]  # fmt: skip
    assert run("audit", "--tenant", "alpha", "--json") == ""


def test_lepton_train_runs_here_with_a_progress_bar_and_publishes_the_best_epoch(
    tiny_base: Path, banking: LabelledTexts, tmp_path: Path
) -> None:
    data = tmp_path / "reviews.csv"
    with data.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["review", "sentiment"])
        writer.writerows(zip(banking.texts[:800], (banking.labels or [])[:800], strict=True))
    env = {"LEPTON_MODEL_DIR": str(tmp_path / "models"), "LEPTON_CHECKPOINT_DIR": str(tmp_path / "checkpoints")}

    done = CliRunner().invoke(
        cli, ["train", str(data), "--name", "reviews", "--base", str(tiny_base), "--text-field", "review",
              "--label-field", "sentiment", "--epochs", "2", "--lr", "3e-3", "--max-length", "64"],
        env=env, catch_exceptions=False,
    )  # fmt: skip

    assert done.exit_code == 0, done.output
    assert "published reviews@1 (fp32, int8)" in done.output
    assert "promoted to production" in done.output
    version = ModelRegistry(tmp_path / "models").resolve("reviews@production")
    metrics = version.manifest.metrics
    assert metrics["best_epoch"] in {1, 2} and len(metrics["epochs"]) == 2
    assert metrics["validation_accuracy"] == max(epoch["validation_accuracy"] for epoch in metrics["epochs"])
    assert (Path(version.manifest.source["checkpoint"]) / "training_curve.png").is_file()


def test_lepton_train_runs_an_entity_model_here_on_the_path_a_training_worker_takes(
    tiny_base: Path, tmp_path: Path
) -> None:
    from tests.lepton_runtime.training.test_entities import write_synthetic

    files = {
        name: write_synthetic(tmp_path / f"{name}.jsonl", count, seed)
        for name, count, seed in (("train", 200, 1), ("validation", 40, 2))
    }
    env = {"LEPTON_MODEL_DIR": str(tmp_path / "models"), "LEPTON_CHECKPOINT_DIR": str(tmp_path / "checkpoints")}
    arguments = ["train", str(files["train"]), "--task", "token-classification", "--name", "ner", "--base",
                 str(tiny_base), "--epochs", "2", "--lr", "3e-3", "--max-length", "64"]  # fmt: skip

    refused = CliRunner().invoke(cli, arguments, env=env)  # no --validation: the entity spec says what it needs
    assert isinstance(refused.exception, InvalidInputError) and "--validation FILE" in str(refused.exception)
    done = CliRunner().invoke(cli, [*arguments, "--validation", str(files["validation"])], env=env,
                              catch_exceptions=False)  # fmt: skip

    assert done.exit_code == 0, done.output
    assert "published ner@1: validation entity F1" in done.output and "promoted to production" in done.output
    version = ModelRegistry(tmp_path / "models").resolve("ner@production")
    assert version.manifest.task == "token-classification" and version.manifest.metrics["best_epoch"] in {1, 2}


def test_a_cuda_worker_without_cuda_refuses_to_start(queue_env: dict[str, str]) -> None:
    pytest.importorskip("onnxruntime")
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    done = subprocess.run(
        [sys.executable, "-m", "lepton_runtime", "worker", "--device", "cuda"],
        cwd=REPO_ROOT, env={**os.environ, **queue_env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "provider_unavailable" in done.stderr and "available execution providers" in done.stderr


def test_classify_answers_a_few_texts_through_the_interactive_lane(
    start_worker: Callable[..., WorkerProcess], queue_env: dict[str, str]
) -> None:
    start_worker()
    runner = CliRunner()
    done = runner.invoke(
        cli, ["classify", "where is my new card?", "", "--model", "tiny", "--tenant", "shell"], env=queue_env
    )
    assert done.exit_code == 0, done.output
    card, empty = (json.loads(line) for line in done.stdout.splitlines())
    assert card["text"] == "where is my new card?" and card["label"] in {"problem", "question"}
    assert empty["error"]["code"] == "invalid_input", "a bad text fails only its item"


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["predict", "nope", "a text"], "unknown_model"),
        (["classify", "a text", "--model", "nope"], "unknown_model"),
        (["embed", "a text", "--model", "nope"], "unknown_model"),
        (["submit", "TEXTS", "--model", "nope"], "unknown_model"),
        (["classify", "x", "--model", "tiny", "--tenant", "bad tenant"], "invalid_input"),
        (["jobs", "status", "0123456789abcdef0123456789abcdef"], "unknown_job"),
    ],
)
def test_an_error_of_the_tree_is_one_line_with_its_code_and_exit_2_whatever_the_command(
    command: list[str], code: str, queue_env: dict[str, str], tmp_path: Path
) -> None:
    texts = tmp_path / "texts.txt"
    texts.write_text("a text\n")
    arguments = [str(texts) if argument == "TEXTS" else argument for argument in command]
    done = subprocess.run(
        [sys.executable, "-m", "lepton_runtime", *arguments],
        cwd=REPO_ROOT, env={**os.environ, **queue_env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error [{code}]: "), line
    if code == "unknown_model":
        assert "LEPTON_MODEL_DIR" in line and queue_env["LEPTON_MODEL_DIR"] in line, "where it looked, absolute"
