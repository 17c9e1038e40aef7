"""The model registry on disk: versions published atomically, aliases moved atomically, files verified.

Layout under the root::

    <name>/.lock              flock taken to number versions and to move aliases
    <name>/aliases.json       {"production": {"version": 3, "history": [1, 2], ...}, ...}
    <name>/owner.json         the tenant it belongs to and whether others may run it: created by the first publish
    <name>/.staging/<id>/     a version being written; never visible to readers
    <name>/<version>/         a finished version: its files and manifest.json (written last)

A version directory appears by one ``rename`` of a complete staging directory, so two processes
publishing at once each get their own number and a reader never sees half a version.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from lepton_runtime.constants import DEFAULT_TENANT
from lepton_runtime.errors import ModelIntegrityError, ModelNotFoundError, ModelStateError
from lepton_runtime.registry.checksums import content_sha256, sha256_file
from lepton_runtime.registry.manifest import MANIFEST_FILE, FileEntry, Manifest
from lepton_runtime.registry.owners import LEGACY_OWNER, OWNER_FILE, ModelOwner, check_publisher
from lepton_runtime.registry.references import ModelReference, validate_alias, validate_model_name

ALIASES_FILE = "aliases.json"
LOCK_FILE = ".lock"
STAGING_DIR = ".staging"
# The alias a bare model name resolves to, when it is set.
DEFAULT_ALIAS = "production"
T = TypeVar("T")


@dataclass(frozen=True)
class ModelVersion:
    """One published version: its name, number, directory and manifest."""

    name: str
    version: int
    path: Path
    manifest: Manifest

    @property
    def reference(self) -> str:
        """The exact reference of this version, ``name@version``."""
        return f"{self.name}@{self.version}"

    def verify(self, files: list[str] | None = None) -> None:
        """Check ``files`` (default: all in the manifest) against their sha256; raise naming each bad one."""
        wanted = files if files is not None else sorted(self.manifest.files)
        problems = []
        for relative in wanted:
            entry = self.manifest.files.get(relative)
            path = self.path / relative
            if entry is None:
                problems.append(f"{relative}: not listed in the manifest")
            elif not path.is_file():
                problems.append(f"{relative}: missing")
            elif not entry.matches(path):
                problems.append(f"{relative}: sha256 differs from the manifest (file changed or corrupt)")
        if problems:
            raise ModelIntegrityError(
                f"model {self.reference} at {self.path} failed verification: "
                + "; ".join(problems)
                + ". Re-publish the version (lepton export) or delete it; do not load it."
            )


class StagedVersion:
    """A version being written inside the registry; ``commit`` makes it visible in one rename."""

    def __init__(self, registry: ModelRegistry, name: str, path: Path, owner: str = DEFAULT_TENANT) -> None:
        self.registry = registry
        self.name = name
        self.path = path
        self.owner = owner  # the tenant publishing it: the name's owner, or the one claiming a new name
        self.committed: ModelVersion | None = None

    def commit(self, manifest: Manifest) -> ModelVersion:
        """Hash every file, number the version, write the manifest last and publish it atomically."""
        file_entries = {
            str(path.relative_to(self.path)): FileEntry(sha256=sha256_file(path), size_bytes=path.stat().st_size)
            for path in sorted(self.path.rglob("*"))
            if path.is_file() and path.name != MANIFEST_FILE
        }
        manifest = manifest.model_copy(
            update={
                "name": self.name,
                "files": file_entries,
                "content_sha256": content_sha256({k: v.sha256 for k, v in file_entries.items()}),
            }
        )
        self.registry._claim_owner(self.name, self.owner)
        self.committed = self.registry._publish_staged(self, manifest)
        return self.committed


class ModelRegistry:
    """Versions and aliases of models under one root directory (``LEPTON_MODEL_DIR``)."""

    # Whether reads cross a network (an object store): readers then keep what aliases resolved to (see notices.py).
    remote = False
    # Why the object store could not be reached at the last try (None: it could, or there is none).
    store_error: str | None = None

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._loaded: dict[tuple[str, int], tuple[tuple[int, int, int], ModelVersion]] = {}
        # told the model's name after each alias move (registry/notices.py: the fleet hears of it through Redis)
        self.on_alias_move: Callable[[str], None] | None = None
        # the tenant that versions published through this registry belong to (`publishing_as` changes it for a while)
        self.publisher = DEFAULT_TENANT
        self._owners_read: dict[str, tuple[tuple[int, int, int], ModelOwner]] = {}  # name -> (file signature, owner)

    @contextlib.contextmanager
    def publishing_as(self, tenant: str) -> Iterator[None]:
        """Publish as ``tenant`` inside the block (a training worker runs one tenant's run at a time)."""
        before, self.publisher = self.publisher, tenant
        try:
            yield
        finally:
            self.publisher = before

    # -- publishing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def begin_publish(self, name: str) -> Iterator[StagedVersion]:
        """Give a private directory to write a version into; it is removed unless committed. The tenant publishing
        (``publisher``) must own the name or claim it new: ForbiddenError at once, and again at commit."""
        validate_model_name(name)
        owner = self.publisher
        check_publisher(name, self.owner(name), owner)
        staging = self._staging_dir(name) / uuid.uuid4().hex
        staging.mkdir(parents=True)
        staged = StagedVersion(self, name, staging, owner)
        try:
            yield staged
        finally:
            if staged.committed is None:
                shutil.rmtree(staging, ignore_errors=True)

    # -- reading ------------------------------------------------------------------------------
    @property
    def location(self) -> str:
        """Where the versions are, for messages (an absolute directory here: a relative LEPTON_MODEL_DIR depends on
        the directory a command runs in; a bucket URL for an object store)."""
        return str(self.root.resolve())

    def local_copy(self, version: ModelVersion) -> ModelVersion:
        """``version`` with its files on this host's disk (here they are already: the registry is a directory)."""
        return version

    def cache_bytes(self) -> int | None:
        """What this host's copies take on disk (None: there are none apart from the registry itself)."""
        return None

    def release_local_copy(self, reference: str) -> None:
        """This process no longer uses its copy of ``reference`` (an engine evicted): the copy may be evicted too."""

    def discard_local_copy(self, version: ModelVersion) -> bool:
        """Drop this host's copy of ``version`` (one that failed verification) so that ``local_copy`` fetches it again;
        False where there is no copy apart from the registry itself (nothing to fetch again)."""
        return False

    def list_models(self) -> list[str]:
        """Names of models that have at least one finished version."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._version_numbers(p.name))

    def versions(self, name: str) -> list[ModelVersion]:
        """Every finished version of ``name``, oldest first."""
        validate_model_name(name)
        return [self._load(name, number) for number in sorted(self._version_numbers(name))]

    def aliases(self, name: str) -> dict[str, int]:
        """Alias -> version number for ``name``."""
        validate_model_name(name)
        return {alias: entry["version"] for alias, entry in self._read_aliases(name).items()}

    def resolve(self, reference: str | ModelReference) -> ModelVersion:
        """Find the version a reference names: an exact version, an alias, or (bare name) production else latest."""
        ref = reference if isinstance(reference, ModelReference) else ModelReference.parse(reference)
        numbers = self._version_numbers(ref.name)
        if not numbers:
            known = ", ".join(self.list_models()) or "none"
            raise ModelNotFoundError(
                f"model {ref.name!r} has no published version under {self.location} (published models: {known});"
                " publish one with 'lepton export CHECKPOINT --name NAME', or point LEPTON_MODEL_DIR (or"
                " LEPTON_MODEL_STORE) at the registry that has it"
            )
        if ref.version is not None:
            if ref.version not in numbers:
                raise ModelNotFoundError(
                    f"model {ref.name!r} has no version {ref.version} (versions: {sorted(numbers)})"
                )
            return self._load(ref.name, ref.version)
        aliases = self.aliases(ref.name)
        if ref.alias is not None:
            if ref.alias not in aliases:
                raise ModelNotFoundError(
                    f"model {ref.name!r} has no alias {ref.alias!r} (aliases: {_listed(aliases)});"
                    f" set it with 'lepton models promote {ref.name}@VERSION --alias {ref.alias}'"
                )
            return self._load(ref.name, aliases[ref.alias])
        return self._load(ref.name, aliases.get(DEFAULT_ALIAS, max(numbers)))

    def verify(self, reference: str | ModelReference) -> ModelVersion:
        """Resolve a reference and check every file against the manifest; raise ModelIntegrityError if any differs."""
        version = self.resolve(reference)
        version.verify()
        return version

    # -- aliases ------------------------------------------------------------------------------
    def promote(self, reference: str | ModelReference, alias: str = DEFAULT_ALIAS) -> ModelVersion:
        """Point ``alias`` at the version ``reference`` names; the previous target is kept for rollback."""
        validate_alias(alias)
        version = self.resolve(reference)

        def move(aliases: dict[str, Any]) -> None:
            entry = aliases.get(alias, {"version": None, "history": []})
            if entry["version"] not in (None, version.version):
                entry["history"].append(entry["version"])
            entry["version"] = version.version
            entry["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            aliases[alias] = entry

        self._move_aliases(version.name, move)
        return version

    def rollback(self, name: str, alias: str = DEFAULT_ALIAS) -> ModelVersion:
        """Point ``alias`` back at the version it named before its last move."""
        validate_alias(alias)
        validate_model_name(name)

        def move(aliases: dict[str, Any]) -> int:
            entry = aliases.get(alias)
            if not entry or not entry["history"]:
                raise ModelStateError(
                    f"alias {name}@{alias} has no earlier version to roll back to;"
                    f" promote one explicitly with 'lepton models promote {name}@VERSION --alias {alias}'"
                )
            entry["version"] = entry["history"].pop()
            entry["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            return int(entry["version"])

        return self._load(name, self._move_aliases(name, move))

    def delete(self, reference: str | ModelReference, *, force: bool = False) -> ModelVersion:
        """Remove one version; refused while an alias points at it, unless ``force`` (which drops those aliases)."""
        version = self.resolve(reference)
        with self._locked(version.name):
            aliases = self._read_aliases(version.name)
            release_aliases(aliases, version, force=force)
            self._write_aliases(version.name, aliases)
            trash = version.path.parent / STAGING_DIR / f"deleted-{version.version}-{uuid.uuid4().hex}"
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.rename(version.path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        self._alias_moved(version.name)
        return version

    # -- owners -------------------------------------------------------------------------------
    def owner(self, name: str) -> ModelOwner | None:
        """The tenant ``name`` belongs to (registry/owners.py); None for a name never published."""
        recorded = self._read_owner(name)
        if recorded is not None:
            return recorded
        return LEGACY_OWNER if self._version_numbers(name) else None

    def share(self, name: str, shared: bool) -> ModelOwner:
        """Let every tenant run ``name`` (``shared``), or only its owner; the caller checked who may."""
        owner = self.owner(name)
        if owner is None:
            raise ModelNotFoundError(f"no model {name!r} in {self.location}; see `lepton models list`")
        owner = ModelOwner(owner.tenant, shared)
        self._write_owner(name, owner)
        return owner

    def _claim_owner(self, name: str, tenant: str) -> None:
        """Make ``tenant`` the owner of a new name (the first publisher wins a race), or check that it owns it."""
        owner = self._read_owner(name)
        if owner is None:
            wanted = LEGACY_OWNER if self._version_numbers(name) else ModelOwner(tenant)
            owner = wanted if self._create_owner(name, wanted) else self._read_owner(name)
        check_publisher(name, owner, tenant)

    def _read_owner(self, name: str) -> ModelOwner | None:
        """The owner record of ``name``, parsed once per file (producers check it per request)."""
        path = self.root / name / OWNER_FILE
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cached = self._owners_read.get(name)
        if cached is not None and cached[0] == signature:
            return cached[1]
        owner = ModelOwner.from_json(path.read_bytes())
        self._owners_read[name] = (signature, owner)
        return owner

    def _create_owner(self, name: str, owner: ModelOwner) -> bool:
        """Write the owner record unless one exists (a hard link of a complete file: never half written)."""
        path = self.root / name / OWNER_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._written_aside(path, owner.to_json())
        try:
            os.link(temporary, path)
            _fsync_dir(path.parent)
            return True
        except FileExistsError:
            return False
        finally:
            temporary.unlink()

    def _write_owner(self, name: str, owner: ModelOwner) -> None:
        path = self.root / name / OWNER_FILE
        os.replace(self._written_aside(path, owner.to_json()), path)
        _fsync_dir(path.parent)

    @staticmethod
    def _written_aside(path: Path, text: str) -> Path:
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        temporary.write_text(text, encoding="utf-8")
        _fsync_file(temporary)
        return temporary

    # -- internals ----------------------------------------------------------------------------
    def _publish_staged(self, staged: StagedVersion, manifest: Manifest) -> ModelVersion:
        """Number the staged version, write its manifest last and make it visible in one rename."""
        for relative in manifest.files:
            _fsync_file(staged.path / relative)
        with self._locked(staged.name):
            version = max(self._version_numbers(staged.name), default=0) + 1
            manifest = manifest.model_copy(update={"version": version})
            _fsync_file(manifest.write(staged.path))
            final = self.root / staged.name / str(version)
            os.rename(staged.path, final)
            _fsync_dir(final.parent)
        return ModelVersion(staged.name, version, final, manifest)

    def _move_aliases(self, name: str, move: Callable[[dict[str, Any]], T]) -> T:
        """Apply ``move`` to ``name``'s alias table (alias -> {"version", "history", "updated_at"}) in place, as one
        atomic step against other movers: under the model's file lock, written by one rename."""
        with self._locked(name):
            aliases = self._read_aliases(name)
            result = move(aliases)
            self._write_aliases(name, aliases)
        self._alias_moved(name)
        return result

    def _alias_moved(self, name: str) -> None:
        if self.on_alias_move is not None:
            self.on_alias_move(name)

    def _staging_dir(self, name: str) -> Path:
        """Where versions of ``name`` are written before they are published (the same file system: one rename)."""
        return self.root / name / STAGING_DIR

    def _version_numbers(self, name: str) -> list[int]:
        directory = self.root / name
        if not directory.is_dir():
            return []
        return [int(p.name) for p in directory.iterdir() if p.name.isdigit() and (p / MANIFEST_FILE).is_file()]

    def _load(self, name: str, number: int) -> ModelVersion:
        """The version ``name@number``; its manifest is parsed once per file (a producer resolves per request)."""
        path = self.root / name / str(number)
        try:
            stat = (path / MANIFEST_FILE).stat()
        except FileNotFoundError:
            raise ModelNotFoundError(f"model {name}@{number} has no manifest at {path}") from None
        # a deleted and re-published number is a new file: inode, mtime and size tell it apart
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cached = self._loaded.get((name, number))
        if cached is not None and cached[0] == signature:
            return cached[1]
        version = ModelVersion(name, number, path, Manifest.read(path))
        self._loaded[(name, number)] = (signature, version)
        return version

    def _read_aliases(self, name: str) -> dict[str, Any]:
        path = self.root / name / ALIASES_FILE
        if not path.is_file():
            return {}
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def _write_aliases(self, name: str, aliases: dict[str, Any]) -> None:
        path = self.root / name / ALIASES_FILE
        os.replace(self._written_aside(path, json.dumps(aliases, indent=2, sort_keys=True) + "\n"), path)
        _fsync_dir(path.parent)

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def release_aliases(aliases: dict[str, Any], version: ModelVersion, *, force: bool) -> None:
    """Take ``version`` out of an alias table before it is deleted: refused while an alias points at it, unless
    ``force`` (which drops those aliases); it leaves every alias's history."""
    pointing = sorted(a for a, e in aliases.items() if e["version"] == version.version)
    if pointing and not force:
        raise ModelStateError(
            f"{version.reference} is the target of alias(es) {', '.join(pointing)};"
            " promote another version first, or pass --force to drop those aliases"
        )
    for alias in pointing:
        del aliases[alias]
    for entry in aliases.values():
        entry["history"] = [v for v in entry["history"] if v != version.version]


def _fsync_file(path: Path) -> None:
    with path.open("rb") as stream:
        os.fsync(stream.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _listed(aliases: dict[str, int]) -> str:
    """``production -> 3, staging -> 4`` for messages (``none`` when there is none)."""
    return ", ".join(f"{alias} -> {version}" for alias, version in sorted(aliases.items())) or "none"
