"""The Engine: loads one exported model and runs its task (classification, embeddings, entities) with ONNX Runtime,
fast and with provenance."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from lepton_runtime import constants
from lepton_runtime.errors import InvalidInputError, ModelNotFoundError
from lepton_runtime.inference.batching import (
    DEFAULT_CALL_COST_TOKENS,
    DEFAULT_CALL_COST_TOKENS_CUDA,
    PaddedBatch,
    pad_batch,
    plan_batches,
)
from lepton_runtime.inference.providers import Device, create_session, run_on_cuda
from lepton_runtime.inference.tasks import Classification, SentenceEmbedding, Task, TokenClassification, task_class
from lepton_runtime.inference.tokenization import TOKENIZER_FILE, EncodedText, TextEncoder
from lepton_runtime.inference.validation import (
    TextLimits,
    check_request,
    check_text,
    overflow_issue,
    raise_for_issues,
)
from lepton_runtime.machine import available_cores
from lepton_runtime.prediction import Entity, ItemError, Provenance
from lepton_runtime.registry.checksums import sha256_file
from lepton_runtime.registry.manifest import MANIFEST_FILE, Manifest
from lepton_runtime.registry.store import ModelRegistry, ModelVersion
from lepton_runtime.task_names import require_task
from lepton_runtime.tasks import task_spec

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
DEFAULT_ONNX_FILE = "model.onnx"
VariantChoice = Literal["auto", "fp32", "int8", "fp16"]


class EngineObserver(Protocol):
    """Told about each ONNX Runtime call and each request (monitoring implements it)."""

    def batch(self, rows: int, real_tokens: int, padded_tokens: int, seconds: float) -> None: ...

    def texts(self, predicted: int, invalid: int) -> None: ...

    def asked(self, task: str, texts: int) -> None: ...


@dataclass
class EngineStats:
    """Running totals of the work done; padding efficiency = real tokens / padded tokens."""

    texts: int = 0
    batches: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    inference_s: float = 0.0

    @property
    def padding_efficiency(self) -> float:
        return self.real_tokens / self.padded_tokens if self.padded_tokens else 1.0


@dataclass(frozen=True)
class EncodedRequest:
    """What ``preprocess`` returns and ``forward`` takes: encoded texts, and whether one text was given."""

    encoded: list[EncodedText]
    single: bool = False


@dataclass(frozen=True)
class LoadedModel:
    """The files and facts the engine runs from, whether from a registry version or a bare directory."""

    directory: Path
    onnx_file: str
    variant: str
    precision: str
    labels: list[str]
    max_sequence_length: int
    name: str
    version: int | None
    sha256: str
    task: str | None  # None: a bare directory, whose graph outputs say


class Engine:
    """Run an exported model on texts: sorted, token-budget batches on ONNX Runtime, then the model's task
    (``classify`` for a classifier, ``embed`` for an embedding model, ``entities`` for a token classifier;
    ``run`` for whichever it is).

    ``Engine(path)`` takes a registry version directory (verified against its manifest before
    load) or a bare directory with ``model.onnx``, ``tokenizer.json`` and ``config.json``;
    ``Engine.load("name@alias")`` resolves a registry reference. ``onnx_file`` runs another
    graph of a bare directory (the export gates use it before a version is published), and
    ``max_sequence_length`` the tokens per text it was exported for (a bare directory does not say).

    On CUDA, inputs and outputs are bound on the GPU (IO binding), batches are larger, and the next
    batch is padded (and the last one turned into predictions) while the GPU runs the current one.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        variant: VariantChoice = "auto",
        device: Device = "cpu",
        intra_op_threads: int = 0,
        max_batch_tokens: int | None = None,
        max_batch_size: int | None = None,
        max_items: int = constants.DEFAULT_MAX_ITEMS,
        max_text_chars: int = constants.DEFAULT_MAX_TEXT_CHARS,
        on_overflow: Literal["truncate", "error"] = "truncate",
        onnx_file: str | None = None,
        max_sequence_length: int | None = None,
        allow_spinning: bool = True,
        overlap_batches: bool | None = None,
        warm: bool = True,
    ) -> None:
        started = time.perf_counter()
        self.model = _open_model(Path(path), variant, device, onnx_file)
        self.device = device
        on_cuda = device == "cuda"
        # pad the next batch while the device runs this one: on by default where the device is a GPU
        self.overlap_batches = on_cuda if overlap_batches is None else overlap_batches
        self.max_batch_tokens = max_batch_tokens or (
            constants.DEFAULT_MAX_BATCH_TOKENS_CUDA
            if on_cuda
            else constants.DEFAULT_MAX_BATCH_TOKENS_PER_THREAD * (intra_op_threads or available_cores())
        )
        self.call_cost_tokens = DEFAULT_CALL_COST_TOKENS_CUDA if on_cuda else DEFAULT_CALL_COST_TOKENS
        self.max_batch_size = max_batch_size or (
            constants.DEFAULT_MAX_BATCH_SIZE_CUDA if on_cuda else constants.DEFAULT_MAX_BATCH_SIZE
        )
        max_tokens = max_sequence_length or self.model.max_sequence_length
        self.limits = TextLimits(max_items, max_text_chars, max_tokens, on_overflow)
        self.session = create_session(
            str(self.model.directory / self.model.onnx_file), device, intra_op_threads, allow_spinning
        )
        self.input_names = {node.name for node in self.session.get_inputs()}
        output_names = {node.name for node in self.session.get_outputs()}
        self.provenance = Provenance(
            model=self.model.name,
            version=self.model.version,
            sha256=self.model.sha256,
            variant=self.model.variant,
            precision=self.model.precision,
            provider=self.session.get_providers()[0],
        )
        self.task: Task = task_class(self.model.task or _task_of_outputs(self.session.get_outputs()))(
            self.model.labels, self.provenance
        )
        if self.task.output_name not in output_names:
            raise ModelNotFoundError(
                f"model {self.model.name} is recorded as a {self.task.name} model but its graph has no"
                f" {self.task.output_name!r} output (outputs: {sorted(output_names)}); export it again"
            )
        overlap = self.task.window_overlap
        self.encoder = TextEncoder(
            self.model.directory / TOKENIZER_FILE,
            max_tokens,
            window_stride=max(1, int(max_tokens * overlap)) if overlap else None,
            offsets=self.task.needs_offsets,
        )
        self.stats = EngineStats()
        self.observer: EngineObserver | None = None  # set after warm-up: the warm-up text is not work done
        if warm:
            self.run(["warm-up"])
            self.stats = EngineStats()
        self.load_time_s = time.perf_counter() - started

    @classmethod
    def load(
        cls,
        reference: str,
        *,
        registry: ModelRegistry | str | Path | None = None,
        **options: Any,
    ) -> Engine:
        """Resolve ``name``, ``name@version`` or ``name@alias`` in the registry and load that version.

        ``registry`` defaults to the settings' (LEPTON_MODEL_STORE, else LEPTON_MODEL_DIR or ``./models``).
        """
        if registry is None:
            from lepton_runtime.registry import open_registry
            from lepton_runtime.settings import load_settings

            registry = open_registry(load_settings())
        elif not isinstance(registry, ModelRegistry):
            registry = ModelRegistry(registry)
        return cls(registry.local_copy(registry.resolve(reference)).path, **options)

    # -- the fast path ---------------------------------------------------------------------------
    def classify(
        self,
        texts: Sequence[Any],
        *,
        errors: Literal["raise", "return"] = "raise",
        turn: Callable[[], AbstractContextManager[Any]] = nullcontext,
        max_batch_tokens: int | None = None,
    ) -> list[Any]:
        """Classify texts: one Prediction per text, in input order (see ``run`` for the options)."""
        self.require_task(Classification.name)
        return self.run(texts, errors=errors, turn=turn, max_batch_tokens=max_batch_tokens)

    def embed(self, texts: Sequence[Any]) -> np.ndarray:
        """Sentence embeddings: a float32 array with one row per text, in input order (unit length when the
        model normalises). Any invalid text raises one InvalidInputError naming every bad item."""
        self.require_task(SentenceEmbedding.name)
        return np.stack([result.vector for result in self.run(texts)]).astype(np.float32, copy=False)

    def entities(self, texts: Sequence[Any]) -> list[list[Entity]]:
        """Entities of each text, in input order: per text a list of Entity(start, end, label, score, text) with
        character offsets into that text. Any invalid text raises one InvalidInputError naming every bad item."""
        self.require_task(TokenClassification.name)
        return [result.entities for result in self.run(texts)]

    def infer(self, task: str, texts: Sequence[Any], **params: Any) -> list[Any]:
        """Any task of ``lepton_runtime.tasks`` this model can serve, by name: one result per text in input order
        (``engine.infer("zero-shot-classification", texts, labels=[...])`` on an embedding model). Any invalid text
        or parameter raises one InvalidInputError naming it."""
        spec = task_spec(task)
        self.require_task(spec.model_task)
        return spec.finish(self, self.run(texts), spec.check_params(params))

    @property
    def dimensions(self) -> int:
        """The width of one output row (an embedding's dimensions, or the number of labels)."""
        (output,) = [node for node in self.session.get_outputs() if node.name == self.task.output_name]
        width = output.shape[-1]
        return width if isinstance(width, int) else len(self.model.labels)

    def require_task(self, task: str) -> None:
        """Raise WrongTaskError unless this model does ``task``."""
        require_task(f"{self.provenance.model}@{self.provenance.version}", self.task.name, task)

    def run(
        self,
        texts: Sequence[Any],
        *,
        errors: Literal["raise", "return"] = "raise",
        turn: Callable[[], AbstractContextManager[Any]] = nullcontext,
        max_batch_tokens: int | None = None,
    ) -> list[Any]:
        """The model's task on texts (a Prediction, an Embedding or Entities per text), in input order.

        With ``errors="raise"`` (default) any invalid text raises one InvalidInputError naming
        every bad item; with ``errors="return"`` bad items become ItemError in their place and
        the others still run. Each ONNX Runtime batch runs inside ``turn()``: a worker
        process lets its interactive requests in between the batches of a bulk chunk that way.
        ``max_batch_tokens`` lowers the engine's token budget for this call (shorter batches).
        """
        items = check_request(texts, self.limits)
        issues = {i: issue for i, text in enumerate(items) if (issue := check_text(i, text, self.limits))}
        valid = [i for i in range(len(items)) if i not in issues]
        encoded = self.encoder.encode([items[i] for i in valid]) if valid else []
        if self.limits.on_overflow == "error":
            for i, item in zip(valid, encoded, strict=True):
                if item.truncated:
                    issues[i] = overflow_issue(i, self.limits)
        if issues and errors == "raise":
            raise_for_issues([issues[i] for i in sorted(issues)], len(items))
        keep = [(i, item) for i, item in zip(valid, encoded, strict=True) if i not in issues]
        predictions = self._predict([item for _, item in keep], turn, max_batch_tokens)
        results: list[Any] = [None] * len(items)
        for (i, _), prediction in zip(keep, predictions, strict=True):
            results[i] = prediction
        for i, issue in issues.items():
            results[i] = ItemError(i, InvalidInputError.code, str(issue))
        if self.observer is not None:
            self.observer.texts(len(predictions), len(issues))
        return results

    # -- the seed-style API ----------------------------------------------------------------------
    def preprocess(self, text: str | Sequence[str]) -> EncodedRequest:
        """Validate and tokenise one text (or a list) for ``forward``."""
        single = isinstance(text, str)
        items = check_request([text] if single else text, self.limits)
        issues = [issue for i, t in enumerate(items) if (issue := check_text(i, t, self.limits))]
        if issues:
            raise_for_issues(issues, len(items))
        return EncodedRequest(self.encoder.encode(items), single=single)

    def forward(self, request: EncodedRequest) -> dict[str, Any] | list[dict[str, Any]]:
        """Run the model on a preprocessed request: a dict per text (label, score and scores for a classifier,
        embedding for an embedding model), a list for many."""
        answers = [result.as_dict() for result in self._predict(request.encoded)]
        return answers[0] if request.single else answers

    # -- internals -------------------------------------------------------------------------------
    def _predict(
        self,
        encoded: list[EncodedText],
        turn: Callable[[], AbstractContextManager[Any]] = nullcontext,
        max_batch_tokens: int | None = None,
    ) -> list[Any]:
        if self.task.window_overlap is None:
            results = self._predict_rows(encoded, turn, max_batch_tokens)
        else:  # every window of every text is a row; the task puts each text's windows together
            rows = [window for item in encoded for window in (item, *item.windows)]
            window_results = iter(self._predict_rows(rows, turn, max_batch_tokens))
            results = [
                self.task.combine([next(window_results) for _ in range(1 + len(item.windows))]) for item in encoded
            ]
        self.stats.texts += len(encoded)
        return results

    def _predict_rows(
        self,
        encoded: list[EncodedText],
        turn: Callable[[], AbstractContextManager[Any]],
        max_batch_tokens: int | None,
    ) -> list[Any]:
        results: list[Any] = [None] * len(encoded)
        lengths = [len(item.ids) for item in encoded]
        budget = min(max_batch_tokens, self.max_batch_tokens) if max_batch_tokens else self.max_batch_tokens
        plans = plan_batches(lengths, budget, self.max_batch_size, self.call_cost_tokens)
        batches = ((rows, pad_batch([encoded[i] for i in rows])) for rows in plans)
        for rows, outputs in self._run_all(batches, overlap=self.overlap_batches and len(plans) > 1, turn=turn):
            for index, result in zip(rows, self.task.results(outputs, [encoded[i] for i in rows]), strict=True):
                results[index] = result
        return results

    def _run_all(
        self,
        batches: Iterator[tuple[np.ndarray, PaddedBatch]],
        *,
        overlap: bool,
        turn: Callable[[], AbstractContextManager[Any]] = nullcontext,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Logits of each batch in turn; with ``overlap`` the device runs one batch while this thread
        pads the next and post-processes the last (ONNX Runtime releases the GIL while it runs)."""
        if not overlap:
            for rows, batch in batches:
                yield rows, self._run_in_turn(batch, turn)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lepton-device") as device_thread:
            pending: tuple[np.ndarray, Future[np.ndarray]] | None = None
            for rows, batch in batches:
                running = (rows, device_thread.submit(self._run_in_turn, batch, turn))
                if pending is not None:
                    yield pending[0], pending[1].result()
                pending = running
            if pending is not None:
                yield pending[0], pending[1].result()

    def _run_in_turn(self, batch: PaddedBatch, turn: Callable[[], AbstractContextManager[Any]]) -> np.ndarray:
        with turn():
            return self._run(batch)

    def _run(self, batch: PaddedBatch) -> np.ndarray:
        arrays = {
            "input_ids": batch.input_ids,
            "attention_mask": batch.attention_mask,
            "token_type_ids": batch.token_type_ids,
        }
        feeds = {name: array for name, array in arrays.items() if name in self.input_names}
        started = time.perf_counter()
        output_name = self.task.output_name
        if self.device == "cuda":
            outputs = run_on_cuda(self.session, feeds, output_name)
        else:
            (outputs,) = self.session.run([output_name], feeds)
        seconds = time.perf_counter() - started
        self.stats.inference_s += seconds
        if self.observer is not None:
            self.observer.batch(len(batch.input_ids), batch.real_tokens, batch.padded_tokens, seconds)
        self.stats.batches += 1
        self.stats.real_tokens += batch.real_tokens
        self.stats.padded_tokens += batch.padded_tokens
        return np.asarray(outputs, dtype=np.float32)


def _task_of_outputs(outputs: list[Any]) -> str:
    """The task of a bare directory's graph, from its outputs (a manifest records it for registry versions):
    pooled vectors, logits per token (rank 3), or logits per text."""
    ranks = {node.name: len(node.shape) for node in outputs}
    if SentenceEmbedding.output_name in ranks:
        return SentenceEmbedding.name
    return TokenClassification.name if ranks.get(TokenClassification.output_name) == 3 else Classification.name


def choose_variant(manifest: Manifest, variant: VariantChoice, device: Device) -> str:
    """The variant to run: the one asked for, or (auto) the fastest verified one for the device."""
    if variant != "auto":
        if variant not in manifest.variants:
            raise ModelNotFoundError(
                f"model {manifest.name}@{manifest.version} has no {variant} variant"
                f" (variants: {sorted(manifest.variants)}); export it with --variant {variant}"
            )
        if not manifest.variants[variant].verified:
            logger.warning("loading unverified %s variant of %s@%s", variant, manifest.name, manifest.version)
        return variant
    preferred = "fp16" if device == "cuda" else "int8"
    info = manifest.variants.get(preferred)
    return preferred if info is not None and info.verified else "fp32"


def _open_model(path: Path, variant: VariantChoice, device: Device, onnx_file: str | None) -> LoadedModel:
    if (path / MANIFEST_FILE).is_file():
        manifest = Manifest.read(path)
        by_file = {info.file: name for name, info in manifest.variants.items()}
        if onnx_file is not None and onnx_file not in by_file:
            raise ModelNotFoundError(f"{onnx_file} is not a variant of {manifest.name}@{manifest.version}")
        chosen = by_file[onnx_file] if onnx_file else choose_variant(manifest, variant, device)
        info = manifest.variants[chosen]
        version = ModelVersion(manifest.name, manifest.version, path, manifest)
        version.verify([info.file, TOKENIZER_FILE])
        return LoadedModel(
            directory=path,
            onnx_file=info.file,
            variant=chosen,
            precision=info.precision,
            labels=manifest.labels,
            max_sequence_length=manifest.max_sequence_length,
            name=manifest.name,
            version=manifest.version,
            sha256=manifest.files[info.file].sha256,
            task=manifest.task,
        )
    return _open_bare_directory(path, variant, onnx_file or DEFAULT_ONNX_FILE)


def _open_bare_directory(path: Path, variant: VariantChoice, onnx_file: str) -> LoadedModel:
    """A directory of exported files without a manifest (not verified: nothing to verify against)."""
    missing = [f for f in (onnx_file, TOKENIZER_FILE, CONFIG_FILE) if not (path / f).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"{path} is neither a registry version (no {MANIFEST_FILE}) nor a model directory"
            f" (missing {', '.join(missing)}); pass a published reference or an exported directory"
        )
    config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    id2label = config.get("id2label") or {}
    labels = [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(len(id2label) or 2)]
    return LoadedModel(
        directory=path,
        onnx_file=onnx_file,
        variant="fp32" if variant == "auto" else variant,
        precision="fp32" if variant == "auto" else variant,
        labels=labels,
        max_sequence_length=min(int(config.get("max_position_embeddings", 512)), constants.DEFAULT_MAX_SEQUENCE_LENGTH),
        name=path.name,
        version=None,
        sha256=sha256_file(path / onnx_file),
        task=None,
    )
