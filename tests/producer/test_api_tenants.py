"""Tenants and scopes over HTTP: a real `lepton api` process, a real worker and Redis. A token without the scope
gets 403 naming it; a tenant over its quota gets 429 with Retry-After while another tenant is served."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lepton_runtime.labelled_data import LabelledTexts
from tests.queue_fixtures import RunningApi
from workers.processes import WorkerProcess

pytestmark = pytest.mark.slow

SUBMIT_ONLY = "submit-only-token-0123"
READ_ONLY = "read-only-token-0123"
ADMIN = "admin-token-0123"
QUOTA_A = 2


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(queue_env: dict[str, str], tmp_path: Path) -> Iterator[RunningApi]:
    tokens = [
        f"a:submit:{SUBMIT_ONLY}",
        f"b:read:sha256:{hashlib.sha256(READ_ONLY.encode()).hexdigest()}",  # kept as a digest only
        f"operator:submit+read+admin:{ADMIN}",
    ]
    env = {
        **os.environ, **queue_env,
        "LEPTON_API_TOKENS": json.dumps(tokens), "LEPTON_TENANT_QUOTAS": json.dumps({"a": QUOTA_A}),
    }  # fmt: skip
    running = RunningApi(env, tmp_path / "api.log", [])
    yield running
    running.stop()


def test_a_token_without_the_scope_gets_403_naming_it(api: RunningApi, banking: LabelledTexts) -> None:
    forbidden = [
        ("POST", "/v1/models/tiny/promote", {"json": {"version": 1}}, "admin"),
        ("POST", "/v1/models/tiny/rollback", {"json": {}}, "admin"),
        ("DELETE", "/v1/models/tiny/versions/1", {}, "admin"),
        ("GET", "/v1/dlq", {}, "admin"),
        ("POST", "/v1/dlq/some-letter/replay", {}, "admin"),
        ("POST", "/v1/train", {"files": {"file": ("t.jsonl", b'{"text": "a", "label": "b"}\n')},
                               "data": {"name": "x"}}, "train"),
        ("GET", "/v1/models", {}, "read"),
        ("GET", "/v1/jobs/some-job", {}, "read"),
    ]  # fmt: skip
    for method, path, extra, scope in forbidden:
        answer = api.http.request(method, path, headers=bearer(SUBMIT_ONLY), **extra)
        assert answer.status_code == 403, (method, path, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "forbidden" and f"lacks the {scope!r} scope" in error["message"], (path, error)
    for method, path, body in [
        ("POST", "/v1/classify", {"texts": ["x"], "model": "tiny"}),
        ("POST", "/v1/jobs", {"texts": ["x"], "model": "tiny"}),
    ]:
        answer = api.http.request(method, path, headers=bearer(READ_ONLY), json=body)
        assert answer.status_code == 403 and "'submit'" in answer.json()["error"]["message"], answer.text
    assert api.http.get("/v1/models", headers=bearer(READ_ONLY)).status_code == 200
    assert api.http.get("/v1/dlq", headers=bearer(ADMIN)).json() == {"dead_letters": []}
    assert api.http.post("/v1/models/tiny/rollback", headers=bearer(ADMIN), json={}).status_code == 409, "no history"
    log = api.log.read_text()
    assert SUBMIT_ONLY not in log and READ_ONLY not in log and ADMIN not in log


def test_a_tenant_over_its_quota_gets_429_while_another_is_served(
    api: RunningApi, start_worker: Callable[..., WorkerProcess]
) -> None:
    body = {"texts": ["where is my card?"], "model": "tiny", "wait_s": 0}
    waiting = [api.http.post("/v1/classify", headers=bearer(SUBMIT_ONLY), json=body) for _ in range(QUOTA_A)]
    assert [answer.status_code for answer in waiting] == [202] * QUOTA_A, "no worker yet: admitted, waiting"
    refused = api.http.post("/v1/classify", headers=bearer(SUBMIT_ONLY), json=body)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "quota_exceeded" and refused.headers["Retry-After"] == "1"
    other = api.http.post("/v1/classify", headers=bearer(ADMIN), json=body)
    assert other.status_code == 202, "tenant ops has its own quota"
    start_worker()
    for answer in [*waiting, other]:
        done = api.http.get(answer.json()["status_url"], params={"wait_s": 30}, headers=bearer(ADMIN)).json()
        assert done["state"] == "succeeded" and done["predictions"][0]["label"], done
    again = api.http.post("/v1/classify", headers=bearer(SUBMIT_ONLY), json={**body, "wait_s": 30})
    assert again.status_code == 200, "answered requests free the quota"
    metrics = api.http.get("/metrics", headers=bearer(ADMIN)).text
    assert 'lepton_lane_depth{lane="interactive",tenant="a"} 0.0' in metrics
    assert 'lepton_lane_rejected_total{tenant="a"} 1.0' in metrics
