"""Entity extraction: the Engine (fp32, int8) against the transformers ``token-classification`` pipeline
(aggregation "simple") on the same fine-tuned model, the same texts and the same threads, in this one run; with
each one's span F1 on the labelled texts, so speed is never bought with quality.

Texts: the CoNLL-2003 validation sentences from ``shared/datasets/conll2003`` (research use only: they stay out
of the product). The model: a published entity model (``lepton train ... --task token-classification``); the
pipeline loads the checkpoint it was exported from. Writes bench/results/entities.{md,png}.

    python bench/entities.py [--model ner@production] [--texts 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.shared_data import SHARED_DATASETS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BATCH_SIZES = (8, 16, 32, 64)
GOAL = 3.0


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ner@production", help="a published entity model")
    parser.add_argument("--registry", default=str(ROOT / "models"), help="registry root (LEPTON_MODEL_DIR)")
    parser.add_argument("--texts", type=int, default=2000, help="validation sentences per pass")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement; the median is reported")
    parser.add_argument("--threads", type=int, default=None, help="threads on both sides (default: all cores)")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    from export.entities import gold_text_and_spans
    from lepton_runtime import Engine
    from lepton_runtime.labelled_data import read_tagged
    from lepton_runtime.machine import available_cores
    from lepton_runtime.registry import ModelRegistry

    validation_file = SHARED_DATASETS / "conll2003" / "validation.jsonl"
    if not validation_file.is_file():
        raise SystemExit(f"{validation_file} is missing: this benchmark reads the shared CoNLL-2003 validation set")
    threads = args.threads or available_cores()
    torch.set_num_threads(threads)
    version = ModelRegistry(args.registry).resolve(args.model)
    tagged = read_tagged(validation_file)
    pairs = [gold_text_and_spans(w, t) for w, t in zip(tagged.words, tagged.tags, strict=True)][: args.texts]
    texts, gold = [text for text, _ in pairs], [spans for _, spans in pairs]

    def span_f1(found: list[set[tuple[int, int, str]]]) -> float:
        matched = sum(len(f & g) for f, g in zip(found, gold, strict=True))
        precision, recall = matched / max(1, sum(map(len, found))), matched / max(1, sum(map(len, gold)))
        return 0.0 if matched == 0 else 2 * precision * recall / (precision + recall)

    checkpoint = Path(version.manifest.source["checkpoint"])
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForTokenClassification.from_pretrained(checkpoint).eval()
    baseline = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple")
    sweep = {}
    for batch_size in BATCH_SIZES:
        sweep[batch_size] = len(texts) / median_seconds(lambda b=batch_size: baseline(texts, batch_size=b), 1)
        print(f"pipeline bs {batch_size}: {sweep[batch_size]:.0f} texts/s", file=sys.stderr)
    best = max(sweep, key=lambda b: sweep[b])
    found = baseline(texts, batch_size=best)
    baseline_f1 = span_f1([{(e["start"], e["end"], e["entity_group"]) for e in row} for row in found])
    baseline_rate = len(texts) / median_seconds(lambda: baseline(texts, batch_size=best), args.repeats)
    rows = [(f"transformers pipeline (simple), best batch size ({best})", baseline_rate, baseline_f1)]
    for variant in ("fp32", "int8"):
        if variant not in version.manifest.variants:
            continue
        engine = Engine(version.path, variant=variant, intra_op_threads=threads)  # type: ignore[arg-type]
        f1 = span_f1([{(e.start, e.end, e.label) for e in row} for row in engine.entities(texts)])
        rate = len(texts) / median_seconds(lambda e=engine: e.entities(texts), args.repeats)
        rows.append((f"Engine {variant}", rate, f1))
        print(f"Engine {variant}: {rate:.0f} texts/s = {rate / baseline_rate:.2f}x, span F1 {f1:.4f}", file=sys.stderr)

    summary = [
        f"{name}: {rate / baseline_rate:.2f}x the pipeline" + (f" (goal >= {GOAL}x for int8)" if "int8" in name else "")
        for name, rate, _ in rows[1:]
    ]
    lines = [
        f"# bench/entities.py\n\nModel {version.reference}, {len(texts)} CoNLL-2003 validation sentences,"
        f" {threads} threads on both sides, median of {args.repeats}. Span F1: exact character span and type"
        " against the gold entities of the same sentences.\n",
        "| backend | texts/s | vs pipeline | span F1 |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {name} | {rate:.0f} | {rate / baseline_rate:.2f}x | {f1:.4f} |" for name, rate, f1 in rows],
        "",
        "pipeline batch-size sweep (one pass each): " + ", ".join(f"bs {b}: {r:.0f}/s" for b, r in sweep.items()),
        "",
        "```",
        *summary,
        "```",
        "",
        "![texts per second](entities.png)",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "entities.md").write_text("\n".join(lines) + "\n")
    print("\n".join(summary))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.2))
    names = [name for name, _, _ in rows][::-1]
    axis.barh(names, [rate for _, rate, _ in rows][::-1],
              color=["tab:blue" if n.startswith("Engine") else "tab:orange" for n in names])  # fmt: skip
    axis.set_xlabel(f"texts per second ({threads} threads, median)")
    figure.tight_layout()
    figure.savefig(RESULTS / "entities.png", dpi=110)
    print(f"wrote {RESULTS / 'entities.md'} and {RESULTS / 'entities.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
