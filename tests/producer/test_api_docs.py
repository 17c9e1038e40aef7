"""/docs and /redoc render with nothing fetched beyond the API: a browser whose every other request is refused
shows the operations (Swagger UI and ReDoc served by the API itself, not by a CDN)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.queue_fixtures import RunningApi

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PAGE_TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


@pytest.fixture
def api(queue_env: dict[str, str], tmp_path: Path) -> Iterator[RunningApi]:
    env = {**os.environ, **queue_env, "LEPTON_API_TOKENS": json.dumps(["docs-test-token"])}
    running = RunningApi(env, tmp_path / "api.log", [])
    yield running
    running.stop()


@pytest.mark.parametrize(("page_path", "operation"), [("/docs", "/v1/classify"), ("/redoc", "/v1/classify")])
def test_the_docs_pages_render_the_operations_with_every_outside_request_refused(
    api: RunningApi, page_path: str, operation: str
) -> None:
    from playwright.sync_api import Route, sync_playwright

    own = f"127.0.0.1:{api.port}"
    refused: list[str] = []

    def only_the_api(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:  # a CDN, fonts, anything beyond the API: as on a network that reaches nothing else
            refused.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.route("**/*", only_the_api)
        page.goto(f"http://{own}{page_path}")
        page.get_by_text(operation).first.wait_for(timeout=PAGE_TIMEOUT_MS)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"api{page_path.replace('/', '-')}.png"))
        browser.close()
    assert not refused, f"{page_path} asked for outside resources: {refused}"
