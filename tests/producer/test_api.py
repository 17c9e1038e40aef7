"""The HTTP API as a service sees it: a real `lepton api` process, real workers and Redis, over HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelRegistry
from lepton_runtime.settings import LeptonSettings
from lepton_runtime.tasks import SPECS
from producer import LeptonClient
from tests.queue_fixtures import REPO_ROOT, RunningApi, free_port
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
API_LIMITS = {
    "LEPTON_MAX_ITEMS": "50",
    "LEPTON_API_MAX_BODY_BYTES": "200000",
    "LEPTON_API_MAX_QUEUE_DEPTH": "5",
}
# what the run with every check knows that the document cannot say (why, in the file)
SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")
# the longest wait a request may ask; the 202 and fuzz tests need no longer
FUZZ_ENV = {"LEPTON_API_MAX_WAIT_S": "1"}


@pytest.fixture
def api(queue_env: dict[str, str], tmp_path: Path) -> Iterator[RunningApi]:
    env = {**os.environ, **queue_env, **API_LIMITS, "LEPTON_API_TOKENS": json.dumps([TOKEN])}
    running = RunningApi(env, tmp_path / "api.log", [])
    yield running
    running.stop()


@pytest.fixture
def client(queue_settings: LeptonSettings) -> Iterator[LeptonClient]:
    with LeptonClient(queue_settings) as lepton:
        yield lepton


def test_every_route_but_health_refuses_a_missing_or_wrong_token(api: RunningApi) -> None:
    assert api.http.get("/healthz").json()["status"] == "ok"
    for method, path in [("GET", "/v1/models"), ("POST", "/v1/classify"), ("GET", "/v1/jobs/x"), ("GET", "/metrics")]:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            answer = api.http.request(method, path, headers=headers, json={"texts": ["x"], "model": "tiny"})
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "unauthorized"
            assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_classify_answers_with_predictions_and_provenance_and_is_idempotent(
    api: RunningApi, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker()
    body = {"texts": ["a gorgeous, moving film", ""], "model": "tiny"}
    answer = api.http.post("/v1/classify", json=body, headers={**AUTH, "Idempotency-Key": "k1"})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["state"] == "succeeded" and result["model"]["model"] == "tiny"
    first, empty = result["predictions"]
    assert first["label"] in {"problem", "question"} and first["score"] == max(first["scores"].values())
    assert empty["error"]["code"] == "invalid_input", "an empty text is refused alone; the others are answered"
    again = api.http.post("/v1/classify", json=body, headers={**AUTH, "Idempotency-Key": "k1"}).json()
    assert again["job_id"] == result["job_id"]
    polled = api.http.get(f"/v1/classify/{result['job_id']}", headers=AUTH).json()
    assert polled["predictions"] == result["predictions"]


def test_classify_without_a_worker_answers_202_then_the_result_once_one_runs(
    api: RunningApi, start_worker: Callable[..., WorkerProcess]
) -> None:
    answer = api.http.post("/v1/classify", json={"texts": ["dull"], "model": "tiny", "wait_s": 0.2}, headers=AUTH)
    assert answer.status_code == 202, answer.text
    pending = answer.json()
    assert pending["state"] == "queued" and pending["predictions"] is None
    start_worker()
    done = api.http.get(pending["status_url"], params={"wait_s": 30}, headers=AUTH)
    assert done.status_code == 200 and done.json()["predictions"][0]["label"] in {"problem", "question"}


def test_a_bulk_job_runs_and_streams_the_same_rows_as_the_client(
    api: RunningApi, start_worker: Callable[..., WorkerProcess], client: LeptonClient, banking: LabelledTexts
) -> None:
    start_worker()
    body = {"texts": banking.texts[:300], "model": "tiny@production", "chunk_size": 64}
    submitted = api.http.post("/v1/jobs", json=body, headers={**AUTH, "Idempotency-Key": "bulk-1"})
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["job_id"]
    again = api.http.post("/v1/jobs", json=body, headers={**AUTH, "Idempotency-Key": "bulk-1"})
    assert again.status_code == 200 and again.json() == {**submitted.json(), "created": False}
    assert client.wait(job_id, 120).state == "succeeded"
    status = api.http.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
    assert status["state"] == "succeeded" and status["done_texts"] == 300 and status["total_chunks"] == 5
    with api.http.stream("GET", f"/v1/jobs/{job_id}/results", headers=AUTH) as streamed:
        assert streamed.headers["content-type"].startswith("application/x-ndjson")
        rows = [json.loads(line) for line in streamed.iter_lines() if line]
    assert rows == list(client.results(job_id))
    assert [row["id"] for row in rows] == [str(i) for i in range(300)]
    retried = api.http.post(f"/v1/jobs/{job_id}/retry", headers=AUTH).json()
    assert retried == {"job_id": job_id, "chunks": []}, "nothing failed, so nothing runs again"

    # a JSON body carries its own ids; a count that does not match is refused naming the field
    with_ids = {"texts": banking.texts[:3], "ids": ["q-1", "q-2", "q-3"], "model": "tiny"}
    named = api.http.post("/v1/jobs", json=with_ids, headers=AUTH).json()["job_id"]
    assert client.wait(named, 120).state == "succeeded"
    assert [row["id"] for row in client.results(named)] == ["q-1", "q-2", "q-3"]
    short = api.http.post("/v1/jobs", json={**with_ids, "ids": ["q-1"]}, headers=AUTH)
    assert short.status_code == 422 and "ids" in short.json()["error"]["message"], short.text


def test_an_uploaded_file_becomes_a_bulk_job(
    api: RunningApi, start_worker: Callable[..., WorkerProcess], client: LeptonClient, tmp_path: Path
) -> None:
    start_worker()
    source = tmp_path / "reviews.csv"
    source.write_text('review_id,review\nr1,great film\nr2,"dull, slow"\nr3,loved it\n', encoding="utf-8")
    with source.open("rb") as handle:
        answer = api.http.post(
            "/v1/jobs",
            files={"file": ("reviews.csv", handle, "text/csv")},
            data={"model": "tiny", "text_field": "review", "id_field": "review_id"},
            headers=AUTH,
        )
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["job_id"]
    assert client.wait(job_id, 60).state == "succeeded"
    rows = [json.loads(line) for line in api.http.get(f"/v1/jobs/{job_id}/results", headers=AUTH).text.splitlines()]
    assert [row["id"] for row in rows] == ["r1", "r2", "r3"]
    status = api.http.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
    assert status["source"] == "upload:reviews.csv", "the upload's own name, not where the server kept it"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"texts": ["fine"]}, "model"),
        ({"texts": "fine", "model": "tiny"}, "texts"),
        ({"texts": [], "model": "tiny"}, "texts"),
        ({"texts": ["fine", 3], "model": "tiny"}, "texts.1"),
        ({"texts": ["fine"], "model": "tiny", "wait_s": 500}, "wait_s"),
    ],
)
def test_invalid_fields_get_422_naming_the_field(api: RunningApi, body: dict[str, object], field: str) -> None:
    answer = api.http.post("/v1/classify", json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_input"
    assert field in [issue["field"] for issue in error["issues"]], error


def test_unknown_models_and_jobs_get_404(api: RunningApi) -> None:
    unknown_model = api.http.post("/v1/classify", json={"texts": ["x"], "model": "nope"}, headers=AUTH)
    assert unknown_model.status_code == 404 and unknown_model.json()["error"]["code"] == "unknown_model"
    assert api.http.get("/v1/jobs/does-not-exist", headers=AUTH).status_code == 404
    assert api.http.get("/v1/jobs/does-not-exist/results", headers=AUTH).status_code == 404
    assert api.http.post("/v1/jobs/does-not-exist/retry", headers=AUTH).status_code == 404
    malicious = api.http.post("/v1/classify", json={"texts": ["x"], "model": "../../etc"}, headers=AUTH)
    assert malicious.status_code == 422 and malicious.json()["error"]["code"] == "invalid_reference"


def test_too_many_texts_or_bytes_get_413(api: RunningApi, tmp_path: Path) -> None:
    many = api.http.post("/v1/classify", json={"texts": ["x"] * 51, "model": "tiny"}, headers=AUTH)
    assert many.status_code == 413 and "limit of 50" in many.json()["error"]["message"]
    big = "x" * 250_000
    upload = api.http.post(
        "/v1/jobs", files={"file": ("big.txt", big.encode(), "text/plain")}, data={"model": "tiny"}, headers=AUTH
    )
    assert upload.status_code == 413, upload.text
    assert "LEPTON_API_MAX_BODY_BYTES" in upload.json()["error"]["message"]
    # the same upload sent chunked, without a Content-Length: cut off as soon as it passes the limit
    boundary = "lepton-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\ntiny\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n{big}\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    chunked = api.http.post(
        "/v1/jobs",
        content=iter([body[:1000], body[1000:]]),
        headers={**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert chunked.status_code == 413, chunked.text
    assert "passed 200,000 bytes" in chunked.json()["error"]["message"], chunked.text
    wrong_type = api.http.post("/v1/jobs", content=b"great film", headers={**AUTH, "Content-Type": "text/plain"})
    assert wrong_type.status_code == 415 and wrong_type.json()["error"]["code"] == "unsupported_media_type"


def test_a_deep_queue_gets_429_with_retry_after(api: RunningApi, client: LeptonClient) -> None:
    # no worker runs: the first job sends a window of 4 chunk messages (the rest wait in its record), the second
    # half of that (the tenant's two jobs share its weight)
    waiting = [client.submit_bulk([f"text {i}" for i in range(10)], model="tiny", chunk_size=1) for _ in range(2)]
    answer = api.http.post("/v1/jobs", json={"texts": ["x"], "model": "tiny"}, headers=AUTH)
    assert answer.status_code == 429, answer.text
    assert answer.headers["Retry-After"].isdigit() and answer.json()["error"]["code"] == "queue_full"
    one_text = api.http.post("/v1/classify", json={"texts": ["x"], "model": "tiny", "wait_s": 0}, headers=AUTH)
    assert one_text.status_code == 202, "the interactive lane does not wait behind the deep bulk queue"
    metrics = api.http.get("/metrics", headers=AUTH).text
    assert 'lepton_queue_depth{queue="lepton.inference"} 6.0' in metrics
    for job in waiting:
        assert api.http.delete(f"/v1/jobs/{job.id}", headers=AUTH).json()["state"] == "cancelled"


def test_models_are_listed_and_promoted(api: RunningApi) -> None:
    (tiny,) = [model for model in api.http.get("/v1/models", headers=AUTH).json()["models"] if model["name"] == "tiny"]
    assert tiny["aliases"]["production"] == 1 and tiny["versions"][0]["variants"] == ["fp32", "int8"]
    promoted = api.http.post("/v1/models/tiny/promote", json={"version": 1, "alias": "staging"}, headers=AUTH)
    assert promoted.json() == {"name": "tiny", "alias": "staging", "version": 1}
    missing = api.http.post("/v1/models/tiny/promote", json={"version": 9}, headers=AUTH)
    assert missing.status_code == 404


def test_training_is_queued_followed_and_cancelled(api: RunningApi, banking: LabelledTexts) -> None:
    rows = "".join(
        json.dumps({"text": t, "label": lab}) + "\n"
        for t, lab in zip(banking.texts[:60], (banking.labels or [])[:60], strict=True)
    )
    answer = api.http.post(
        "/v1/train", files={"file": ("train.jsonl", rows.encode())}, data={"name": "sentiment"}, headers=AUTH
    )
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["job_id"]
    status = api.http.get(f"/v1/jobs/{run_id}", headers=AUTH).json()
    assert status["kind"] == "train" and status["state"] == "queued" and status["train_rows"] == 60
    assert api.http.delete(f"/v1/jobs/{run_id}", headers=AUTH).json()["state"] == "cancelled"
    one_label = "".join(json.dumps({"text": t, "label": "question"}) + "\n" for t in banking.texts[:20])
    refused = api.http.post(
        "/v1/train", files={"file": ("train.jsonl", one_label.encode())}, data={"name": "sentiment"}, headers=AUTH
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_input"

    sentences = "".join(
        json.dumps({"tokens": ["Anna", "flew", "to", "Berlin"], "tags": ["B-PER", "O", "O", "B-LOC"]}) + "\n"
        for _ in range(20)
    )
    entities, form = {"file": ("ner.jsonl", sentences.encode())}, {"name": "ner", "task": "token-classification"}
    alone = api.http.post("/v1/train", files=entities, data=form, headers=AUTH)
    assert alone.status_code == 422 and "validation" in alone.json()["error"]["message"]
    queued = api.http.post(
        "/v1/train", files={**entities, "validation": ("dev.jsonl", sentences.encode())}, data=form, headers=AUTH,
    )  # fmt: skip
    assert queued.status_code == 201, queued.text
    status = api.http.get(f"/v1/jobs/{queued.json()['job_id']}", headers=AUTH).json()
    assert status["request"]["task"] == "token-classification" and status["train_rows"] == 20


def test_readyz_needs_a_worker(api: RunningApi, start_worker: Callable[..., WorkerProcess]) -> None:
    not_ready = api.http.get("/readyz")
    assert not_ready.status_code == 503 and not not_ready.json()["ready"]
    assert "no worker consumes lepton.inference" in not_ready.json()["problems"][0]
    start_worker()
    ready = api.http.get("/readyz").json()
    assert ready["ready"] and ready["workers"]["lepton.inference"] == 1


def test_the_api_refuses_to_serve_without_tokens_beyond_loopback(queue_env: dict[str, str]) -> None:
    env = {**os.environ, **queue_env, "LEPTON_API_TOKENS": "[]"}
    for arguments, expected in [
        (["--host", "0.0.0.0", "--allow-anonymous"], "without authentication"),
        (["--host", "127.0.0.1"], "--allow-anonymous"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "lepton_runtime", "api", "--port", str(free_port()), *arguments],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2 and expected in done.stderr, done.stderr


def test_the_openapi_document_is_valid_and_every_route_declares_its_answer(queue_settings: LeptonSettings) -> None:
    from openapi_spec_validator import validate

    from producer.api import create_app

    app = create_app(queue_settings.model_copy(update={"api_allow_anonymous": True}))
    document = app.openapi()
    validate(document)
    routes = [route for route in app.routes if isinstance(route, APIRoute) and route.include_in_schema]
    from_specs = [route for route in routes if route.endpoint.__module__ == "producer.api.routes.tasks"]
    assert len(routes) - len(from_specs) == 23  # the docs pages and their assets apart, and the tasks' own routes
    assert {spec.route for spec in SPECS.values()} <= {route.path for route in routes}
    for route in routes:
        declared = route.response_model is not None or route.response_class.__name__ != "JSONResponse"
        assert declared, f"{route.path} has no response model"
        assert route.description or route.summary, f"{route.path} says nothing in /docs"
    assert document["components"]["schemas"]["ClassifyRequest"]["examples"]
    for route in from_specs:  # a generated route's answer lists its task's result fields
        spec = next(spec for spec in SPECS.values() if spec.route == route.path)
        result = route.response_model.model_fields["results"].annotation.__args__[0]
        assert set(spec.result_fields) <= set(document["components"]["schemas"][result.__name__]["properties"])


def test_the_openapi_document_gives_every_route_the_error_shape(queue_settings: LeptonSettings) -> None:
    from lepton_runtime.errors import http_status_by_code
    from producer.api import create_app

    document = create_app(queue_settings.model_copy(update={"api_allow_anonymous": True})).openapi()
    statuses_of_the_tree = set(http_status_by_code().values())
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {int(s): answer for s, answer in operation["responses"].items() if int(s) >= 400}
            assert errors, f"{method} {path} declares no error answer"
            for status, answer in errors.items():
                assert status in statuses_of_the_tree, (method, path, status)
                if (path, status) == ("/readyz", 503):
                    continue  # not ready answers with the readiness report itself
                schema = answer["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("/ErrorResponse"), (method, path, status)


def test_a_body_the_json_parser_refuses_gets_a_code_of_the_tree_and_the_issue(api: RunningApi) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    for body in (b"[" * 100_000, b'{"texts": ["\xff\xfe"], "model": "tiny"}'):
        for path in ("/v1/classify", "/v1/jobs"):
            answer = api.http.post(path, content=body, headers=headers)
            assert answer.status_code == 422, (path, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "invalid_input" and error["issues"][0]["field"] == "body", (path, error)
    unknown = api.http.get("/v2/nothing", headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    wrong_method = api.http.put("/v1/classify", headers=AUTH)
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_lepton_api_with_two_workers_answers_classify_from_each_process(
    queue_env: dict[str, str], start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    import signal

    import psutil

    start_worker()
    env = {**os.environ, **queue_env, "LEPTON_API_TOKENS": json.dumps([TOKEN])}
    api = RunningApi(env, tmp_path / "api.log", ["--workers", "2"])
    try:
        children = psutil.Process(api.process.pid).children()
        servers = [child for child in children if "resource_tracker" not in " ".join(child.cmdline())]
        assert len(servers) == 2, [child.cmdline() for child in children]
        body = {"texts": ["my card payment was declined", "how do I order a card?"], "model": "tiny"}
        for serving, paused in (servers, reversed(servers)):
            paused.send_signal(signal.SIGSTOP)  # only `serving` can take the connection now
            try:
                # a connection of its own, so no kept-alive one to the paused process is reused
                answer = httpx.post(f"http://127.0.0.1:{api.port}/v1/classify", json=body, headers=AUTH, timeout=60)
            finally:
                paused.send_signal(signal.SIGCONT)
            assert answer.status_code == 200, (serving.pid, answer.text)
            assert [p["label"] in {"problem", "question"} for p in answer.json()["predictions"]] == [True, True]
    finally:
        api.stop()


# A token of each kind: every scope, then each scope alone (a scope missing is answered 403, as declared).
FUZZ_TOKENS = {scopes: f"operator:{scopes}:fuzz-{scopes.replace('*', 'all')}-0123456789"
               for scopes in ("*", "submit", "read", "train", "admin")}  # fmt: skip


def test_schemathesis_with_all_checks_and_its_stateful_phase_finds_no_failure(
    queue_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    copy_of_published: ModelRegistry,
) -> None:
    """Every check schemathesis has (status codes, content types, headers, schemas of answers, positive data
    accepted, negative data refused, Allow headers, resources that must exist...) in every phase, the stateful one
    following the document's links (a submitted job's id to its status, results, retry and cancel), with a token
    of each kind."""
    registry = {"LEPTON_MODEL_DIR": str(copy_of_published.root)}
    start_worker(env=registry)
    tokens = json.dumps(list(FUZZ_TOKENS.values()))
    api = RunningApi({**os.environ, **queue_env, **API_LIMITS, **FUZZ_ENV, **registry, "LEPTON_API_TOKENS": tokens},
                     tmp_path / "api.log", [])  # fmt: skip
    try:
        for scopes, token in FUZZ_TOKENS.items():
            done = subprocess.run(
                [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(SCHEMATHESIS_CONFIG),
                 "run", f"http://127.0.0.1:{api.port}/openapi.json", "--checks", "all",
                 "--phases", "examples,coverage,fuzzing,stateful", "--header",
                 f"Authorization: Bearer {token.rsplit(':', 1)[1]}", "--seed", "7",
                 "--max-examples", "25" if scopes == "*" else "10",
                 "--request-timeout", "30", "--continue-on-failure"],
                capture_output=True, text=True, timeout=300, cwd=tmp_path,
            )  # fmt: skip
            assert done.returncode == 0, f"scopes {scopes}:\n" + done.stdout[-12000:] + done.stderr[-2000:]
            counts = re.search(r"(\d+) generated, (\d+) passed", done.stdout) or re.search(
                r"(\d+) generated", done.stdout
            )
            assert counts and int(counts[1]) >= (300 if scopes == "*" else 100), done.stdout[-2000:]
            print(f"schemathesis, token {scopes}: {counts[0]}")  # shown with -s: the figures the README quotes
    finally:
        api.stop()


def test_a_dataset_job_reads_and_writes_only_in_the_callers_part_of_the_data_store(
    api: RunningApi,
    client: LeptonClient,
    start_worker: Callable[..., WorkerProcess],
    banking: LabelledTexts,
    queue_env: dict[str, str],
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    own = Path(queue_env["LEPTON_DATA_STORE"]) / "tenants" / "default"
    (own / "corpus").mkdir(parents=True)
    ids = [f"d{index}" for index in range(300)]
    pq.write_table(pa.table({"id": ids, "text": banking.texts[:300]}), own / "corpus" / "a.parquet", row_group_size=50)
    other = own.parent / "someone-else"
    other.mkdir()
    pq.write_table(pa.table({"text": ["private"]}), other / "secret.parquet")
    for source, status in [("/etc/hostname", 403), (str(other / "secret.parquet"), 403), ("corpus/../../x", 422)]:
        answer = api.http.post("/v1/jobs", json={"source": source, "model": "tiny"}, headers=AUTH)
        assert answer.status_code == status, (source, answer.text)
    outside_out = {"source": "corpus/", "model": "tiny", "out": str(other / "run")}
    assert api.http.post("/v1/jobs", json=outside_out, headers=AUTH).status_code == 403
    assert not (other / "run").exists()

    start_worker()
    answer = api.http.post("/v1/jobs", json={"source": "corpus/", "model": "tiny", "out": "run-1/"}, headers=AUTH)
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["job_id"]
    assert client.wait(job_id, 120).state == "succeeded"
    rows = api.http.get(f"/v1/jobs/{job_id}/rows", params={"limit": 1000}, headers=AUTH).json()["rows"]
    assert [row["id"] for row in rows] == ids
    assert (own / "run-1" / "_manifest.json").is_file()
    assert pq.read_table(own / "run-1").column("id").to_pylist() == ids
