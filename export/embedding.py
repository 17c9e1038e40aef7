"""The embedding task's export: a sentence-transformers checkpoint as one ONNX graph that pools and normalises,
its parity gate (cosine per text against PyTorch) and its int8 gate (cosine and nearest neighbours on real texts).

Mean pooling over the attention mask and L2 normalisation sit inside the graph, exactly as the checkpoint's
``modules.json`` defines them: every runtime then returns the same vectors, the engine does no arithmetic of
its own, and the parity gate covers the pooling too.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.onnx_graph import INPUT_NAMES, export_onnx, fuse_transformer_graph
from export.parity import parity_inputs
from export.quality import FLOAT_SLACK, GateResult
from export.quantization import gated_int8
from lepton_runtime import constants
from lepton_runtime.errors import ExportError, InputIssue, InvalidInputError, ParityError
from lepton_runtime.inference.engine import Engine
from lepton_runtime.inference.tasks import SentenceEmbedding
from lepton_runtime.labelled_data import read_labelled
from lepton_runtime.registry import Manifest, ModelRegistry, ModelVersion, VariantInfo
from lepton_runtime.registry.checksums import content_sha256, sha256_file
from lepton_runtime.training.pooled import MODULES_FILE, is_sentence_encoder, mean_pooled, normalizes

OUTPUT_NAME = SentenceEmbedding.output_name
VARIANT_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
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
Reporter = Callable[[str], None]


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
def row_cosines(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``left`` with the same row of ``right``."""
    norms = np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    cosines: np.ndarray = (left * right).sum(axis=1) / np.maximum(norms, 1e-12)
    return cosines


def check_embedding_parity(
    model: Any,
    onnx_path: Path,
    vocab_size: int,
    *,
    batch_sizes: tuple[int, ...] = constants.PARITY_BATCH_SIZES,
    sequence_lengths: tuple[int, ...] = constants.PARITY_SEQUENCE_LENGTHS,
    min_cosine: float = constants.EMBEDDING_PARITY_MIN_COSINE,
) -> dict[str, Any]:
    """Every row's cosine to PyTorch at every shape must reach ``min_cosine``; one ParityError lists the shapes
    that miss it."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = {node.name for node in session.get_inputs()}
    cases = []
    for batch_size in batch_sizes:
        for sequence_length in sequence_lengths:
            feeds = parity_inputs(batch_size, sequence_length, vocab_size, seed=batch_size * 1000 + sequence_length)
            with torch.no_grad():
                expected = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).float().numpy()
            (actual,) = session.run([OUTPUT_NAME], {k: v for k, v in feeds.items() if k in names})
            cosines = row_cosines(actual, expected)
            cases.append(
                {
                    "batch_size": batch_size,
                    "sequence_length": sequence_length,
                    "min_cosine": float(cosines.min()),
                    "max_abs_diff": float(np.abs(actual - expected).max()),
                }
            )
    failures = [case for case in cases if case["min_cosine"] < min_cosine]
    if failures:
        raise ParityError(
            f"the ONNX graph {onnx_path.name} does not match PyTorch at {len(failures)} of {len(cases)} shapes,"
            " so nothing was published: "
            + "; ".join(
                f"batch {c['batch_size']} x seq {c['sequence_length']}: least cosine {c['min_cosine']:.6f}"
                f" (at least {min_cosine})"
                for c in failures
            )
            + ". Check for unsupported operators or a different attention implementation in the checkpoint."
        )
    return {"min_cosine_required": min_cosine, "min_cosine": min(c["min_cosine"] for c in cases), "cases": cases}


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
    checkpoint_dir: Path,
    registry: ModelRegistry,
    name: str,
    *,
    variants: list[str],
    golden: Path | None,
    max_sequence_length: int | None,
    opset: int,
    report: Reporter,
) -> ModelVersion:
    """Export, gate and publish ``checkpoint_dir`` as an embedding model (the caller promotes)."""
    unknown = sorted(set(variants) - set(VARIANT_FILES))
    if unknown:
        raise InvalidInputError(
            f"variant(s) {unknown} are not exported for embeddings yet; choose from {sorted(VARIANT_FILES)}"
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
    max_length = min(max_sequence_length or checkpoint.max_sequence_length, checkpoint.max_sequence_length)
    with registry.begin_publish(name) as staged, tempfile.TemporaryDirectory() as scratch:
        directory = staged.path
        raw = export_onnx(checkpoint.model, Path(scratch) / "raw.onnx", opset, output_name=OUTPUT_NAME)
        report("exported to ONNX (mean pooling and normalisation inside); applying transformer fusions")
        fused = fuse_transformer_graph(
            raw, directory / VARIANT_FILES["fp32"], checkpoint.num_attention_heads, checkpoint.hidden_size
        )
        lengths = tuple(sorted({*constants.PARITY_SEQUENCE_LENGTHS, max_length}))
        parity = check_embedding_parity(
            checkpoint.model, directory / VARIANT_FILES["fp32"], checkpoint.vocab_size, sequence_lengths=lengths
        )
        report(f"parity passed: least cosine to PyTorch {parity['min_cosine']:.6f}")
        shutil.copy2(checkpoint.path / "tokenizer.json", directory / "tokenizer.json")
        shutil.copy2(checkpoint.path / "config.json", directory / "config.json")
        infos = {
            "fp32": VariantInfo(
                file=VARIANT_FILES["fp32"], precision="fp32", verified=True, gate={"parity": "passed"},
                optimizations=fused,
            )
        }  # fmt: skip
        if "int8" in variants and golden_texts is not None:
            infos["int8"] = _publish_int8(raw, directory, max_length, golden_texts, report)
        manifest = Manifest(
            name=name,
            task=SentenceEmbedding.name,
            labels=[],
            max_sequence_length=max_length,
            opset=opset,
            architecture=checkpoint.architecture,
            num_attention_heads=checkpoint.num_attention_heads,
            hidden_size=checkpoint.hidden_size,
            input_names=list(INPUT_NAMES),
            source={
                "checkpoint": str(checkpoint.path.resolve()),
                "sha256": checkpoint.sha256,
                "golden": str(golden) if golden else None,
                "pooling": "mean" + (", L2-normalised" if checkpoint.normalize else ""),
            },
            parity=parity,
            metrics={"dimensions": checkpoint.hidden_size},
            variants=infos,
            files={},
        )
        version = staged.commit(manifest)
    report(f"published {version.reference}")
    return version


def _publish_int8(raw: Path, directory: Path, max_length: int, texts: list[str], report: Reporter) -> VariantInfo:
    """int8 gated on retrieval: mean cosine to fp32 and top-10 neighbour overlap over the golden texts."""
    reference = embedded(directory, VARIANT_FILES["fp32"], texts, max_length)
    return gated_int8(
        raw, directory, lambda onnx_file: embedding_gate(reference, embedded(directory, onnx_file, texts, max_length)),
        report, what="retrieval gate",
    )  # fmt: skip
