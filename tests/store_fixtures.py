"""A real S3-compatible server for the tests: moto's standalone server (what s3fs itself tests against), started here.

Each test gets a fresh bucket; the server and its credentials (dummies, from the environment as in production)
last the session. Nothing in the process is mocked: requests go over HTTP to the server's port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from lepton_runtime.registry import ModelRegistry, ModelVersion
from lepton_runtime.settings import LeptonSettings
from tests.queue_fixtures import free_port

SERVER_START_TIMEOUT_S = 60
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "lepton-test", "AWS_SECRET_ACCESS_KEY": "lepton-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


@dataclass(frozen=True)
class ObjectStore:
    """A running S3-compatible server: its endpoint, and the bucket URL of one test."""

    endpoint_url: str
    url: str  # s3://bucket/prefix

    def settings(self, redis_url: str, cache_dir: Path, endpoint_url: str | None = None) -> LeptonSettings:
        """A producer's (or publisher's) settings on this store, through ``endpoint_url`` if given."""
        return LeptonSettings(
            redis_url=SecretStr(redis_url), model_store=self.url, s3_endpoint_url=endpoint_url or self.endpoint_url,
            model_cache_dir=cache_dir,
        )  # fmt: skip


def copy_into(registry: ModelRegistry, version: ModelVersion, name: str) -> ModelVersion:
    """Publish the files of ``version`` (the tiny exported model) as a version of ``name`` in ``registry``."""
    with registry.begin_publish(name) as staged:
        for relative in version.manifest.files:
            (staged.path / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(version.path / relative, staged.path / relative)
        return staged.commit(version.manifest)


class S3Server:
    """moto's S3 server in a process of its own, on a free port of loopback."""

    def __init__(self, bind: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.bind = bind  # 0.0.0.0: also reachable from test hosts in network namespaces (endpoint_at)
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def endpoint_at(self, address: str) -> str:
        return f"http://{address}:{self.port}"

    def start(self) -> S3Server:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "--host", self.bind, "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            try:
                httpx.get(self.endpoint_url, timeout=1)
                return self
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"moto's S3 server did not start on {self.endpoint_url} (moto[server]: make install)")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def new_bucket(self) -> ObjectStore:
        """A fresh bucket, with a prefix (as a deployment would have)."""
        import s3fs

        bucket = f"models-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(endpoint_url=self.endpoint_url, skip_instance_cache=True).mkdir(bucket)
        return ObjectStore(self.endpoint_url, f"s3://{bucket}/lepton")


@pytest.fixture(scope="session")
def s3_credentials() -> Iterator[None]:
    """The AWS credential variables (dummies) that the store's clients read, as in production."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def s3_server(s3_credentials: None) -> Iterator[S3Server]:
    """moto's S3 server for the session."""
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def object_store(s3_server: S3Server) -> ObjectStore:
    """A fresh bucket on the session's server."""
    assert os.environ["AWS_ACCESS_KEY_ID"] == CREDENTIALS["AWS_ACCESS_KEY_ID"]
    return s3_server.new_bucket()


class StoreLink:
    """A TCP forwarder to the S3 server that a test takes down (connections refused and cut) and brings back on the
    same port: the store as a host sees it through an outage, while the server keeps its objects."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> StoreLink:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the link went down
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._open += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)
