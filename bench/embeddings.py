"""Sentence embeddings: the Engine (fp32 and int8) against sentence-transformers' ``encode`` on the same model, the
same real texts and the same threads, all measured in this one run; plus the int8 retrieval figures.

The baseline is ``SentenceTransformer(all-MiniLM-L6-v2).encode(texts, normalize_embeddings=True)`` at its best
batch size (a sweep picks it). The Engine runs the model exported with ``lepton export --task embedding``
(exported here into a scratch registry unless --model names a published one). Prints every ratio and writes
bench/results/embeddings.{md,png}.

    python bench/embeddings.py [--model minilm@production] [--texts 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# bench/queue.py would shadow the standard library's `queue` (torch imports it): keep this folder off the path.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.shared_data

from bench.shared_data import real_texts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BATCH_SIZES = (16, 32, 64, 128)
GOALS = {"int8": 3.0, "fp32": 1.5}


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a published embedding model (default: export one here)")
    parser.add_argument("--registry", default=str(ROOT / "models"), help="registry root of --model")
    parser.add_argument("--texts", type=int, default=2000, help="real texts per pass (at least 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement; the median is reported")
    parser.add_argument("--threads", type=int, default=None, help="threads for both sides (default: all cores)")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from export.embedding import retrieval_figures
    from export.publish import export_checkpoint
    from lepton_runtime import Engine
    from lepton_runtime.machine import available_cores
    from lepton_runtime.registry import ModelRegistry
    from lepton_runtime.training import default_base_model

    threads = args.threads or available_cores()
    torch.set_num_threads(threads)
    corpus = real_texts(seed=11)
    texts = corpus[: args.texts]
    golden_texts = corpus[args.texts :] if len(corpus) - args.texts >= 2000 else corpus  # the int8 gate's texts
    if args.model:
        version = ModelRegistry(args.registry).resolve(args.model)
    else:
        scratch = Path(tempfile.mkdtemp(prefix="lepton-embeddings-"))
        golden = scratch / "golden.jsonl"
        golden.write_text("".join(json.dumps({"text": text}) + "\n" for text in golden_texts))
        print(f"exporting all-MiniLM-L6-v2 (fp32 + int8, gated on {golden}) ...", file=sys.stderr)
        version = export_checkpoint(
            default_base_model(), ModelRegistry(scratch / "models"), "minilm", task="embedding", golden=golden,
            variants=["fp32", "int8"],
        )  # fmt: skip
    int8_recipe = (
        version.manifest.variants["int8"].gate.get("recipe", "-") if "int8" in version.manifest.variants else None
    )

    baseline = SentenceTransformer(str(default_base_model()), device="cpu")
    baseline.encode(texts[:64], normalize_embeddings=True)  # warm
    sweep = {}
    for batch_size in BATCH_SIZES:
        seconds = median_seconds(
            lambda b=batch_size: baseline.encode(texts, batch_size=b, normalize_embeddings=True), 1
        )
        sweep[batch_size] = len(texts) / seconds
        print(f"sentence-transformers bs {batch_size}: {sweep[batch_size]:.0f} texts/s", file=sys.stderr)
    best_batch = max(sweep, key=lambda b: sweep[b])
    reference = baseline.encode(texts, batch_size=best_batch, normalize_embeddings=True)
    baseline_rate = len(texts) / median_seconds(
        lambda: baseline.encode(texts, batch_size=best_batch, normalize_embeddings=True), args.repeats
    )
    rows = [(f"sentence-transformers encode, best batch size ({best_batch})", baseline_rate, "")]
    vectors: dict[str, np.ndarray] = {}
    for variant in ("fp32", "int8"):
        if variant not in version.manifest.variants:
            continue
        engine = Engine(version.path, variant=variant, intra_op_threads=threads)  # type: ignore[arg-type]
        vectors[variant] = engine.embed(texts)
        rate = len(texts) / median_seconds(lambda e=engine: e.embed(texts), args.repeats)
        note = f"recipe: {int8_recipe}" if variant == "int8" else "fused graph"
        rows.append((f"Engine {variant} (sorted token-budget batches)", rate, note))
        print(f"Engine {variant}: {rate:.0f} texts/s = {rate / baseline_rate:.2f}x", file=sys.stderr)

    summary = []
    for name, rate, _ in rows[1:]:
        variant = name.split()[1]
        summary.append(f"{name}: {rate / baseline_rate:.2f}x sentence-transformers (goal >= {GOALS[variant]}x)")
    for variant, found in vectors.items():
        cosines = (found * reference).sum(axis=1)
        summary.append(
            f"{variant} vs sentence-transformers: least cosine {cosines.min():.6f}, mean {cosines.mean():.6f}"
        )
    if "int8" in vectors:
        figures = retrieval_figures(vectors["fp32"], vectors["int8"], 10)
        summary.append(
            f"int8 vs fp32 over {figures.texts} texts: mean cosine {figures.mean_cosine:.4f} (goal >= 0.99), least"
            f" {figures.min_cosine:.4f}, top-10 neighbour overlap {figures.neighbour_overlap:.3f} (goal >= 0.90)"
        )
    print("\n".join(summary))
    write_report(rows, summary, sweep, baseline_rate, version.reference, len(texts), args.repeats, threads)
    return 0


def write_report(
    rows: list[tuple[str, float, str]], summary: list[str], sweep: dict[int, float], baseline_rate: float,
    model: str, count: int, repeats: int, threads: int,
) -> None:  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# bench/embeddings.py\n\nModel {model} (all-MiniLM-L6-v2), {count} real texts (SST-2 + BANKING77 dev),"
        f" {threads} threads on both sides, median of {repeats}.\n",
        "| backend | texts/s | vs sentence-transformers | note |",
        "| --- | ---: | ---: | --- |",
    ]
    lines += [f"| {name} | {rate:.0f} | {rate / baseline_rate:.2f}x | {note} |" for name, rate, note in rows]
    lines += ["", "sentence-transformers batch-size sweep (one pass each): "
              + ", ".join(f"bs {b}: {r:.0f}/s" for b, r in sweep.items())]  # fmt: skip
    (RESULTS / "embeddings.md").write_text("\n".join(lines) + "\n\n```\n" + "\n".join(summary) + "\n```\n\n"
                                           "![texts per second](embeddings.png)\n")  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.2))
    names = [name for name, _, _ in rows][::-1]
    axis.barh(names, [rate for _, rate, _ in rows][::-1],
              color=["tab:blue" if n.startswith("Engine") else "tab:orange" for n in names])  # fmt: skip
    axis.set_xlabel(f"texts per second ({threads} threads, median)")
    figure.tight_layout()
    figure.savefig(RESULTS / "embeddings.png", dpi=110)
    print(f"wrote {RESULTS / 'embeddings.md'} and {RESULTS / 'embeddings.png'}")


if __name__ == "__main__":
    sys.exit(main())
