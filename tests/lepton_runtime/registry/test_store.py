"""The registry on a real filesystem: atomic publish, aliases, rollback, verification, concurrency."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from lepton_runtime.errors import ModelIntegrityError, ModelNotFoundError, ModelStateError
from lepton_runtime.registry import Manifest, ModelRegistry, ModelVersion, VariantInfo


def _publish(registry: ModelRegistry, name: str, payload: bytes) -> ModelVersion:
    with registry.begin_publish(name) as staged:
        (staged.path / "model.onnx").write_bytes(payload)
        (staged.path / "tokenizer.json").write_text("{}")
        return staged.commit(
            Manifest(
                name=name,
                labels=["a", "b"],
                max_sequence_length=16,
                opset=17,
                input_names=["input_ids"],
                variants={"fp32": VariantInfo(file="model.onnx", precision="fp32", verified=True)},
                files={},
            )
        )


def test_versions_are_numbered_and_hashed(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    first, second = _publish(registry, "m", b"one"), _publish(registry, "m", b"two")
    assert (first.version, second.version) == (1, 2)
    assert first.manifest.files["model.onnx"].size_bytes == 3
    assert first.manifest.content_sha256 != second.manifest.content_sha256
    assert registry.list_models() == ["m"]
    assert [v.version for v in registry.versions("m")] == [1, 2]


def test_bare_name_resolves_to_production_else_latest(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    _publish(registry, "m", b"one")
    _publish(registry, "m", b"two")
    assert registry.resolve("m").version == 2
    registry.promote("m@1")
    assert registry.resolve("m").version == 1
    assert registry.resolve("m@production").version == 1
    assert registry.resolve("m@2").version == 2


def test_promote_and_rollback_move_aliases_with_history(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    for payload in (b"1", b"2", b"3"):
        _publish(registry, "m", payload)
    registry.promote("m@1", "production")
    registry.promote("m@3", "production")
    registry.promote("m@2", "staging")
    assert registry.aliases("m") == {"production": 3, "staging": 2}
    assert registry.rollback("m", "production").version == 1
    assert registry.aliases("m") == {"production": 1, "staging": 2}
    with pytest.raises(ModelStateError, match="no earlier version"):
        registry.rollback("m", "production")


def test_unknown_names_versions_and_aliases_say_what_exists(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    _publish(registry, "m", b"1")
    with pytest.raises(ModelNotFoundError, match="no published version"):
        registry.resolve("other")
    with pytest.raises(ModelNotFoundError, match=r"versions: \[1\]"):
        registry.resolve("m@7")
    registry.promote("m@1", "production")
    with pytest.raises(ModelNotFoundError, match=r"no alias 'staging' \(aliases: production -> 1\)"):
        registry.resolve("m@staging")


def test_a_relative_registry_is_named_by_its_absolute_folder_and_the_setting_that_moves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    registry = ModelRegistry(Path("models"))  # LEPTON_MODEL_DIR's default, relative to where a command runs
    with pytest.raises(ModelNotFoundError) as raised:
        registry.resolve("intents")
    assert f"under {tmp_path.resolve() / 'models'} " in str(raised.value)
    assert "LEPTON_MODEL_DIR" in str(raised.value)


def test_delete_is_refused_while_an_alias_points_at_the_version(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    _publish(registry, "m", b"1")
    _publish(registry, "m", b"2")
    registry.promote("m@1")
    with pytest.raises(ModelStateError, match="production"):
        registry.delete("m@1")
    registry.delete("m@2")
    assert [v.version for v in registry.versions("m")] == [1]
    registry.delete("m@1", force=True)
    assert registry.aliases("m") == {}
    assert registry.list_models() == []


def test_a_reader_sees_a_deleted_and_republished_number_as_the_new_version(tmp_path: Path) -> None:
    reader, writer = ModelRegistry(tmp_path), ModelRegistry(tmp_path)  # a producer and `lepton models`
    _publish(writer, "m", b"1")
    old = _publish(writer, "m", b"old")
    assert reader.resolve("m@2").manifest.content_sha256 == old.manifest.content_sha256
    writer.delete("m@2")
    with pytest.raises(ModelNotFoundError):
        reader.resolve("m@2")
    new = _publish(writer, "m", b"new bytes")
    assert new.version == 2
    assert reader.resolve("m@2").manifest.content_sha256 == new.manifest.content_sha256 != old.manifest.content_sha256


def test_a_failed_publish_leaves_nothing_visible(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(RuntimeError), registry.begin_publish("m") as staged:
        (staged.path / "model.onnx").write_bytes(b"half")
        raise RuntimeError("export crashed")
    assert registry.list_models() == []
    assert not any((tmp_path / "m" / ".staging").iterdir())


def test_verify_names_the_file_whose_bytes_changed(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    version = _publish(registry, "m", b"weights")
    registry.verify("m@1")
    data = bytearray((version.path / "model.onnx").read_bytes())
    data[0] ^= 0x01
    (version.path / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=r"model\.onnx: sha256 differs") as caught:
        registry.verify("m@1")
    assert caught.value.code == "corrupt_model"
    (version.path / "tokenizer.json").unlink()
    with pytest.raises(ModelIntegrityError, match=r"tokenizer\.json: missing"):
        registry.verify("m@1")


def _publish_many(root: str, worker: int, count: int) -> None:
    registry = ModelRegistry(root)
    for i in range(count):
        _publish(registry, "m", f"{worker}-{i}".encode() * 50_000)


def _watch(root: str, stop: multiprocessing.synchronize.Event, seen: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    registry = ModelRegistry(root)
    checked = 0
    while not stop.is_set():
        if registry.list_models():
            for version in registry.versions("m"):
                version.verify()  # raises if any visible version is incomplete
                checked += 1
    seen.put(checked)


def test_concurrent_publishers_never_expose_a_half_written_version(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    stop, seen = context.Event(), context.Queue()
    watcher = context.Process(target=_watch, args=(str(tmp_path), stop, seen))
    watcher.start()
    publishers = [context.Process(target=_publish_many, args=(str(tmp_path), w, 5)) for w in range(3)]
    for process in publishers:
        process.start()
    for process in publishers:
        process.join(timeout=120)
        assert process.exitcode == 0
    stop.set()
    watcher.join(timeout=60)
    assert watcher.exitcode == 0, "a reader saw an incomplete version"
    assert seen.get(timeout=5) > 0
    registry = ModelRegistry(tmp_path)
    versions = registry.versions("m")
    assert [v.version for v in versions] == list(range(1, 16))
    assert len({v.manifest.content_sha256 for v in versions}) == 15
    for version in versions:
        version.verify()
