"""Secure defaults: Redis behind a password that travels only in the URL, a clear refusal of a wrong or missing
one, and secrets (the Redis password, API tokens) in no log, no command line and no Redis value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from pydantic import SecretStr

from lepton_runtime.errors import BrokerUnavailableError
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelVersion
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import REPO_ROOT, TEST_LIMITS, WORKER_READY_TIMEOUT_S, RunningApi, free_port
from tests.reliability.conftest import Figures
from workers.embedded import LocalRedis
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow


def every_value(client: redis.Redis) -> Iterator[str]:
    """Every stored value of every key, as text."""
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "string":
            yield str(client.get(key))
        elif kind == "hash":
            yield json.dumps(client.hgetall(key))
        elif kind == "list":
            yield json.dumps(client.lrange(key, 0, -1))
        elif kind == "set":
            yield json.dumps(sorted(client.smembers(key)))
        elif kind == "zset":
            yield json.dumps(client.zrange(key, 0, -1))
        yield str(key)


def test_secrets_stay_secret_and_a_wrong_redis_password_is_refused_clearly(
    published: ModelVersion, banking: LabelledTexts, tmp_path: Path, figures: Figures
) -> None:
    password, token = f"redis-{uuid.uuid4().hex}", f"api-{uuid.uuid4().hex}"
    server = LocalRedis(free_port(), tmp_path / "redis", password=password)
    url = server.start()
    models = published.path.parent.parent
    env = {**os.environ, **TEST_LIMITS, "LEPTON_REDIS_URL": url, "LEPTON_MODEL_DIR": str(models),
           "LEPTON_API_TOKENS": json.dumps([token])}  # fmt: skip
    worker = WorkerProcess(env, tmp_path / "worker.log", arguments=["--threads", "1", "--warm", "tiny@production"],
                           cwd=REPO_ROOT)  # fmt: skip
    api = None
    try:
        worker.wait_ready(WORKER_READY_TIMEOUT_S)
        api = RunningApi(env, tmp_path / "api.log", [])
        answer = api.http.post("/v1/classify", json={"texts": ["a fine film"], "model": "tiny"},
                               headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert answer.status_code == 200, answer.text
        settings = LeptonSettings(redis_url=SecretStr(url), model_dir=models)
        with LeptonClient(settings) as client:
            assert client.submit_bulk(banking.texts[:500], model="tiny", chunk_size=100).wait(120).state == "succeeded"
            assert password not in repr(client.settings) and password not in str(client.settings.redis_url)

        for wrong in (url.replace(password, "not-the-password"), url.replace(f":{password}@", "")):
            with (
                LeptonClient(LeptonSettings(redis_url=SecretStr(wrong), model_dir=models)) as client,
                pytest.raises(BrokerUnavailableError, match=r"password|authentication|NOAUTH") as refused,
            ):
                client.status("any-job")
            assert password not in str(refused.value) and "not-the-password" not in str(refused.value)

        processes = [
            psutil.Process(server.process.pid),
            psutil.Process(worker.process.pid),
            psutil.Process(api.process.pid),
        ]
        processes += psutil.Process(worker.process.pid).children(recursive=True)
        for process in processes:
            command = " ".join(process.cmdline())
            assert password not in command and token not in command, command
        logs = worker.log_path.read_text() + api.log.read_text()
        assert logs and password not in logs and token not in logs
        with redis.Redis.from_url(url, decode_responses=True) as store:
            leaked = [value[:200] for value in every_value(store) if password in value or token in value]
        assert not leaked, leaked
        section = "Security"
        figures.add(section, "Redis with requirepass; wrong or missing password", "refused, not echoed")
        figures.add(section, "password or API token in command lines, logs, Redis values", f"0 of {len(processes)} "
                    f"processes, {len(logs):,} log characters, every Redis key and value")  # fmt: skip
    finally:
        if api is not None:
            api.stop()
        worker.stop()
        server.stop()


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["flower", "--address", "0.0.0.0"], "LEPTON_FLOWER_BASIC_AUTH"),
        (["api", "--host", "0.0.0.0", "--allow-anonymous"], "LEPTON_API_TOKENS"),
        (["worker", "--metrics-port", "0", "--metrics-address", "0.0.0.0"], "LEPTON_API_TOKENS"),
    ],
)
def test_nothing_is_served_beyond_loopback_without_credentials(
    command: list[str], expected: str, figures: Figures
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEPTON_")}
    done = subprocess.run(
        [sys.executable, "-m", "lepton_runtime", *command],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert expected in done.stderr
    figures.add("Security", f"`lepton {' '.join(command)}` without credentials", f"refused (exit 2, names {expected})")
