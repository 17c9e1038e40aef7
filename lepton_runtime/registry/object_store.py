"""The model registry in an S3-compatible bucket, and the verified copy of each version a host loads.

Layout under ``s3://bucket/prefix/``::

    <name>/claims/<version>          created once per number (a conditional write): who numbered that version
    <name>/<version>/<files>         the version's files, uploaded first
    <name>/<version>/manifest.json   uploaded last: a version without it is not visible
    <name>/aliases/<move>.json       each alias move, numbered, created once, holding the whole alias table after it

Two publishers never get the same number: each creates ``claims/<n>`` with ``If-None-Match: *`` and the one that
loses tries n + 1. An alias move is a compare-and-swap the same way: the table after the move is created as move
m + 1 of the table read as move m; a mover that loses the create reads again and retries, so every move builds on
the one before it and the history stays whole. No lock service is needed: AWS S3, MinIO and Ceph honour
conditional writes (a Redis lock would tie `lepton export` to the queue, and a lost lease to a broken registry).
A publisher that dies leaves a gap in the numbers, never half a version; numbers are never reused.

Each host keeps the versions it loads under ``cache_dir/<name>/<version>-<content hash>/``: downloaded into a
private directory, every file checked against the manifest's sha256, then renamed into place, so a reader never
sees half a copy. One process of a host downloads a version while the others wait for it (a file lock per copy).

While the store cannot be reached, reads fall back to what the host has: its copies (with their manifests) and the
alias table it last read (``cache_dir/<name>/.aliases.json``); ``store_error`` says why, and the store is asked
again after STORE_RETRY_AFTER_S. A version the host has no copy of cannot load then (ModelStoreUnavailableError).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import botocore.exceptions
import s3fs

from lepton_runtime.errors import ModelIntegrityError, ModelNotFoundError, ModelStoreUnavailableError
from lepton_runtime.registry.checksums import HASH_CHUNK_BYTES, sha256_stream
from lepton_runtime.registry.manifest import MANIFEST_FILE, Manifest
from lepton_runtime.registry.owners import OWNER_FILE, ModelOwner
from lepton_runtime.registry.references import validate_model_name
from lepton_runtime.registry.store import ModelRegistry, ModelVersion, StagedVersion, T, release_aliases

logger = logging.getLogger(__name__)

STORE_SCHEME = "s3://"
LAST_KNOWN_ALIASES_FILE = ".aliases.json"
# After a failed request, reads use this host's copies for this long before the store is asked again.
STORE_RETRY_AFTER_S = 5.0
# Seconds to wait for a connection to the store, and tries of each request (botocore's, then s3fs's own): a store
# that is down answers from the host's copies within seconds, not after minutes of retries.
STORE_CONNECT_TIMEOUT_S = 3
STORE_ATTEMPTS = 2
# What says the store cannot be reached (a missing object is an answer, not one of these).
UNREACHABLE = (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)
CLAIMS = "claims"
ALIAS_MOVES = "aliases"
# Digits of an alias move's number in its key: keys sort as numbers do.
MOVE_DIGITS = 10
# Tries of a conditional write before giving up (each loss means another writer moved on meanwhile).
MAX_CONDITIONAL_TRIES = 1000
# A host reads a model's owner record again after this long (seconds): only sharing changes it.
OWNER_RECHECK_S = 5.0


class ObjectStoreRegistry(ModelRegistry):
    """Versions and aliases in ``s3://bucket/prefix`` (``LEPTON_MODEL_STORE``); versions load from ``cache_dir``.

    Credentials and region come from the standard AWS variables (``AWS_ACCESS_KEY_ID``, ...); ``endpoint_url`` names
    an S3-compatible server (MinIO, Ceph), else ``AWS_ENDPOINT_URL`` or AWS itself.
    """

    remote = True

    def __init__(
        self, url: str, cache_dir: str | Path, *, endpoint_url: str | None = None, cache_budget_bytes: int | None = None
    ) -> None:
        if not url.startswith(STORE_SCHEME) or not url[len(STORE_SCHEME) :].strip("/"):
            raise ValueError(f"LEPTON_MODEL_STORE: {url!r} is not s3://BUCKET[/PREFIX]")
        super().__init__(cache_dir)
        self.url = url.rstrip("/")
        self.base = self.url[len(STORE_SCHEME) :]
        # no listing cache: another host publishes and promotes while this one reads
        self.fs = s3fs.S3FileSystem(
            endpoint_url=endpoint_url, use_listings_cache=False, skip_instance_cache=True,
            config_kwargs={"connect_timeout": STORE_CONNECT_TIMEOUT_S, "retries": {"max_attempts": STORE_ATTEMPTS}},
        )  # fmt: skip
        self.fs.retries = STORE_ATTEMPTS
        # (name, number) -> manifest: a published manifest never changes (a number is never given twice)
        self._manifests: dict[tuple[str, int], Manifest] = {}
        self._last_known_aliases: dict[str, dict[str, Any]] = {}  # name -> the table last written to the cache
        self.cache_budget_bytes = cache_budget_bytes  # None: no bound
        self.downloads = 0  # versions this process downloaded (the others of the host use its copies)
        self._held: dict[str, IO[str]] = {}  # reference -> its in-use file, shared-locked while this process uses it
        self._ask_store_after = 0.0
        self._owners: dict[str, tuple[float, ModelOwner | None]] = {}  # name -> (when read, owner record)

    @property
    def location(self) -> str:
        return self.url

    # -- publishing ---------------------------------------------------------------------------
    def _staging_dir(self, name: str) -> Path:
        return self.root / ".staging" / name

    def _publish_staged(self, staged: StagedVersion, manifest: Manifest) -> ModelVersion:
        """Claim the next free number, upload the files, then the manifest; the staged files become this host's copy."""
        with self._store_needed(f"publish a version of {staged.name}"):
            return self._upload(staged, manifest)

    def _upload(self, staged: StagedVersion, manifest: Manifest) -> ModelVersion:
        number = self._claim_number(staged.name)
        manifest = manifest.model_copy(update={"version": number})
        for relative in manifest.files:
            self.fs.put_file(str(staged.path / relative), self._key(staged.name, str(number), relative))
        manifest.write(staged.path)
        self.fs.pipe_file(
            self._key(staged.name, str(number), MANIFEST_FILE), (staged.path / MANIFEST_FILE).read_bytes()
        )
        copy = self._copy_dir(staged.name, number, manifest)
        copy.parent.mkdir(parents=True, exist_ok=True)
        if copy.exists():  # a copy of a number deleted and claimed again cannot be: numbers are never reused
            shutil.rmtree(copy)
        staged.path.rename(copy)
        return ModelVersion(staged.name, number, copy, manifest)

    def _claim_number(self, name: str) -> int:
        claims = [
            int(key.rsplit("/", 1)[1]) for key in self._list(self._key(name, CLAIMS)) if key.rsplit("/", 1)[1].isdigit()
        ]
        number = max(claims, default=0) + 1
        claim = json.dumps({"owner": uuid.uuid4().hex, "at": datetime.now(UTC).isoformat(timespec="seconds")})
        for _ in range(MAX_CONDITIONAL_TRIES):
            try:
                self.fs.pipe_file(self._key(name, CLAIMS, str(number)), claim.encode(), mode="create")
                return number
            except FileExistsError:
                number += 1  # another publisher took it meanwhile
        raise RuntimeError(f"could not claim a version number for {name} after {MAX_CONDITIONAL_TRIES} tries")

    # -- reading ------------------------------------------------------------------------------
    def list_models(self) -> list[str]:
        names = self._from_store(
            lambda: [key.rsplit("/", 1)[1] for key in self._list(self.base)],
            lambda: [path.name for path in self.root.glob("[!.]*") if path.is_dir()],  # the host's copies
        )
        return sorted(name for name in names if self._version_numbers(name))

    def resolve(self, reference: Any) -> ModelVersion:
        """As the directory registry resolves; while the store cannot be reached, among this host's copies and the
        aliases it read last (a version it has no copy of: ModelStoreUnavailableError)."""
        try:
            return super().resolve(reference)
        except ModelNotFoundError as error:
            if self.store_error is None:
                raise
            raise ModelStoreUnavailableError(
                f"{reference} cannot be resolved: the store {self.url} cannot be reached ({self.store_error}) and "
                f"this host has no copy of it; it loads when the store answers again (check the store and the network)"
            ) from error

    def verify(self, reference: Any) -> ModelVersion:
        """Check every object of the version in the store against the manifest (streamed and hashed here)."""
        version = self.resolve(reference)
        with self._store_needed(f"verify {version.reference}"):
            return self._verify_objects(version)

    def _verify_objects(self, version: ModelVersion) -> ModelVersion:
        problems = []
        for relative, entry in sorted(version.manifest.files.items()):
            key = self._key(version.name, str(version.version), relative)
            try:
                with self.fs.open(key, "rb", block_size=HASH_CHUNK_BYTES) as stream:
                    digest, size = sha256_stream(stream)
            except FileNotFoundError:
                problems.append(f"{relative}: missing")
                continue
            if size != entry.size_bytes or digest != entry.sha256:
                problems.append(f"{relative}: sha256 differs from the manifest (object changed or corrupt)")
        if problems:
            raise ModelIntegrityError(
                f"model {version.reference} in {self.url} failed verification: " + "; ".join(problems)
                + ". Re-publish the version (lepton export) or delete it; do not load it."
            )  # fmt: skip
        return version

    def local_copy(self, version: ModelVersion) -> ModelVersion:
        """``version`` with its files in this host's cache: downloaded once (the host's other processes wait), each
        file checked against the manifest before the copy becomes visible. The copy is held in use by this process
        until ``release_local_copy``; copies in use by no process go first, least recently used first, when the
        cache is over its budget."""
        with self._copy_lock(version.path):
            if not (version.path / MANIFEST_FILE).is_file():
                try:
                    self._download(version)
                except UNREACHABLE as error:
                    self._unreachable(error)
                    raise ModelStoreUnavailableError(
                        f"model {version.reference} is not on this host and the store {self.url} cannot be reached "
                        f"({error}); it loads when the store answers again (check the store and the network)"
                    ) from error
            self._hold(version)
            version.path.touch()  # its last use, for the eviction order
        self._keep_within_budget()
        return version

    def release_local_copy(self, reference: str) -> None:
        held = self._held.pop(reference, None)
        if held is not None:
            held.close()  # its shared lock goes with it

    def discard_local_copy(self, version: ModelVersion) -> bool:
        self.release_local_copy(version.reference)
        with self._copy_lock(version.path):
            shutil.rmtree(version.path, ignore_errors=True)
        return True

    def cache_bytes(self) -> int:
        return sum(size for _, size in self.copies())

    def copies(self) -> list[tuple[Path, int]]:
        """This host's copies (directory, bytes), least recently used first."""
        found = [path for path in self.root.glob("*/[0-9]*-*") if path.is_dir()]
        found.sort(key=lambda path: path.stat().st_mtime)
        return [(path, sum(file.stat().st_size for file in path.rglob("*") if file.is_file())) for path in found]

    # -- deleting -----------------------------------------------------------------------------
    def delete(self, reference: Any, *, force: bool = False) -> ModelVersion:
        """Refused while an alias points at the version (unless ``force``); the manifest goes first, so readers stop
        seeing the version before its files go. Its number stays claimed: it is never given again."""
        version = self.resolve(reference)
        self._move_aliases(version.name, lambda aliases: release_aliases(aliases, version, force=force))
        prefix = self._key(version.name, str(version.version))
        with self._store_needed(f"delete {version.reference}"):
            self.fs.rm_file(f"{prefix}/{MANIFEST_FILE}")
            self.fs.rm(prefix, recursive=True)
        shutil.rmtree(version.path, ignore_errors=True)
        return version

    # -- internals ----------------------------------------------------------------------------
    def _hold(self, version: ModelVersion) -> None:
        """A shared lock on the copy's in-use file while this process uses it; eviction takes copies nobody holds."""
        if version.reference in self._held:
            return
        stream = _in_use_file(version.path).open("a")
        fcntl.flock(stream, fcntl.LOCK_SH)
        self._held[version.reference] = stream

    def _keep_within_budget(self) -> None:
        if self.cache_budget_bytes is None:
            return
        copies = self.copies()
        total = sum(size for _, size in copies)
        for path, size in copies:
            if total <= self.cache_budget_bytes:
                return
            with (
                self._copy_lock(path),  # not while a process of the host fills or takes it
                contextlib.suppress(BlockingIOError),
                _in_use_file(path).open("a") as in_use,
            ):
                fcntl.flock(in_use, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody uses it (else BlockingIOError: kept)
                shutil.rmtree(path, ignore_errors=True)
                total -= size
                logger.info("evicted the copy %s (%.0f MB) to keep the cache within its budget", path, size / 1e6)
        if total > self.cache_budget_bytes:
            logger.warning(
                "the model cache %s holds %.0f MB, over its budget of %.0f MB, in copies in use (raise "
                "LEPTON_MODEL_CACHE_BUDGET_MB or load fewer versions per host)", self.root, total / 1e6,
                self.cache_budget_bytes / 1e6,
            )  # fmt: skip

    def _from_store(self, read: Callable[[], T], fallback: Callable[[], T]) -> T:
        """``read()`` from the store; ``fallback()`` (this host's copies) while it cannot be reached."""
        if time.monotonic() < self._ask_store_after:
            return fallback()
        try:
            result = read()
        except UNREACHABLE as error:
            self._unreachable(error)
            return fallback()
        if self.store_error is not None:
            logger.info("model store %s answers again", self.url)
            self.store_error = None
        return result

    @contextlib.contextmanager
    def _store_needed(self, what: str) -> Iterator[None]:
        """Work only the store can do (publishing, moving aliases, deleting, verifying its objects): an unreachable
        store fails it with ModelStoreUnavailableError, saying what was not done."""
        try:
            yield
        except UNREACHABLE as error:
            self._unreachable(error)
            raise ModelStoreUnavailableError(
                f"could not {what}: the store {self.url} cannot be reached ({error}); try again when it answers "
                "(check the store and the network)"
            ) from error

    def _unreachable(self, error: Exception) -> None:
        if self.store_error is None:
            logger.warning("model store %s cannot be reached (%s); serving this host's copies", self.url, error)
        self.store_error = str(error)
        self._ask_store_after = time.monotonic() + STORE_RETRY_AFTER_S

    def _key(self, *parts: str) -> str:
        return "/".join((self.base, *parts))

    def _list(self, prefix: str) -> list[str]:
        try:
            return [str(key) for key in self.fs.ls(prefix, detail=False)]
        except FileNotFoundError:
            return []

    def _version_numbers(self, name: str) -> list[int]:
        """Every finished version of ``name`` (one listing); while the store cannot be reached, those this host has
        copies of."""
        validate_model_name(name)
        return sorted(self._from_store(lambda: self._listed_numbers(name), lambda: list(self._copies_of(name))))

    def _listed_numbers(self, name: str) -> list[int]:
        try:
            found = self.fs.find(self._key(name), maxdepth=2)
        except FileNotFoundError:
            return []
        parts = [str(key).rsplit("/", 2) for key in found]
        return [int(part[1]) for part in parts if len(part) == 3 and part[2] == MANIFEST_FILE and part[1].isdigit()]

    def _copies_of(self, name: str) -> dict[int, Path]:
        """Version number -> this host's complete copy of it (the newest per number)."""
        copies = sorted(
            (path.parent for path in (self.root / name).glob(f"[0-9]*-*/{MANIFEST_FILE}")),
            key=lambda path: path.stat().st_mtime,
        )
        return {int(path.name.split("-")[0]): path for path in copies}

    def _load(self, name: str, number: int) -> ModelVersion:
        """The version ``name@number`` with its manifest (read from the store once; from this host's copy while the
        store cannot be reached). Callers have listed the number: it is published."""
        manifest = self._manifests.get((name, number))
        if manifest is None:

            def copied() -> Manifest:
                if (copy := self._copies_of(name).get(number)) is None:
                    raise ModelNotFoundError(f"model {name}@{number} has no copy on this host and the store is down")
                return Manifest.read(copy)

            try:
                manifest = self._from_store(
                    lambda: Manifest.model_validate_json(self.fs.cat_file(self._key(name, str(number), MANIFEST_FILE))),
                    copied,
                )
            except FileNotFoundError:
                raise ModelNotFoundError(f"model {name}@{number} has no manifest in {self.url}") from None
            self._manifests[(name, number)] = manifest
        return ModelVersion(name, number, self._copy_dir(name, number, manifest), manifest)

    def _read_aliases(self, name: str) -> dict[str, Any]:
        return self._alias_table(name)[1]

    def _alias_table(self, name: str) -> tuple[int, dict[str, Any]]:
        """(the last move's number, the alias table after it); (0, {}) before any move. While the store cannot be
        reached: the table this host read last."""
        last_known = self.root / name / LAST_KNOWN_ALIASES_FILE

        def remembered() -> tuple[int, dict[str, Any]]:
            return (-1, json.loads(last_known.read_text())) if last_known.is_file() else (-1, {})

        last, table = self._from_store(lambda: self._stored_alias_table(name), remembered)
        if last >= 0 and self._last_known_aliases.get(name) != table:
            self._last_known_aliases[name] = table
            last_known.parent.mkdir(parents=True, exist_ok=True)
            temporary = last_known.with_name(f"{LAST_KNOWN_ALIASES_FILE}.{uuid.uuid4().hex}")
            temporary.write_text(json.dumps(table, sort_keys=True))
            temporary.replace(last_known)
        return last, table

    def _stored_alias_table(self, name: str) -> tuple[int, dict[str, Any]]:
        moves = [key.rsplit("/", 1)[1] for key in self._list(self._key(name, ALIAS_MOVES))]
        numbers = [int(move.removesuffix(".json")) for move in moves if move.removesuffix(".json").isdigit()]
        if not numbers:
            return 0, {}
        last = max(numbers)
        table: dict[str, Any] = json.loads(self.fs.cat_file(self._move_key(name, last)))
        return last, table

    def _move_aliases(self, name: str, move: Callable[[dict[str, Any]], T]) -> T:
        """Compare-and-swap: the table after ``move`` is created as the move after the one it was read from; on a
        lost race, read again and apply ``move`` to the newer table."""
        with self._store_needed(f"move an alias of {name}"):
            result = self._swap_aliases(name, move)
        self._alias_moved(name)
        return result

    def _swap_aliases(self, name: str, move: Callable[[dict[str, Any]], T]) -> T:
        for _ in range(MAX_CONDITIONAL_TRIES):
            last, aliases = self._stored_alias_table(name)
            result = move(aliases)
            body = json.dumps(aliases, indent=2, sort_keys=True).encode()
            try:
                self.fs.pipe_file(self._move_key(name, last + 1), body, mode="create")
                return result
            except FileExistsError:
                continue  # another process moved an alias of this model meanwhile
        raise RuntimeError(f"could not move the aliases of {name} after {MAX_CONDITIONAL_TRIES} tries")

    # -- owners: <base>/<name>/owner.json, created once (a conditional create); a host keeps the last one read ----
    def _read_owner(self, name: str) -> ModelOwner | None:
        cached = self._owners.get(name)
        if cached is not None and time.monotonic() - cached[0] < OWNER_RECHECK_S:
            return cached[1]
        copy = self.root / name / OWNER_FILE

        def stored() -> ModelOwner | None:
            try:
                owner = ModelOwner.from_json(self.fs.cat_file(self._key(name, OWNER_FILE)))
            except FileNotFoundError:
                return None
            if not copy.is_file() or ModelOwner.from_json(copy.read_bytes()) != owner:
                copy.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self._written_aside(copy, owner.to_json()), copy)
            return owner

        owner = self._from_store(stored, lambda: ModelOwner.from_json(copy.read_bytes()) if copy.is_file() else None)
        self._owners[name] = (time.monotonic(), owner)
        return owner

    def _create_owner(self, name: str, owner: ModelOwner) -> bool:
        self._owners.pop(name, None)
        with self._store_needed(f"record the owner of {name}"):
            try:
                self.fs.pipe_file(self._key(name, OWNER_FILE), owner.to_json().encode(), mode="create")
            except FileExistsError:
                return False
        return True

    def _write_owner(self, name: str, owner: ModelOwner) -> None:
        self._owners.pop(name, None)
        with self._store_needed(f"change the owner record of {name}"):
            self.fs.pipe_file(self._key(name, OWNER_FILE), owner.to_json().encode())

    def _move_key(self, name: str, move: int) -> str:
        return self._key(name, ALIAS_MOVES, f"{move:0{MOVE_DIGITS}d}.json")

    def _copy_dir(self, name: str, number: int, manifest: Manifest) -> Path:
        return self.root / name / f"{number}-{manifest.content_sha256[:16]}"

    @contextlib.contextmanager
    def _copy_lock(self, copy: Path) -> Iterator[None]:
        lock_path = copy.parent / f".{copy.name}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _download(self, version: ModelVersion) -> None:
        partial = version.path.parent / f".partial-{uuid.uuid4().hex}"
        partial.mkdir(parents=True)
        try:
            for relative, entry in sorted(version.manifest.files.items()):
                target = partial / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(self._key(version.name, str(version.version), relative), str(target))
                if not entry.matches(target):
                    raise ModelIntegrityError(
                        f"model {version.reference}: {relative} downloaded from {self.url} differs from its manifest "
                        "(sha256); the object in the store is corrupt. Re-publish the version (lepton export) or "
                        "delete it"
                    )
            version.manifest.write(partial)
            partial.rename(version.path)
            self.downloads += 1
        finally:
            shutil.rmtree(partial, ignore_errors=True)


def _in_use_file(copy: Path) -> Path:
    return copy.parent / f".{copy.name}.in-use"
