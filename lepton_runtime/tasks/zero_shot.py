"""Zero-shot classification: texts and candidate labels (names or short descriptions) give ranked labels with scores,
from an embedding model and no training: useful on day one, before anyone has labelled data.

Each label is written into a sentence by a template (``{}`` stands for the label, its underscores and hyphens read
as spaces: ``card_arrival`` is "card arrival") and embedded by the same model as the texts; a text's label is the
one whose sentence embedding is nearest (cosine), its scores a softmax over the cosines times ``COSINE_SCALE``.
The labels' vectors are kept per model version, labels and template, so a bulk job embeds them once per worker.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lepton_runtime.errors import InputIssue, InvalidInputError
from lepton_runtime.prediction import Embedding, Prediction, Provenance
from lepton_runtime.task_names import EMBEDDING
from lepton_runtime.tasks.classification import ClassificationSpec
from lepton_runtime.tasks.spec import Option

if TYPE_CHECKING:
    from lepton_runtime.inference.engine import Engine

ZERO_SHOT = "zero-shot-classification"
# The default template, chosen from measurements on SST-2 and BANKING77 (docs/guide/zero-shot.md)
DEFAULT_TEMPLATE = "A message about {}."
MAX_LABELS = 256
MAX_LABEL_CHARS = 200
MAX_TEMPLATE_CHARS = 500
# Cosines of MiniLM sentence embeddings spread over a few tenths: scaled so that the scores separate
COSINE_SCALE = 20.0
# Label sets whose vectors a worker process keeps (least recently used first out)
CACHED_LABEL_SETS = 64
_WORD_SEPARATORS = re.compile(r"[_\-]+")


def label_sentence(label: str, template: str) -> str:
    """What is embedded for ``label``: the template with the label's words in place of ``{}``."""
    return template.replace("{}", _WORD_SEPARATORS.sub(" ", label).strip())


class ZeroShotSpec(ClassificationSpec):
    """Ranked candidate labels of each text from an embedding model; results and bulk rows are a classifier's."""

    name: ClassVar[str] = ZERO_SHOT
    model_task: ClassVar[str] = EMBEDDING
    command: ClassVar[str] = "zero-shot"
    summary: ClassVar[str] = "Classify texts into candidate labels with an embedding model, no training needed."
    route: ClassVar[str] = "/v1/zero-shot"
    options: ClassVar[tuple[Option, ...]] = (
        Option("labels", f"Candidate labels: names or short descriptions, 2 to {MAX_LABELS}.", multiple=True,
               required=True),
        Option("template", f"The sentence a label is put in, {{}} standing for it (default: {DEFAULT_TEMPLATE!r})."),
    )  # fmt: skip
    example_model: ClassVar[str] = "minilm"
    trainable: ClassVar[bool] = False  # it runs on an embedding model as it is
    example_params: ClassVar[Mapping[str, Any]] = {"labels": ["card problem", "question about fees", "lost card"]}

    def __init__(self) -> None:
        self._label_vectors: OrderedDict[tuple[str, str, tuple[str, ...], str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def check_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        params = super().check_params(params)
        labels, template = params.get("labels"), params.get("template") or DEFAULT_TEMPLATE
        if isinstance(labels, str) or not isinstance(labels, Sequence) or not 2 <= len(labels) <= MAX_LABELS:
            raise _invalid("labels", f"give 2 to {MAX_LABELS} candidate labels (got {_count(labels)})")
        for index, label in enumerate(labels):
            if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_CHARS:
                raise _invalid(f"labels[{index}]", f"a label is a non-empty string of at most {MAX_LABEL_CHARS} chars")
        if len(set(labels)) != len(labels):
            raise _invalid("labels", "each label once: two candidates are the same")
        if not isinstance(template, str) or "{}" not in template or len(template) > MAX_TEMPLATE_CHARS:
            raise _invalid("template", f"a string with {{}} where the label goes, at most {MAX_TEMPLATE_CHARS} chars")
        return {"labels": list(labels), "template": template}

    def finish(self, engine: Engine, results: list[Any], params: Mapping[str, Any]) -> list[Any]:
        labels, template = list(params["labels"]), str(params["template"])
        label_vectors = self._vectors_of(engine, labels, template)
        rows = [index for index, result in enumerate(results) if isinstance(result, Embedding)]
        if not rows:
            return results
        vectors = np.asarray([results[index].vector for index in rows], dtype=np.float32)
        cosines = vectors @ label_vectors.T
        scaled = np.exp((cosines - cosines.max(axis=1, keepdims=True)) * COSINE_SCALE)
        scores = scaled / scaled.sum(axis=1, keepdims=True)
        finished = list(results)
        for row, index in enumerate(rows):
            best = int(scores[row].argmax())
            finished[index] = Prediction(
                label=labels[best], score=float(scores[row, best]),
                scores={label: float(score) for label, score in zip(labels, scores[row], strict=True)},
                model=engine.provenance, truncated=results[index].truncated,
            )  # fmt: skip
        return finished

    def _vectors_of(self, engine: Engine, labels: list[str], template: str) -> np.ndarray:
        provenance: Provenance = engine.provenance
        key = (provenance.sha256, provenance.variant, tuple(labels), template)
        with self._lock:
            if key in self._label_vectors:
                self._label_vectors.move_to_end(key)
                return self._label_vectors[key]
        vectors = engine.embed([label_sentence(label, template) for label in labels])
        with self._lock:
            self._label_vectors[key] = vectors
            while len(self._label_vectors) > CACHED_LABEL_SETS:
                self._label_vectors.popitem(last=False)
        return vectors


def _invalid(field: str, problem: str) -> InvalidInputError:
    return InvalidInputError(f"{field}: {problem}", issues=[InputIssue(field, problem)])


def _count(labels: Any) -> str:
    return "a string" if isinstance(labels, str) else str(len(labels)) if isinstance(labels, Sequence) else "none"
