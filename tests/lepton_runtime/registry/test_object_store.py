"""The registry in an S3-compatible bucket (a real server over HTTP): the directory registry's guarantees, verified
copies on each host, conditional writes against concurrent publishers and alias movers."""

from __future__ import annotations

import itertools
import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from lepton_runtime.errors import (
    ModelIntegrityError,
    ModelNotFoundError,
    ModelStateError,
    ModelStoreUnavailableError,
)
from lepton_runtime.inference.cache import EngineCache
from lepton_runtime.inference.engine import Engine
from lepton_runtime.registry import ModelVersion
from lepton_runtime.registry.checksums import sha256_file
from lepton_runtime.registry.object_store import ObjectStoreRegistry
from tests.lepton_runtime.registry.test_store import _publish
from tests.store_fixtures import ObjectStore, S3Server, copy_into


def host(store: ObjectStore, cache: Path) -> ObjectStoreRegistry:
    """The registry as one host sees it: the shared bucket, its own cache directory."""
    return ObjectStoreRegistry(store.url, cache, endpoint_url=store.endpoint_url)


def flip_first_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))


def test_versions_and_aliases_keep_the_directory_registrys_rules(object_store: ObjectStore, tmp_path: Path) -> None:
    publisher, reader = host(object_store, tmp_path / "a"), host(object_store, tmp_path / "b")
    versions = [_publish(publisher, "m", payload) for payload in (b"one", b"two", b"three")]
    assert [v.version for v in versions] == [1, 2, 3]
    assert reader.list_models() == ["m"] and [v.version for v in reader.versions("m")] == [1, 2, 3]
    assert reader.resolve("m").version == 3  # no production alias yet: the latest
    publisher.promote("m@1")
    publisher.promote("m@3")
    publisher.promote("m@2", "staging")
    assert reader.aliases("m") == {"production": 3, "staging": 2}
    assert reader.resolve("m").version == 3
    assert publisher.rollback("m").version == 1
    assert reader.resolve("m@production").version == 1
    with pytest.raises(ModelStateError, match="no earlier version"):
        publisher.rollback("m")
    with pytest.raises(ModelNotFoundError, match=r"versions: \[1, 2, 3\]"):
        reader.resolve("m@9")
    with pytest.raises(ModelNotFoundError, match=f"no published version under {object_store.url}"):
        reader.resolve("other")

    with pytest.raises(ModelStateError, match="staging"):
        publisher.delete("m@2")
    publisher.delete("m@3")
    assert [v.version for v in reader.versions("m")] == [1, 2]
    assert _publish(publisher, "m", b"four").version == 4  # a deleted number is never given again


def test_another_host_loads_a_verified_copy_and_a_failed_publish_leaves_nothing(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    publisher, worker = host(object_store, tmp_path / "publisher"), host(object_store, tmp_path / "worker")
    with pytest.raises(RuntimeError), publisher.begin_publish("m") as staged:
        (staged.path / "model.onnx").write_bytes(b"half")
        raise RuntimeError("export crashed")
    assert publisher.list_models() == []
    published = _publish(publisher, "m", b"weights")

    resolved = worker.resolve("m@1")
    assert not resolved.path.exists()  # resolving reads the manifest only (a producer needs no files)
    copy = worker.local_copy(resolved)
    assert copy.path.is_relative_to(tmp_path / "worker")
    assert (copy.path / "model.onnx").read_bytes() == b"weights"
    assert copy.manifest.content_sha256 == published.manifest.content_sha256
    copy.verify()
    worker.verify("m@1")  # the objects in the store


def test_a_flipped_byte_in_the_store_is_refused_at_download_and_by_verify(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    publisher, worker = host(object_store, tmp_path / "publisher"), host(object_store, tmp_path / "worker")
    _publish(publisher, "m", b"weights")
    key = f"{object_store.url}/m/1/model.onnx"
    publisher.fs.pipe_file(key, b"veights")  # same size, one byte changed
    with pytest.raises(ModelIntegrityError, match=r"model\.onnx downloaded from .* differs") as caught:
        worker.local_copy(worker.resolve("m@1"))
    assert caught.value.code == "corrupt_model"
    assert not worker.resolve("m@1").path.exists()  # nothing half-written is left to load
    with pytest.raises(ModelIntegrityError, match=r"model\.onnx: sha256 differs"):
        worker.verify("m@1")


def test_a_flipped_byte_in_the_cache_is_refused_at_load_and_fetched_again(
    object_store: ObjectStore, published: ModelVersion, tmp_path: Path
) -> None:
    publisher = host(object_store, tmp_path / "publisher")
    copy_into(publisher, published, "tiny")
    publisher.promote("tiny@1")
    worker = host(object_store, tmp_path / "worker")
    texts = ["my card was declined", "how do I top up?"]
    first = EngineCache(worker, Engine, memory_budget_mb=1024).get("tiny@production")
    expected = [prediction.label for prediction in first.classify(texts)]

    copy = worker.resolve("tiny@1")
    flip_first_byte(copy.path / first.model.onnx_file)  # the file this host loads
    engines = EngineCache(worker, Engine, memory_budget_mb=1024)  # a restarted worker process on the same host
    assert [p.label for p in engines.get("tiny@production").classify(texts)] == expected
    copy.verify()  # the copy was fetched again


def test_a_host_serves_its_copies_while_the_store_is_down(
    s3_credentials: None, published: ModelVersion, tmp_path: Path
) -> None:
    server = S3Server().start()  # a server of its own: this test stops it
    try:
        store = server.new_bucket()
        publisher = host(store, tmp_path / "publisher")
        copy_into(publisher, published, "tiny")
        copy_into(publisher, published, "other")
        publisher.promote("tiny@1")
        texts = ["my card was declined", "how do I top up?"]
        expected = [p.label for p in EngineCache(host(store, tmp_path / "worker"), Engine, memory_budget_mb=1024)
                    .get("tiny@production").classify(texts)]  # fmt: skip
    finally:
        server.stop()

    restarted = host(store, tmp_path / "worker")  # a new worker process on the host, the store gone
    engine = EngineCache(restarted, Engine, memory_budget_mb=1024).get("tiny@production")
    assert [prediction.label for prediction in engine.classify(texts)] == expected
    assert restarted.store_error is not None and "connect" in restarted.store_error.lower()
    with pytest.raises(ModelStoreUnavailableError, match="cannot be reached") as caught:
        restarted.resolve("other@1")  # published, but never copied to this host
    assert caught.value.code == "store_unavailable"
    with pytest.raises(ModelStoreUnavailableError, match="could not move an alias of tiny"):
        restarted.promote("tiny@1", "staging")


def test_the_cache_keeps_within_its_budget_by_evicting_copies_no_process_uses(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    publisher = host(object_store, tmp_path / "publisher")
    for payload in (b"a", b"b", b"c"):
        _publish(publisher, "m", payload * 100_000)  # 100 kB each
    worker = ObjectStoreRegistry(
        object_store.url, tmp_path / "worker", endpoint_url=object_store.endpoint_url, cache_budget_bytes=250_000
    )
    first, second = (worker.local_copy(worker.resolve(f"m@{n}")) for n in (1, 2))
    third = worker.local_copy(worker.resolve("m@3"))  # over budget, but the other two are in use: all kept
    assert all(version.path.is_dir() for version in (first, second, third))
    worker.release_local_copy("m@1")  # its engine evicted
    worker.local_copy(third)
    assert not first.path.exists() and second.path.is_dir() and third.path.is_dir()
    assert sum(size for _, size in worker.copies()) <= 250_000
    assert worker.local_copy(worker.resolve("m@1")).path.is_dir()  # fetched again when wanted again


def _copy_once(url: str, endpoint: str, cache: str, started: Any) -> tuple[str, int]:
    registry = ObjectStoreRegistry(url, cache, endpoint_url=endpoint)
    version = registry.resolve("m@1")
    started.wait(30)
    return sha256_file(registry.local_copy(version).path / "model.onnx"), registry.downloads


def test_the_processes_of_a_host_share_one_download(object_store: ObjectStore, tmp_path: Path) -> None:
    _publish(host(object_store, tmp_path / "publisher"), "m", b"w" * 2_000_000)
    store = (object_store.url, object_store.endpoint_url)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(3) as pool:
        started = manager.Event()
        results = [pool.apply_async(_copy_once, (*store, str(tmp_path / "host"), started)) for _ in range(3)]
        started.set()
        outcomes = [result.get(timeout=120) for result in results]
    assert len({digest for digest, _ in outcomes}) == 1
    assert sum(downloads for _, downloads in outcomes) == 1  # one process downloaded, the others waited for it
    assert len([path for path in (tmp_path / "host" / "m").iterdir() if path.is_dir()]) == 1  # no half download


def _publish_many(url: str, endpoint: str, cache: str, worker: int, count: int) -> None:
    registry = ObjectStoreRegistry(url, cache, endpoint_url=endpoint)
    for i in range(count):
        _publish(registry, "m", f"{worker}-{i}".encode() * 20_000)


def _promote_many(url: str, endpoint: str, cache: str, versions: list[int]) -> None:
    registry = ObjectStoreRegistry(url, cache, endpoint_url=endpoint)
    for number in versions:
        registry.promote(f"m@{number}")


def test_concurrent_publishers_get_distinct_numbers_and_alias_moves_keep_one_history(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    context = multiprocessing.get_context("spawn")
    store = (object_store.url, object_store.endpoint_url)
    publishers = [context.Process(target=_publish_many, args=(*store, str(tmp_path / f"h{w}"), w, 5)) for w in range(3)]
    for process in publishers:
        process.start()
    for process in publishers:
        process.join(timeout=180)
        assert process.exitcode == 0
    registry = host(object_store, tmp_path / "check")
    versions = registry.versions("m")
    assert [v.version for v in versions] == list(range(1, 16))
    assert len({v.manifest.content_sha256 for v in versions}) == 15
    for version in versions:
        registry.verify(version.reference)

    movers = [
        context.Process(target=_promote_many, args=(*store, str(tmp_path / f"m{m}"), numbers))
        for m, numbers in enumerate((list(range(1, 16, 2)), list(range(2, 16, 2))))
    ]
    for process in movers:
        process.start()
    for process in movers:
        process.join(timeout=180)
        assert process.exitcode == 0
    moves = sorted(registry.fs.ls(f"{object_store.url}/m/aliases", detail=False))
    assert len(moves) == 15  # 8 + 7 moves, none lost to a race
    tables = [json.loads(registry.fs.cat_file(key))["production"] for key in moves]
    for before, after in itertools.pairwise(tables):  # each move builds on the one before it
        assert after["history"] == before["history"] + [before["version"]]
    assert registry.aliases("m")["production"] == tables[-1]["version"]
    assert sorted([*tables[-1]["history"], tables[-1]["version"]]) == list(range(1, 16))
