"""The embedding task's export: a sentence-transformers checkpoint as one ONNX graph that pools and normalises, through
the one pipeline (export/pipeline.py) with its parity metric (cosine per text against PyTorch, ``RowCosine``) and
its int8 gate (cosine and nearest neighbours on real texts).

Mean pooling over the attention mask and L2 normalisation sit inside the graph, exactly as the checkpoint's
``modules.json`` defines them: every runtime then returns the same vectors, the engine does no arithmetic of
its own, and the parity gate covers the pooling too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.parity import RowCosine, row_cosines
from export.pipeline import VARIANT_FILES, ExportOptions, Graph, StagedGraph, add_int8, publish_graph
from export.quality import FLOAT_SLACK, GateResult
from lepton_runtime import constants
from lepton_runtime.errors import ExportError, InputIssue, InvalidInputError
from lepton_runtime.inference.engine import Engine
from lepton_runtime.inference.tasks import SentenceEmbedding
from lepton_runtime.labelled_data import read_labelled
from lepton_runtime.registry import ModelRegistry, ModelVersion
from lepton_runtime.registry.checksums import content_sha256, sha256_file
from lepton_runtime.training.pooled import MODULES_FILE, is_sentence_encoder, mean_pooled, normalizes

OUTPUT_NAME = SentenceEmbedding.output_name
EMBEDDING_VARIANTS = ("fp32", "int8")
# The files of a sentence-transformers checkpoint that decide its vectors (hashed into the provenance).
SOURCE_FILES = (
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)


@dataclass
class SentenceEncoder:
    """A loaded sentence-transformers checkpoint: the encoder with its pooling as one module, and its facts."""

    path: Path
    model: Any  # torch.nn.Module: (input_ids, attention_mask, token_type_ids) -> sentence_embedding
    architecture: str
    num_attention_heads: int
    hidden_size: int
    vocab_size: int
    max_sequence_length: int
    normalize: bool
    sha256: str


def load_sentence_encoder(path: Path) -> SentenceEncoder:
    """Load ``path`` (a sentence-transformers directory: ``modules.json``, a mean Pooling module, optionally
    Normalize) with eager attention, the graph ONNX Runtime's fusions recognise."""
    modules_file = path / MODULES_FILE
    if not is_sentence_encoder(path):
        raise ExportError(
            f"{path} is not a sentence-transformers checkpoint (no modules.json), so its pooling is unknown;"
            " export a sentence-transformers directory (e.g. the files of all-MiniLM-L6-v2) with --task embedding"
        )
    modules = {module["type"].rsplit(".", 1)[-1]: module for module in json.loads(modules_file.read_text())}
    pooling = modules.get("Pooling")
    pooling_config = json.loads((path / pooling["path"] / "config.json").read_text()) if pooling else {}
    if not pooling_config.get("pooling_mode_mean_tokens") or any(
        value
        for key, value in pooling_config.items()
        if key.startswith("pooling_mode_") and key != "pooling_mode_mean_tokens"
    ):
        raise ExportError(
            f"{path}: only mean pooling is exported (the pooling of all-MiniLM-L6-v2); this checkpoint's pooling"
            f" is {pooling_config or 'missing'}"
        )
    if not (path / "tokenizer.json").is_file():
        raise ExportError(f"{path} has no tokenizer.json (the fast tokenizer the engine loads)")
    import transformers
    from transformers import AutoModel

    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    encoder = AutoModel.from_pretrained(path, attn_implementation="eager")
    encoder.eval()
    normalize = normalizes(path)
    sentence_config_file = path / "sentence_bert_config.json"
    sentence_config = json.loads(sentence_config_file.read_text()) if sentence_config_file.is_file() else {}
    config = encoder.config
    return SentenceEncoder(
        path=path,
        model=mean_pooled(encoder, normalize),
        architecture=(config.architectures or [type(encoder).__name__])[0],
        num_attention_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        vocab_size=config.vocab_size,
        max_sequence_length=int(sentence_config.get("max_seq_length") or config.max_position_embeddings),
        normalize=normalize,
        sha256=content_sha256({name: sha256_file(path / name) for name in SOURCE_FILES if (path / name).is_file()}),
    )


# -- gates -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetrievalFigures:
    """How closely candidate vectors follow reference vectors, as retrieval sees them."""

    texts: int
    mean_cosine: float
    min_cosine: float
    neighbour_overlap: float  # mean share of each text's top-k neighbours kept
    neighbours: int


def retrieval_figures(reference: np.ndarray, candidate: np.ndarray, neighbours: int) -> RetrievalFigures:
    """Row cosines, and the overlap of each text's ``neighbours`` nearest others under both sets of vectors."""
    cosines = row_cosines(reference, candidate)
    return RetrievalFigures(
        texts=len(reference),
        mean_cosine=float(cosines.mean()),
        min_cosine=float(cosines.min()),
        neighbour_overlap=float(np.mean(_overlaps(_nearest(reference, neighbours), _nearest(candidate, neighbours)))),
        neighbours=neighbours,
    )


def _nearest(vectors: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k most similar other rows (cosine)."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest: np.ndarray = np.argpartition(-similarity, k, axis=1)[:, :k]
    return nearest


def _overlaps(left: np.ndarray, right: np.ndarray) -> list[float]:
    return [len(set(a.tolist()) & set(b.tolist())) / len(a) for a, b in zip(left, right, strict=True)]


def embedding_gate(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    min_mean_cosine: float = constants.INT8_EMBEDDING_MIN_MEAN_COSINE,
    min_overlap: float = constants.INT8_EMBEDDING_MIN_NEIGHBOUR_OVERLAP,
    neighbours: int = constants.INT8_EMBEDDING_NEIGHBOURS,
) -> GateResult:
    """Gate reduced-precision vectors on real texts: mean cosine to fp32 and top-k neighbour overlap."""
    figures = retrieval_figures(reference, candidate, neighbours)
    passed = (
        figures.mean_cosine >= min_mean_cosine - FLOAT_SLACK and figures.neighbour_overlap >= min_overlap - FLOAT_SLACK
    )
    reason = (
        f"mean cosine to fp32 {figures.mean_cosine:.4f} (at least {min_mean_cosine}), top-{neighbours}"
        f" neighbour overlap {figures.neighbour_overlap:.3f} (at least {min_overlap}) over {figures.texts} texts"
    )
    gate = {k: round(v, 5) if isinstance(v, float) else v for k, v in asdict(figures).items()}
    return GateResult(passed, gate | {"min_mean_cosine": min_mean_cosine, "min_neighbour_overlap": min_overlap}, reason)


def embedded(directory: Path, onnx_file: str, texts: list[str], max_length: int) -> np.ndarray:
    """Vectors from one ONNX file of a staged model directory, through the real Engine."""
    return Engine(directory, onnx_file=onnx_file, warm=False, max_sequence_length=max_length).embed(texts)


# -- publish ---------------------------------------------------------------------------------------------------
def export_sentence_encoder(
    checkpoint_dir: Path, registry: ModelRegistry, name: str, options: ExportOptions
) -> ModelVersion:
    """Export, gate and publish ``checkpoint_dir`` as an embedding model (the caller promotes); a failed int8 gate
    follows the one policy of export/pipeline.py (``required``: int8 was asked for by name)."""
    variants, golden, report = options.variants, options.golden, options.report
    unknown = sorted(set(variants) - set(EMBEDDING_VARIANTS))
    if unknown:
        raise InvalidInputError(
            f"variant(s) {unknown} are not exported for embeddings yet; choose from {sorted(EMBEDDING_VARIANTS)}"
        )
    golden_texts = read_labelled(golden).texts if golden else None
    if "int8" in variants and (golden_texts is None or len(golden_texts) < constants.INT8_EMBEDDING_MIN_GOLDEN_TEXTS):
        raise InvalidInputError(
            f"the int8 embedding gate needs at least {constants.INT8_EMBEDDING_MIN_GOLDEN_TEXTS} real texts in"
            f" --golden (top-{constants.INT8_EMBEDDING_NEIGHBOURS} neighbours are compared);"
            f" got {len(golden_texts) if golden_texts else 0}. Give a larger file, or export --variant fp32 alone",
            issues=[InputIssue("golden", f"at least {constants.INT8_EMBEDDING_MIN_GOLDEN_TEXTS} texts")],
        )
    report(f"loading sentence encoder {checkpoint_dir}")
    checkpoint = load_sentence_encoder(checkpoint_dir)
    max_length = min(options.max_sequence_length or checkpoint.max_sequence_length, checkpoint.max_sequence_length)
    graph = Graph(
        model=checkpoint.model, output_name=OUTPUT_NAME, per_token=False, architecture=checkpoint.architecture,
        num_attention_heads=checkpoint.num_attention_heads, hidden_size=checkpoint.hidden_size,
        vocab_size=checkpoint.vocab_size, tokenizer_file=checkpoint.path / "tokenizer.json",
        config=json.loads((checkpoint.path / "config.json").read_text(encoding="utf-8")),
    )  # fmt: skip

    def add_variants(staged: StagedGraph, metrics: dict[str, Any]) -> None:
        if "int8" in variants and golden_texts is not None:
            gate = _retrieval_gate(staged.directory, max_length, golden_texts)
            add_int8(staged, gate, report, what="retrieval gate", required=options.required)

    source = {
        "checkpoint": str(checkpoint.path.resolve()),
        "sha256": checkpoint.sha256,
        "golden": str(golden) if golden else None,
        "pooling": "mean" + (", L2-normalised" if checkpoint.normalize else ""),
    }
    return publish_graph(
        registry, name, graph, task=SentenceEmbedding.name, labels=[], metric=RowCosine(),
        max_sequence_length=max_length, opset=options.opset, source=source,
        metrics={"dimensions": checkpoint.hidden_size}, add_variants=add_variants, report=report,
    )  # fmt: skip


def _retrieval_gate(directory: Path, max_length: int, texts: list[str]) -> Callable[[str], GateResult]:
    """int8 of an embedding model against fp32 on the golden texts: mean cosine and top-10 neighbour overlap."""
    reference = embedded(directory, VARIANT_FILES["fp32"], texts, max_length)

    def gate(onnx_file: str) -> GateResult:
        return embedding_gate(reference, embedded(directory, onnx_file, texts, max_length))

    return gate
