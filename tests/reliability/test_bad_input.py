"""The bad-input corpus (bad_inputs.json and the cases below) through a real API, worker and Redis: each input
gets a clear error with a stable code, no worker process dies, and a job running meanwhile is unaffected."""

from __future__ import annotations

import base64
import json
import os
import pickle
import select
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from lepton_runtime.constants import REDIS_KEY_PREFIX
from lepton_runtime.errors import BrokerFullError
from lepton_runtime.jobs.keys import JOB_INDEX_KEY, queue_lists
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelRegistry, ModelVersion
from lepton_runtime.settings import LeptonSettings
from producer import LeptonClient
from tests.queue_fixtures import RunningApi
from tests.reliability.conftest import Figures
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow

CORPUS = json.loads((Path(__file__).with_name("bad_inputs.json")).read_text(encoding="utf-8"))
TOKEN = "reliability-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def expand(value: Any) -> Any:
    """The corpus spells huge inputs as {"repeat": s, "times": n} (one long string, after an optional "prefix") or
    {"repeat-list": ...}."""
    if isinstance(value, dict) and "repeat" in value:
        return value.get("prefix", "") + value["repeat"] * value["times"]
    if isinstance(value, list):
        expanded: list[Any] = []
        for item in value:
            if isinstance(item, dict) and "repeat-list" in item:
                expanded += [item["repeat-list"]] * item["times"]
            else:
                expanded.append(expand(item))
        return expanded
    if isinstance(value, dict):
        return {key: expand(item) for key, item in value.items()}
    return value


class Fleet:
    """One API and one two-process worker over a private copy of the registry, and a healthy job running."""

    def __init__(
        self, api: RunningApi, worker: WorkerProcess, client: LeptonClient, healthy_job_id: str, env: dict[str, str]
    ) -> None:
        self.api, self.worker, self.client, self.healthy_job_id = api, worker, client, healthy_job_id
        self.env = env  # the LEPTON_* settings of the worker, the API and the CLI
        self.pool_pids = sorted(child.pid for child in psutil.Process(worker.process.pid).children())


@pytest.fixture
def fleet(
    start_worker: Callable[..., WorkerProcess],
    queue_env: dict[str, str],
    queue_settings: LeptonSettings,
    copy_of_published: ModelRegistry,
    tiny_checkpoint: Path,
    banking: LabelledTexts,
    tmp_path: Path,
) -> Iterator[Fleet]:
    from export.publish import export_checkpoint

    for name in ("truncated", "badsum"):  # two more models, damaged below
        export_checkpoint(tiny_checkpoint, copy_of_published, name, variants=["fp32"])
    truncated = copy_of_published.resolve("truncated").path / "model.onnx"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    manifest_path = copy_of_published.resolve("badsum").path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["model.onnx"]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))

    env = {**queue_env, "LEPTON_MODEL_DIR": str(copy_of_published.root)}
    worker = start_worker(concurrency=2, env=env)
    api = RunningApi({**os.environ, **env, "LEPTON_API_TOKENS": json.dumps([TOKEN])}, tmp_path / "api.log", [])
    settings = queue_settings.model_copy(update={"model_dir": copy_of_published.root})
    with LeptonClient(settings) as client:
        healthy = client.submit_bulk(banking.texts, model="tiny", chunk_size=64)
        yield Fleet(api, worker, client, healthy.id, env)
    api.stop()


def test_the_corpus_gets_clear_errors_no_worker_dies_and_other_work_finishes(
    fleet: Fleet, tmp_path: Path, figures: Figures
) -> None:
    answered: list[tuple[str, str]] = []  # (case, how it was answered)
    for case in CORPUS:
        if "raw" in case:
            headers = {**AUTH, "Content-Type": "application/json"}
            answer = fleet.api.http.post("/v1/classify", content=case["raw"].encode(), headers=headers)
        else:
            answer = fleet.api.http.post("/v1/classify", json=expand(case["body"]), headers=AUTH)
        assert answer.status_code == case["status"], (case["name"], answer.text[:500])
        body = answer.json()
        if "item_code" in case:
            (item,) = body["predictions"]
            assert item["error"]["code"] == case["item_code"] and item["error"]["message"], case["name"]
            how = f"{answer.status_code}, item error `{item['error']['code']}`"
        elif case.get("answered"):  # odd but valid text: classified like any other
            (item,) = body["predictions"]
            assert item["label"] and not item.get("error"), (case["name"], item)
            how = f"{answer.status_code}, classified"
        else:
            error = body["error"]
            assert error["code"] == case["code"] and len(error["message"]) > 20, (case["name"], error)
            if "field" in case:
                assert case["field"] in [issue["field"] for issue in error["issues"]], (case["name"], error)
            how = f"{answer.status_code} `{error['code']}`" + (f" naming `{case['field']}`" if "field" in case else "")
        answered.append((case["name"], how))

    # files: every problem named with its line, nothing half-submitted
    for name, content, expected in [
        ("invalid UTF-8", b'{"text": "fine"}\n{"text": "caf\xe9"}\n', "UTF-8"),
        ("a line that is not JSON", b'{"text": "fine"}\n{"text": \n', "line 2"),
        ("a line without the text field", b'{"text": "fine"}\n{"body": "x"}\n', "text"),
        ("an empty file", b"", "input.jsonl: no texts"),
    ]:
        answer = fleet.api.http.post(
            "/v1/jobs", files={"file": ("input.jsonl", content)}, data={"model": "tiny"}, headers=AUTH
        )
        assert answer.status_code == 422, (name, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid_input" and expected in error["message"], (name, error)
        assert "lepton-upload" not in error["message"], "the client's file name, not the server's temporary path"
        answered.append((f"file: {name}", f"422 `invalid_input` naming {expected!r}"))

    # one line of 50 MB in an upload under the body limit: refused naming the line, not read whole
    huge_line = b'{"text": "fine"}\n{"text": "' + b"x" * 50_000_000 + b'"}\n'
    answer = fleet.api.http.post(
        "/v1/jobs", files={"file": ("input.jsonl", huge_line)}, data={"model": "tiny"}, headers=AUTH
    )
    assert answer.status_code == 413 and "line 2 is over the limit" in answer.json()["error"]["message"], answer.text
    answered.append(("file: a JSONL line of 50 MB", "413 `too_large` naming line 2"))

    # damaged models: refused by their checksums before ONNX Runtime reads a byte
    for model, damage in [("truncated", "a truncated ONNX file"), ("badsum", "a manifest whose checksum differs")]:
        answer = fleet.api.http.post("/v1/classify", json={"texts": ["fine"], "model": model}, headers=AUTH)
        assert answer.json()["error"]["code"] == "corrupt_model", (damage, answer.text)
        assert "sha256" in answer.json()["error"]["message"]
        answered.append((damage, f"{answer.status_code} `corrupt_model` naming the sha256"))

    assert len(answered) >= 47
    assert fleet.client.wait(fleet.healthy_job_id, 180).state == "succeeded", "other work is unaffected"
    assert fleet.worker.process.poll() is None
    pool = sorted(child.pid for child in psutil.Process(fleet.worker.process.pid).children())
    assert pool == fleet.pool_pids, "no pool process died or was replaced"
    for case, how in answered:
        figures.add("Bad input", case.replace("|", "/"), how)
    figures.add("Bad input", "**cases tried; workers died; other job**", f"{len(answered)}; none; succeeded")


class _Explodes:
    """What an attacker would send: unpickling it runs a command (here: creates a file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_message_sent_straight_to_the_queue_is_refused_unread(
    fleet: Fleet, redis_client: redis.Redis, tmp_path: Path, figures: Figures
) -> None:
    marker = tmp_path / "pickle-ran"
    task_id = uuid.uuid4().hex
    message = {
        "body": base64.b64encode(pickle.dumps(((_Explodes(marker),), {}, {}))).decode(),
        "content-encoding": "binary",
        "content-type": "application/x-python-serialize",
        "headers": {"lang": "py", "task": "lepton.classify", "id": task_id, "root_id": task_id},
        "properties": {
            "correlation_id": task_id,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": "lepton.inference"},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": uuid.uuid4().hex,
        },
    }
    queue = queue_lists("lepton.inference")[0]
    redis_client.lpush(queue, json.dumps(message))
    # the worker takes it off the queue and refuses it; a request sent after it is answered
    answer = fleet.api.http.post("/v1/classify", json={"texts": ["a fine film"], "model": "tiny"}, headers=AUTH)
    assert answer.status_code == 200 and answer.json()["predictions"][0]["label"]
    # the answer came through the interactive lane: the queue's consumer takes the pickle in its own time
    deadline = time.monotonic() + 30
    while (
        redis_client.llen(queue) or "ContentDisallowed" not in fleet.worker.log_path.read_text()
    ) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert redis_client.llen(queue) == 0
    assert not marker.exists(), "the pickle must never be loaded"
    assert fleet.worker.process.poll() is None
    assert "ContentDisallowed" in fleet.worker.log_path.read_text(), fleet.worker.log_tail()
    figures.add("Bad input", "pickle message pushed straight onto the queue", "refused unread (ContentDisallowed)")
    shutil.rmtree(tmp_path / "unused", ignore_errors=True)


def test_model_and_data_paths_cannot_escape_their_roots(
    fleet: Fleet, published: ModelVersion, figures: Figures
) -> None:
    escapes = ["../tiny", "tiny/../../x", "..", "tiny@../1", "C:\\windows", "~root"]
    for reference in escapes:
        answer = fleet.api.http.post("/v1/classify", json={"texts": ["fine"], "model": reference}, headers=AUTH)
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_reference", reference
    promoted = fleet.api.http.post("/v1/models/..%2F..%2Fetc/promote", json={"version": 1}, headers=AUTH)
    assert promoted.status_code in {404, 422}, promoted.text
    figures.add("Bad input", "model references escaping the registry", f"{len(escapes)}, each 422 `invalid_reference`")


def test_a_text_with_a_lone_surrogate_fails_only_its_item_wherever_it_enters(
    fleet: Fleet, redis_client: redis.Redis, tmp_path: Path, figures: Figures
) -> None:
    """JSON may spell a lone surrogate, UTF-8 cannot encode it: an item error naming the text, the good text
    beside it answered, on every way in; an id or a model name holding one is refused naming the field."""
    broken = "\ud800 broken"
    raw = json.dumps({"texts": [broken, "a fine film"], "model": "tiny"}).encode()  # ASCII: "\\ud800" escaped

    def assert_item_error_then_label(predictions: list[Any], name: str) -> None:
        bad, good = (item.as_dict() if hasattr(item, "as_dict") else item for item in predictions)  # the client's
        assert bad["error"]["code"] == "invalid_input" and "lone surrogate" in bad["error"]["message"], (name, bad)
        assert good.get("label") and not good.get("error"), (name, good)

    answer = fleet.api.http.post("/v1/classify", content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert "texts[0]" in answer.json()["predictions"][0]["error"]["message"]
    assert_item_error_then_label(answer.json()["predictions"], "POST /v1/classify")

    assert_item_error_then_label(fleet.client.classify([broken, "a fine film"], model="tiny").wait(60), "client")
    many = [broken, "a fine film"] * 40  # over the interactive lane's size: a lepton.classify task
    predictions = fleet.client.classify(many, model="tiny").wait(60)
    assert_item_error_then_label(predictions[:2], "client, bulk lane")

    # bulk: JSON texts, an uploaded file, the CLI on a file; the row of that text is an error, the others labels
    bulk = fleet.api.http.post("/v1/jobs", content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert bulk.status_code == 201, bulk.text
    lines = b'{"id": "a", "text": "\\ud800 broken"}\n{"id": "b", "text": "a fine film"}\n'
    upload = fleet.api.http.post(
        "/v1/jobs", files={"file": ("input.jsonl", lines)}, data={"model": "tiny"}, headers=AUTH
    )
    assert upload.status_code == 201, upload.text
    for job_id in (bulk.json()["job_id"], upload.json()["job_id"]):
        assert fleet.client.wait(job_id, 60).state == "succeeded"
        rows = list(fleet.client.results(job_id))
        assert_item_error_then_label(rows, f"bulk job {job_id}")
    source, out = tmp_path / "input.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(lines)
    ran = subprocess.run(
        [sys.executable, "-m", "lepton_runtime", "submit", str(source), "--model", "tiny", "--out", str(out)],
        env={**os.environ, **fleet.env}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert_item_error_then_label([json.loads(line) for line in out.read_text().splitlines()], "lepton submit")

    # an id or a model name cannot be an item error: refused, naming the field, nothing queued
    bad_id = b'{"id": "\\udfff", "text": "fine"}\n'
    refused = fleet.api.http.post(
        "/v1/jobs", files={"file": ("input.jsonl", bad_id)}, data={"model": "tiny"}, headers=AUTH
    )
    assert refused.status_code == 422 and "input.jsonl:1.id" in refused.text, refused.text
    bad_model = json.dumps({"texts": ["fine"], "model": "tiny\ud800"}).encode()
    refused = fleet.api.http.post(
        "/v1/classify", content=bad_model, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert refused.status_code == 422 and refused.json()["error"]["issues"][0]["field"] == "model", refused.text

    assert fleet.worker.process.poll() is None
    assert sorted(child.pid for child in psutil.Process(fleet.worker.process.pid).children()) == fleet.pool_pids
    figures.add(
        "Bad input", "a lone surrogate (valid JSON, not UTF-8) in a text, 7 ways in", "item error `invalid_input`"
    )


def _celery_message(task: str, body: Any, *, headers: dict[str, Any] | None = None, raw_body: str | None = None) -> str:
    """A Celery protocol-2 message as kombu's Redis transport stores it, or one broken on purpose."""
    task_id = uuid.uuid4().hex
    encoded = raw_body if raw_body is not None else base64.b64encode(json.dumps(body).encode()).decode()
    return json.dumps({
        "body": encoded, "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"lang": "py", "task": task, "id": task_id, "root_id": task_id} if headers is None else headers,
        "properties": {
            "correlation_id": task_id, "delivery_mode": 2, "priority": 0, "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": "lepton.inference"}, "delivery_tag": uuid.uuid4().hex,
        },
    })  # fmt: skip


def test_malformed_celery_messages_pushed_into_the_queue_kill_no_worker(
    fleet: Fleet, redis_client: redis.Redis, figures: Figures
) -> None:
    """What a buggy or hostile producer could push straight into the inference queue: each is refused or fails
    alone; the worker's processes stay, and a request sent after them is answered."""
    messages = {
        "an unknown task name": _celery_message("lepton.nope", [[], {}, {}]),
        "no task header": _celery_message("lepton.classify", [[], {}, {}], headers={}),
        "classify with a number for its texts": _celery_message("lepton.classify", [[42, "tiny", None], {}, {}]),
        "classify with too many arguments": _celery_message("lepton.classify", [[["a"], "tiny", None, 1, 2], {}, {}]),
        "a chunk of a job that does not exist": _celery_message("lepton.bulk.chunk", [["no-such-job", 0], {}, {}]),
        "a chunk index that is a string": _celery_message("lepton.bulk.chunk", [[fleet.healthy_job_id, "x"], {}, {}]),
        "a body that is not JSON": _celery_message(
            "lepton.classify", None, raw_body=base64.b64encode(b"{nope").decode()
        ),
        "a body that is not base64": _celery_message("lepton.classify", None, raw_body="%%%"),
        "a 10 MB body": _celery_message("lepton.classify", [[["x" * 10_000_000], "tiny", None], {}, {}]),
        "a chunk of another tenant's job, sent again": _celery_message(
            "lepton.bulk.chunk", [[fleet.healthy_job_id, 0], {}, {}]
        ),
        "a chunk index past that job's last chunk": _celery_message(
            "lepton.bulk.chunk", [[fleet.healthy_job_id, 10_000], {}, {}]
        ),
    }
    queue = queue_lists("lepton.inference")[0]
    for message in messages.values():
        redis_client.lpush(queue, message)
    # a request in the same queue, behind them (more texts than the interactive lane takes): answered after them
    after = fleet.client.classify(["a fine film"] * 80, model="tiny").wait(120)
    assert len(after) == 80 and after[0].label
    assert redis_client.llen(queue) == 0, "every message was taken off the queue"
    healthy = fleet.client.wait(fleet.healthy_job_id, 180)
    assert healthy.state == "succeeded", "other work is unaffected"
    ids = [row["id"] for row in fleet.client.results(fleet.healthy_job_id)]
    assert ids == [str(i) for i in range(healthy.total_texts)], "its chunk sent again by another changed nothing"
    assert fleet.worker.process.poll() is None
    assert sorted(child.pid for child in psutil.Process(fleet.worker.process.pid).children()) == fleet.pool_pids
    for name in messages:
        figures.add(
            "Bad input", f"Celery message pushed into the queue: {name}", "refused or failed alone; no process died"
        )


def _post_chunked_until_answered(port: int, path: str, total_bytes: int, block_bytes: int = 1 << 20) -> tuple[str, int]:
    """POST ``total_bytes`` of one multipart file field, chunked (no Content-Length), block by block, until the
    server answers; return its status line and the bytes sent by then."""
    boundary = "lepton-hostile"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.txt"\r\n\r\n'.encode()
    block = b"a fine film\n" * (block_bytes // 12)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall(head + f"{len(part):x}\r\n".encode() + part + b"\r\n")
        while sent < total_bytes:
            if select.select([connection], [], [], 0)[0]:
                break  # the server has answered
            try:
                connection.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(block)
        answer = _read_answer(connection)
    return answer.split("\r\n", 1)[0], sent


def _read_answer(connection: socket.socket) -> str:
    """One HTTP answer from a raw socket: its head, then as many body bytes as its Content-Length says."""
    received = b""
    while b"\r\n\r\n" not in received and (block := connection.recv(65536)):
        received += block
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    while len(body) < length and (block := connection.recv(65536)):
        body += block
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


def test_huge_and_slow_uploads_are_cut_off_early_and_block_no_one(fleet: Fleet, figures: Figures) -> None:
    limit = LeptonSettings().api_max_body_bytes
    # a 1 GB file declared: answered before a byte of it is read
    with socket.create_connection(("127.0.0.1", fleet.api.port), timeout=30) as connection:
        connection.sendall(
            f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {1 << 30}\r\n\r\n".encode()
        )
        declared = _read_answer(connection)
    assert declared.startswith("HTTP/1.1 413") and '"too_large"' in declared, declared[:300]
    # a 1 GB file sent chunked, with no length: cut off once past the limit, long before its end
    status, sent = _post_chunked_until_answered(fleet.api.port, "/v1/jobs", 1 << 30)
    assert status == "HTTP/1.1 413 Request Entity Too Large", status
    assert sent < limit + (16 << 20), f"{sent:,} bytes were taken before the refusal (limit {limit:,})"
    # slow-loris: 64 connections trickle their headers, 8 trickle a body; a request beside them is answered
    trickling = []
    try:
        for index in range(72):
            connection = socket.create_connection(("127.0.0.1", fleet.api.port), timeout=10)
            connection.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            if index >= 64:
                connection.sendall(f"Authorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n{{".encode())
            trickling.append(connection)
        for connection in trickling:
            connection.sendall(b"X")  # one more byte each: still not a whole request
        started = time.monotonic()
        answer = fleet.api.http.post("/v1/classify", json={"texts": ["a fine film"], "model": "tiny"}, headers=AUTH)
        answered_s = time.monotonic() - started
    finally:
        for connection in trickling:
            connection.close()
    assert answer.status_code == 200 and answer.json()["predictions"][0]["label"], answer.text
    assert answered_s < 10, f"a request beside 72 slow connections took {answered_s:.1f} s"
    assert fleet.api.process.poll() is None
    figures.add("Bad input", "upload declaring 1 GB (Content-Length)", "413 `too_large` before the body is read")
    figures.add("Bad input", "1 GB upload sent chunked, no length", f"413 `too_large` after {sent / 2**20:.0f} MiB")
    figures.add(
        "Bad input", "slow-loris: 64 trickled headers + 8 trickled bodies", f"a request beside them: {answered_s:.2f} s"
    )


def test_a_full_redis_refuses_submissions_whole_and_work_resumes_when_memory_frees(
    fleet: Fleet, redis_client: redis.Redis, banking: LabelledTexts, figures: Figures
) -> None:
    assert fleet.client.wait(fleet.healthy_job_id, 180).state == "succeeded"
    texts = (banking.texts * 40)[:40_000]
    jobs_before = redis_client.zcard(JOB_INDEX_KEY)
    keys_before = set(redis_client.scan_iter(f"{REDIS_KEY_PREFIX}job:*", count=1000))
    used = int(redis_client.info("memory")["used_memory"])
    # 1 MiB of room: a job of 8,000 chunks needs more (its bookkeeping: about 250 bytes a chunk)
    redis_client.config_set("maxmemory", used + (1 << 20))
    inline_inputs = fleet.client.data.tenant_root("default") + "/inputs"
    files_before = set(os.listdir(inline_inputs)) if os.path.isdir(inline_inputs) else set()
    try:
        with pytest.raises(BrokerFullError, match="maxmemory") as refused:
            fleet.client.submit_bulk(texts, model="tiny", chunk_size=5)
        body = {"texts": texts, "model": "tiny", "chunk_size": 5}
        answer = fleet.api.http.post("/v1/jobs", json=body, headers=AUTH)
        assert answer.status_code == 507 and answer.json()["error"]["code"] == "broker_full", answer.text[:300]
        assert redis_client.zcard(JOB_INDEX_KEY) == jobs_before, "no job was handed out"
        keys_after = set(redis_client.scan_iter(f"{REDIS_KEY_PREFIX}job:*", count=1000))
        assert keys_after == keys_before, "nothing half-written"
        files_after = set(os.listdir(inline_inputs)) if os.path.isdir(inline_inputs) else set()
        assert not files_after - files_before, "the texts written to the data store for it were removed"
    finally:
        redis_client.config_set("maxmemory", 0)
    job = fleet.client.submit_bulk(texts, model="tiny", chunk_size=500)  # the same submission, memory freed
    assert job.wait(300).state == "succeeded"
    assert [row["id"] for row in fleet.client.results(job.id)] == [str(i) for i in range(len(texts))]
    assert fleet.worker.process.poll() is None
    figures.add(
        "Bad input",
        "Redis at maxmemory (noeviction): a 40,000-text submission",
        f"client `{refused.value.code}`, API 507 `broker_full`; nothing half-written; accepted once memory freed",
    )
