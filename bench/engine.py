"""Engine throughput against the transformers pipeline and PyTorch, all measured in this one run.

Real texts (SST-2 and BANKING77 dev sets, shuffled: a bulk file's arrival order), the fine-tuned
MiniLM-L6 demo model, 2 threads everywhere, medians of repeated passes. Prints every ratio
against the pipeline at its best batch size, and writes bench/results/engine.{md,png}.

    python bench/engine.py [--model intents@production] [--texts 2400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
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
from lepton_runtime.constants import DEFAULT_MAX_BATCH_TOKENS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
THREADS = 2


def load_texts(count: int) -> list[str]:
    return real_texts(seed=7)[:count]


def median_rate(run: Callable[[], object], count: int, repeats: int) -> float:
    """Texts per second: the median of ``repeats`` timed passes."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return count / statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="intents@production", help="published reference (fine-tuned)")
    parser.add_argument("--registry", default="models", help="registry root (LEPTON_MODEL_DIR)")
    parser.add_argument("--texts", type=int, default=2400, help="real texts per pass (at least 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement; the median is reported")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from export.checkpoint import load_checkpoint
    from export.onnx_graph import export_onnx
    from export.quantization import Int8Recipe, quantize_int8
    from lepton_runtime.inference import Engine
    from lepton_runtime.labelled_data import read_labelled
    from lepton_runtime.registry import ModelRegistry
    from lepton_runtime.training.finetune import VALIDATION_FILE

    torch.set_num_threads(THREADS)
    version = ModelRegistry(ROOT / args.registry).resolve(args.model)
    checkpoint_dir = Path(version.manifest.source["checkpoint"])
    texts, count, repeats = load_texts(args.texts), args.texts, args.repeats
    print(
        f"model {version.reference} (checkpoint {checkpoint_dir}), {count} real texts,"
        f" {THREADS} threads, median of {repeats}"
    )
    rows: list[tuple[str, float, str]] = []

    def record(name: str, rate: float, note: str = "") -> float:
        rows.append((name, rate, note))
        print(f"  {name:<58} {rate:8.0f} texts/s  {note}")
        return rate

    # -- PyTorch baselines -------------------------------------------------------------------------
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
    classifier = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
    probe = texts[:400]
    probe_rates = {
        bs: median_rate(lambda bs=bs: classifier(probe, batch_size=bs, truncation=True), len(probe), 1)
        for bs in (1, 8, 16, 32, 64)
    }
    best_bs = max(probe_rates, key=lambda bs: probe_rates[bs])
    print(
        f"  pipeline batch-size probe on 400 texts: { ({bs: round(r) for bs, r in probe_rates.items()}) }"
        f" -> best {best_bs}"
    )
    pipeline_rate = record(
        f"transformers pipeline, best batch size ({best_bs})",
        median_rate(lambda: classifier(texts, batch_size=best_bs, truncation=True), count, repeats),
    )

    def torch_pass(order: list[int], batch_size: int, bf16: bool) -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for start in range(0, len(order), batch_size):
                batch = tokenizer(
                    [texts[i] for i in order[start : start + batch_size]],
                    padding=True,
                    truncation=True,
                    max_length=128,
                    return_tensors="pt",
                )
                model(**batch)

    arrival = list(range(count))
    by_length = sorted(arrival, key=lambda i: len(tokenizer(texts[i])["input_ids"]))
    record(
        "PyTorch eager fp32, arrival order, bs 32", median_rate(lambda: torch_pass(arrival, 32, False), count, repeats)
    )
    record(
        "PyTorch bf16 autocast, length-sorted, bs 64",
        median_rate(lambda: torch_pass(by_length, 64, True), count, repeats),
        "best PyTorch on this CPU",
    )

    # -- the Engine, as published -------------------------------------------------------------------
    engines = {variant: Engine(version.path, variant=variant, intra_op_threads=THREADS) for variant in ("fp32", "int8")}
    fp32_rate = record(
        "Engine fp32 (fused graph, sorted token-budget batches)",
        median_rate(lambda: engines["fp32"].classify(texts), count, repeats),
    )
    int8_rate = record(
        "Engine int8 (per-channel, sorted token-budget batches)",
        median_rate(lambda: engines["int8"].classify(texts), count, repeats),
    )
    fp32_labels = [p.label for p in engines["fp32"].classify(texts)]
    int8_labels = [p.label for p in engines["int8"].classify(texts)]
    agreement = float(np.mean(np.asarray(fp32_labels) == np.asarray(int8_labels)))
    golden_path = checkpoint_dir / VALIDATION_FILE
    accuracy = {}
    if golden_path.is_file():
        golden = read_labelled(golden_path)
        for variant, engine in engines.items():
            accuracy[variant] = float(
                np.mean([p.label == t for p, t in zip(engine.classify(golden.texts), golden.labels or [], strict=True)])
            )

    # -- length-aware batching alone: same variant (int8), same batch size (32) --------------------
    int8_bs32 = Engine(
        version.path, variant="int8", intra_op_threads=THREADS, max_batch_size=32, max_batch_tokens=10**9
    )
    arrival_rate = record(
        "Engine int8 bs 32, arrival order (no sorting)",
        median_rate(lambda: [int8_bs32.classify(texts[i : i + 32]) for i in range(0, count, 32)], count, repeats),
    )
    sorted_rate = record(
        "Engine int8 bs 32, length-sorted", median_rate(lambda: int8_bs32.classify(texts), count, repeats)
    )

    # -- what else ONNX Runtime offers -------------------------------------------------------------
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for name in ("tokenizer.json", "config.json"):
            shutil.copy(version.path / name, work / name)
        shutil.copy(version.path / "model.onnx", work / "fused.onnx")
        export_onnx(load_checkpoint(checkpoint_dir).model, work / "unfused.onnx", version.manifest.opset)
        quantize_int8(work / "unfused.onnx", work / "int8-per-tensor.onnx", Int8Recipe("per-tensor", per_channel=False))
        quantize_int8(work / "fused.onnx", work / "int8-fused.onnx", Int8Recipe("per-channel", per_channel=True))
        for onnx_file, label in (
            ("unfused.onnx", "fp32 without offline fusions (ORT fuses online)"),
            ("int8-per-tensor.onnx", "int8 per-tensor"),
            ("int8-fused.onnx", "int8 per-channel of the fused graph"),
        ):
            engine = Engine(work, onnx_file=onnx_file, intra_op_threads=THREADS)
            agree = float(np.mean(np.asarray([p.label for p in engine.classify(texts)]) == np.asarray(fp32_labels)))
            record(
                f"option: {label}",
                median_rate(lambda engine=engine: engine.classify(texts), count, repeats),
                f"agreement with fp32 {agree:.3f}",
            )
    for budget in (512, 2048, 4096):
        engine = Engine(version.path, variant="int8", intra_op_threads=THREADS, max_batch_tokens=budget)
        record(
            f"option: int8, token budget {budget} (default {DEFAULT_MAX_BATCH_TOKENS})",
            median_rate(lambda engine=engine: engine.classify(texts), count, repeats),
        )
    engine = Engine(version.path, variant="int8", intra_op_threads=THREADS, allow_spinning=False)
    record("option: int8, thread spinning off", median_rate(lambda: engine.classify(texts), count, repeats))
    engine = Engine(version.path, variant="int8", intra_op_threads=1)
    record(
        "option: int8, 1 thread (2 worker processes would run 2 of these)",
        median_rate(lambda: engine.classify(texts), count, repeats),
    )

    # -- summary -----------------------------------------------------------------------------------
    bf16_rate = rows[2][1]
    summary = [
        f"Engine int8 / pipeline best      {int8_rate / pipeline_rate:5.2f}x   (target >= 3.0x)",
        f"Engine fp32 / pipeline best      {fp32_rate / pipeline_rate:5.2f}x   (target >= 1.5x)",
        f"length sorting alone (int8 bs32) {sorted_rate / arrival_rate:5.2f}x   (target >= 2.0x)",
        f"Engine int8 / PyTorch bf16 sorted {int8_rate / bf16_rate:5.2f}x  (goal > 1x)",
        f"Engine fp32 / PyTorch bf16 sorted {fp32_rate / bf16_rate:5.2f}x",
        f"int8 argmax agreement with fp32 on {count} texts: {agreement:.4f}",
    ]
    if accuracy:
        summary.append(
            f"held-out accuracy ({golden_path.name}): fp32 {accuracy['fp32']:.4f}, int8 {accuracy['int8']:.4f}"
            f" (drop {(accuracy['fp32'] - accuracy['int8']) * 100:.2f} points, limit 0.5)"
        )
    print("\n" + "\n".join(summary))
    write_report(rows, summary, pipeline_rate, version.reference, count, repeats)


def write_report(
    rows: list[tuple[str, float, str]], summary: list[str], pipeline_rate: float, model: str, count: int, repeats: int
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# bench/engine.py\n\nModel {model}, {count} real texts, {THREADS} threads, median of {repeats}.\n",
        "| backend | texts/s | vs pipeline | note |",
        "| --- | ---: | ---: | --- |",
    ]
    lines += [f"| {name} | {rate:.0f} | {rate / pipeline_rate:.2f}x | {note} |" for name, rate, note in rows]
    (RESULTS / "engine.md").write_text("\n".join(lines) + "\n\n```\n" + "\n".join(summary) + "\n```\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 0.42 * len(rows) + 1.2))
    names = [name for name, _, _ in rows][::-1]
    rates = [rate for _, rate, _ in rows][::-1]
    colours = [
        "tab:blue" if name.startswith("Engine") else "tab:gray" if name.startswith("option") else "tab:orange"
        for name in names
    ]
    axis.barh(names, rates, color=colours)
    axis.axvline(pipeline_rate, color="black", linestyle="--", linewidth=1, label="transformers pipeline (best bs)")
    axis.set_xlabel(f"texts per second ({THREADS} threads, median)")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(RESULTS / "engine.png", dpi=110)
    print(f"\nwrote {RESULTS / 'engine.md'} and {RESULTS / 'engine.png'}")


if __name__ == "__main__":
    main()
