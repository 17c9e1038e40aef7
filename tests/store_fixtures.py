"""A real S3-compatible server for the tests: moto's standalone server (what s3fs itself tests against), started here.

Each test gets a fresh bucket; the server and its credentials (dummies, from the environment as in production)
last the session. Nothing in the process is mocked: requests go over HTTP to the server's port.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.queue_fixtures import free_port

SERVER_START_TIMEOUT_S = 60
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "lepton-test", "AWS_SECRET_ACCESS_KEY": "lepton-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


@dataclass(frozen=True)
class ObjectStore:
    """A running S3-compatible server: its endpoint, and the bucket URL of one test."""

    endpoint_url: str
    url: str  # s3://bucket/prefix


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free port, for the session; the AWS credential variables point at it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        try:
            httpx.get(endpoint, timeout=1)
            break
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"moto's S3 server did not start on {endpoint} (is moto[server] installed? make install)")
            time.sleep(0.1)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        yield endpoint
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def object_store(s3_endpoint: str) -> ObjectStore:
    """A fresh bucket on the session's server, with a prefix (as a deployment would have)."""
    import s3fs

    bucket = f"models-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True).mkdir(bucket)
    assert os.environ["AWS_ACCESS_KEY_ID"] == CREDENTIALS["AWS_ACCESS_KEY_ID"]
    return ObjectStore(s3_endpoint, f"s3://{bucket}/lepton")
