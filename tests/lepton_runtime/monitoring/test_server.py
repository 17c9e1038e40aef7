"""A worker's /metrics takes the API's tokens by the API's rules: tenant and scopes, hashed entries, read needed."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from lepton_runtime.machine import free_port
from lepton_runtime.monitoring.server import MULTIPROC_DIR_VARIABLE, serve_metrics
from lepton_runtime.settings import LeptonSettings

SCRAPER_TOKEN = "scrape-secret"
SUBMITTER_TOKEN = "submit-only-secret"


@pytest.fixture
def metrics_url(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv(MULTIPROC_DIR_VARIABLE, str(tmp_path))  # as the worker's CLI chooses (not for later tests)
    hashed = hashlib.sha256(SCRAPER_TOKEN.encode()).hexdigest()
    settings = LeptonSettings(
        redis_url=SecretStr(redis_url),
        api_tokens=[SecretStr(f"ops:read:sha256:{hashed}"), SecretStr(f"shop:submit:{SUBMITTER_TOKEN}")],
    )
    port = free_port()
    server = serve_metrics(settings, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}/metrics"
    server.shutdown()


def scrape(url: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(url, headers=headers, timeout=10)


def test_a_read_token_scrapes_though_the_environment_holds_only_its_digest(metrics_url: str) -> None:
    answer = scrape(metrics_url, SCRAPER_TOKEN)
    assert answer.status_code == 200, answer.text
    assert "lepton_queue_depth" in answer.text


def test_no_token_or_a_whole_entry_is_refused_and_a_token_without_read_is_forbidden(metrics_url: str) -> None:
    assert scrape(metrics_url, None).status_code == 401
    assert scrape(metrics_url, f"shop:submit:{SUBMITTER_TOKEN}").status_code == 401, "the entry is not the token"
    forbidden = scrape(metrics_url, SUBMITTER_TOKEN)
    assert forbidden.status_code == 403
    assert "read scope" in forbidden.text
