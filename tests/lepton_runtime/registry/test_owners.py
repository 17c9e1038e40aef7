"""Model names have owners: the first publisher's, recorded beside the versions on disk and in the object store; only
the owner publishes more; a model stays its owner's to run until shared; models from before owners are the default
tenant's and shared."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from lepton_runtime.errors import ForbiddenError
from lepton_runtime.registry import Manifest, ModelRegistry, VariantInfo
from lepton_runtime.registry.object_store import ObjectStoreRegistry
from lepton_runtime.registry.owners import ModelOwner, check_administrator, may_use
from tests.lepton_runtime.registry.test_store import _publish
from tests.store_fixtures import ObjectStore


def registries(tmp_path: Path, object_store: ObjectStore | None) -> tuple[ModelRegistry, ModelRegistry]:
    """Two processes' views of one registry: a directory, or one bucket with a cache per host."""
    if object_store is None:
        return ModelRegistry(tmp_path / "models"), ModelRegistry(tmp_path / "models")
    hosts = [tmp_path / "a", tmp_path / "b"]
    return tuple(ObjectStoreRegistry(object_store.url, h, endpoint_url=object_store.endpoint_url) for h in hosts)  # type: ignore[return-value]


@pytest.fixture(params=["directory", "object store"])
def two_hosts(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[ModelRegistry, ModelRegistry]:
    store = request.getfixturevalue("object_store") if request.param == "object store" else None
    return registries(tmp_path, store)


def test_the_first_publisher_owns_a_name_and_only_it_publishes_more(
    two_hosts: tuple[ModelRegistry, ModelRegistry],
) -> None:
    alpha, beta = two_hosts
    alpha.publisher, beta.publisher = "alpha", "beta"
    _publish(alpha, "m", b"one")
    assert beta.owner("m") == ModelOwner("alpha", shared=False)
    with pytest.raises(ForbiddenError, match="belongs to tenant 'alpha'"):
        _publish(beta, "m", b"two")
    assert [v.version for v in beta.versions("m")] == [1], "the refused version is not published"
    assert _publish(alpha, "m", b"two").version == 2
    with beta.publishing_as("alpha"):  # a training worker running one of alpha's runs
        assert _publish(beta, "m", b"three").version == 3
    assert beta.publisher == "beta"


def test_a_race_for_a_new_name_has_one_winner(tmp_path: Path) -> None:
    """Both pass the early check (no owner yet); the owner record is created once, at commit."""
    alpha, beta = ModelRegistry(tmp_path), ModelRegistry(tmp_path)
    alpha.publisher, beta.publisher = "alpha", "beta"
    with alpha.begin_publish("m") as first, beta.begin_publish("m") as second:
        for staged in (first, second):
            (staged.path / "model.onnx").write_bytes(b"x")
        manifest = _manifest()
        first.commit(manifest)
        with pytest.raises(ForbiddenError):
            second.commit(manifest)
    assert json.loads((tmp_path / "m" / "owner.json").read_text()) == asdict(ModelOwner("alpha", shared=False))
    assert [v.version for v in alpha.versions("m")] == [1]


def test_sharing_lets_every_tenant_run_a_model(two_hosts: tuple[ModelRegistry, ModelRegistry]) -> None:
    alpha, reader = two_hosts
    alpha.publisher = "alpha"
    _publish(alpha, "m", b"one")
    owner = reader.owner("m")
    assert owner is not None and not may_use(owner, "beta", "operator") and may_use(owner, "alpha", "operator")
    assert may_use(owner, "operator", "operator")
    alpha.share("m", True)
    if isinstance(reader, ObjectStoreRegistry):
        reader._owners.clear()  # another host: it reads the record again within OWNER_RECHECK_S
    assert may_use(reader.owner("m") or owner, "beta", "operator")


def test_a_model_from_before_owners_is_the_default_tenants_and_shared(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    _publish(registry, "legacy", b"one")
    (tmp_path / "legacy" / "owner.json").unlink()  # as a registry written before this change has it
    assert registry.owner("legacy") == ModelOwner("default", shared=True)
    registry.publisher = "alpha"
    with pytest.raises(ForbiddenError):
        _publish(registry, "legacy", b"two")
    registry.publisher = "default"
    assert _publish(registry, "legacy", b"two").version == 2
    assert registry.owner("legacy") == ModelOwner("default", shared=True), "publishing again keeps it shared"


def test_only_the_owner_or_the_operator_administers_a_model() -> None:
    owner = ModelOwner("alpha")
    check_administrator("m", owner, "alpha", "operator", "promote")
    check_administrator("m", owner, "operator", "operator", "delete")
    with pytest.raises(ForbiddenError, match="only its owner's admin tokens"):
        check_administrator("m", owner, "beta", "operator", "roll back")


def _manifest() -> Manifest:
    return Manifest(
        name="m", labels=["a", "b"], max_sequence_length=16, opset=17, input_names=["input_ids"],
        variants={"fp32": VariantInfo(file="model.onnx", precision="fp32", verified=True)}, files={},
    )  # fmt: skip
