"""The GPU path measured in one run: MiniLM-L6 fine-tuned on the GPU, then at least 100,000 real texts
through the transformers pipeline (fp32, fp16), PyTorch eager fp16, our Engine (fp32, fp16: IO binding,
length-aware token-budget batches) and bulk jobs through a local Redis and a real CUDA worker.

Texts: the SST-2 and BANKING77 dev sets, shuffled and repeated. Model: SST-2 fine-tuned here through
the training path (mixed precision on CUDA), exported, its fp16 variant gated on the GPU, published;
or an already published ``--model``. Medians of ``--repeats`` passes; every ratio is against a
baseline measured in this same run. Writes bench/results/gpu.{md,png}.

    python bench/gpu.py [--texts 100000] [--repeats 3] [--epochs 4] [--model REF] [--device cuda]

``--device cpu --texts 2000 --repeats 1`` smoke-tests the script on a machine without a GPU (the fp16
rows are left out there).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py would shadow the standard library's `queue` (used by torch and celery): keep this
# folder off the path.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.shared_data

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from bench.shared_data import real_texts, repeated, shared_file  # noqa: E402
from lepton_runtime.machine import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def load_texts(count: int) -> tuple[list[str], list[str]]:
    """``count`` real texts (the dev sets shuffled, then repeated) and the distinct ones."""
    unique = real_texts(seed=7)
    return repeated(unique, count), unique


def median_seconds(run: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    timings = []
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        run()
        sync()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def machine_facts(device: str) -> dict[str, str]:
    import onnxruntime as ort
    import tokenizers
    import torch
    import transformers

    facts = {
        "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "torch": f"{torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})",
        "onnxruntime": f"{ort.__version__} {ort.get_device()}, providers {ort.get_available_providers()}",
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
    }
    if device == "cuda":
        query = "--query-gpu=name,driver_version,memory.total,compute_cap"
        smi = subprocess.run(["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True)
        facts["gpu"] = smi.stdout.strip() or torch.cuda.get_device_name(0)
    return facts


def train_on_device(registry: Any, checkpoints: Path, device: str, epochs: int) -> tuple[Any, list[tuple[str, str]]]:
    """Fine-tune MiniLM-L6 on SST-2 through the training path on ``device`` (export, fp16 gate on CUDA,
    publish), then one epoch of the same run on the CPU for the time-per-epoch comparison."""
    from export.training_run import train_and_publish
    from lepton_runtime.jobs.schemas import TrainRequest
    from lepton_runtime.labelled_data import read_labelled
    from lepton_runtime.training import TrainingConfig, default_base_model, fine_tune
    from lepton_runtime.training.finetune import TRAINING_METRICS_FILE

    data_file = shared_file("sst2")
    data = read_labelled(data_file)
    request = TrainRequest(name="sst2", source=str(data_file), epochs=epochs, promote="always")
    started = time.perf_counter()
    outcome = train_and_publish(
        data, request, registry=registry, checkpoint_dir=checkpoints, run_id=device, report=print
    )
    wall_s = time.perf_counter() - started
    checkpoint = Path(outcome.checkpoint)
    metrics = json.loads((checkpoint / TRAINING_METRICS_FILE).read_text())
    epoch_s = [round(epoch["seconds"], 2) for epoch in metrics["epochs"]]
    rows = [
        ("training device, precision", f"{metrics['device']}, {metrics['training_precision']}"),
        ("SST-2 validation accuracy (best epoch)", f"{metrics['validation_accuracy']:.4f} ({metrics['best_epoch']})"),
        (f"seconds per epoch on {device} (train + evaluate)", ", ".join(map(str, epoch_s))),
        ("train + export + gates + publish, wall", f"{wall_s:.1f} s"),
        ("published", f"{outcome.version} variants {outcome.variants}"),
    ]
    if device == "cuda":
        import torch

        threads = torch.get_num_threads()
        cpu = fine_tune(data, default_base_model(), checkpoints / "cpu-epoch", TrainingConfig(epochs=1, device="cpu"))
        rows.append((f"seconds per epoch on the CPU ({threads} threads), fp32", f"{cpu.epochs[0].seconds:.2f}"))
        rows.append(("GPU speed-up per epoch", f"{cpu.epochs[0].seconds / statistics.median(epoch_s):.1f}x"))
    version = registry.resolve(outcome.version)
    return version, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=100_000, help="texts per pass (at least 100,000 on a GPU)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement; the median is reported")
    parser.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs on the device")
    parser.add_argument("--model", help="a published reference to use instead of fine-tuning one here")
    parser.add_argument("--registry", default=None, help="registry root (default: a scratch directory)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--chunk-sizes", default="1024,4096", help="bulk chunk sizes of the queued path")
    parser.add_argument("--worker-processes", default="1,2", help="worker pool sizes of the queued path")
    parser.add_argument("--train-only", action="store_true", help="fine-tune and publish, then stop")
    args = parser.parse_args()

    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
    from transformers.utils import logging as transformers_logging

    from lepton_runtime.inference import Engine
    from lepton_runtime.inference.engine import choose_variant
    from lepton_runtime.registry import ModelRegistry

    transformers_logging.set_verbosity_error()
    device, repeats = args.device, args.repeats
    cuda = device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible to PyTorch; run with --device cpu for a smoke test")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    facts = machine_facts(device)
    print(json.dumps(facts, indent=1))
    scratch = Path(tempfile.mkdtemp(prefix="lepton-gpu-bench-"))
    registry = ModelRegistry(Path(args.registry) if args.registry else scratch / "models")
    training_rows: list[tuple[str, str]] = []
    # the training figures are kept beside the registry, so that a later --model run reports them too
    training_file = registry.root / "bench-training.json"
    if args.model:
        version = registry.resolve(args.model)
        if training_file.is_file():
            training_rows = [tuple(row) for row in json.loads(training_file.read_text())]  # type: ignore[misc]
    else:
        checkpoints = registry.root.parent / "checkpoints" if args.registry else scratch / "checkpoints"
        version, training_rows = train_on_device(registry, checkpoints, device, args.epochs)
        training_file.write_text(json.dumps(training_rows))
        print("\n".join(f"{key}: {value}" for key, value in training_rows), flush=True)
        if args.train_only:
            return
    checkpoint_dir = Path(version.manifest.source["checkpoint"])
    variants = {name: info for name, info in version.manifest.variants.items() if name != "int8"}
    print(f"model {version.reference}: variants { {n: (i.verified, i.gate) for n, i in variants.items()} }")
    texts, unique = load_texts(args.texts)
    count = len(texts)
    limit = max(count, len(unique))  # texts per Engine call, here all in one
    rows: list[tuple[str, float, str]] = []

    def record(name: str, seconds: float, baseline: float | None = None, note: str = "") -> float:
        rate = count / seconds
        ratio = f"{rate / baseline:.2f}x" if baseline else ""
        rows.append((name, rate, " ".join(filter(None, [ratio, note]))))
        print(f"  {name:<64} {rate:10,.0f} texts/s  {ratio} {note}", flush=True)
        return rate

    # -- the Engine, first: a process that ran the transformers pipeline has its tokenizers' thread pool
    # in another state (a GPU run measured the Engine 2-2.5x slower after it than in a fresh process)
    engine_runs: list[tuple[str, float, str]] = []  # recorded once the baseline is known
    engine_rates: dict[str, float] = {}
    labels: dict[str, list[str]] = {}
    for variant in ["fp32", "fp16"] if cuda else ["fp32"]:
        engine = Engine(version.path, variant=variant, device=device, max_items=limit)  # type: ignore[arg-type]
        seconds = median_seconds(lambda e=engine: e.classify(texts), repeats)
        engine_rates[variant] = count / seconds
        engine_runs.append((
            f"Engine {variant}{', IO binding' if cuda else ''}, token budget {engine.max_batch_tokens}",
            seconds,
            f"padding efficiency {engine.stats.padding_efficiency:.2f}",
        ))  # fmt: skip
        labels[variant] = [p.label for p in engine.classify(unique)]
        if variant == "fp16" or not cuda:
            for budget in (4096, 65_536):
                tuned = Engine(version.path, variant=variant, device=device, max_batch_tokens=budget,
                               max_batch_size=max(256, budget // 16), max_items=limit)  # fmt: skip
                seconds = median_seconds(lambda e=tuned: e.classify(texts), repeats)
                engine_runs.append((f"  option: Engine {variant}, token budget {budget}", seconds, ""))
            serial = Engine(version.path, variant=variant, device=device, overlap_batches=False, max_items=limit)
            seconds = median_seconds(lambda e=serial: e.classify(texts), repeats)
            engine_runs.append((f"  option: Engine {variant}, no overlap of padding and GPU", seconds, ""))
        del engine
    agreement = None
    if "fp16" in labels:
        agreement = float(np.mean(np.asarray(labels["fp16"]) == np.asarray(labels["fp32"])))
        print(f"  fp16 vs fp32 argmax agreement on {len(unique)} distinct real texts: {agreement:.4f}")
    # the variant a worker loads on its own (fp16 on CUDA once its gate passed), run in process
    in_process_variant = choose_variant(version.manifest, "auto", device)  # type: ignore[arg-type]
    if in_process_variant not in engine_rates:
        engine = Engine(version.path, variant=in_process_variant, device=device, max_items=limit)  # type: ignore[arg-type]
        seconds = median_seconds(lambda: engine.classify(texts), repeats)
        engine_rates[in_process_variant] = count / seconds
        engine_runs.append((f"Engine {in_process_variant} (what a worker loads)", seconds, ""))
    in_process = engine_rates[in_process_variant]

    # -- transformers and PyTorch on the same device ------------------------------------------------
    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
    torch_rates: dict[str, float] = {}
    for precision in ["fp32", "fp16"] if cuda else ["fp32"]:
        dtype = torch.float16 if precision == "fp16" else torch.float32
        model = AutoModelForSequenceClassification.from_pretrained(checkpoint_dir, dtype=dtype).to(device).eval()
        classifier = pipeline("text-classification", model=model, tokenizer=tokenizer, device=model.device)
        probe = texts[: min(4000, count)]
        probe_rates = {
            size: len(probe)
            / median_seconds(lambda c=classifier, p=probe, b=size: c(p, batch_size=b, truncation=True), 1, sync)
            for size in (32, 64, 128, 256)
        }
        best = max(probe_rates, key=probe_rates.__getitem__)
        print(f"  pipeline {precision} batch-size probe: { {b: round(r) for b, r in probe_rates.items()} }")
        seconds = median_seconds(lambda c=classifier, b=best: c(texts, batch_size=b, truncation=True), repeats, sync)
        torch_rates[f"pipeline {precision}"] = record(f"transformers pipeline {precision}, batch size {best}", seconds)
        if precision == "fp16":
            by_length = sorted(range(count), key=lambda i: len(texts[i]))

            def eager(model: Any = model, order: list[int] = by_length, batch_size: int = 256) -> None:
                with torch.inference_mode():
                    for start in range(0, count, batch_size):
                        batch = tokenizer(
                            [texts[i] for i in order[start : start + batch_size]],
                            padding=True,
                            truncation=True,
                            max_length=128,
                            return_tensors="pt",
                        ).to(device)
                        model(**batch).logits.argmax(-1).cpu()

            seconds = median_seconds(eager, repeats, sync)
            torch_rates["eager fp16"] = record("PyTorch eager fp16, length-sorted, batch size 256", seconds)
        classifier = model = None
        if cuda:
            torch.cuda.empty_cache()
    baseline = torch_rates.get("pipeline fp16", torch_rates["pipeline fp32"])
    baseline_name = "pipeline fp16" if "pipeline fp16" in torch_rates else "pipeline fp32"

    for name, seconds, note in engine_runs:
        record(name, seconds, baseline, f"vs {baseline_name}" + (f"; {note}" if note else ""))

    # -- bulk jobs through Redis and a real worker on this machine -------------------------------------
    queue_rows = queued_path(version, registry, texts, device, repeats, args, scratch)
    for name, seconds in queue_rows:
        record(name, seconds, in_process, f"vs Engine {in_process_variant} in process")

    report(facts, training_rows, rows, version.reference, count, repeats, agreement, len(unique), device)
    shutil.rmtree(scratch, ignore_errors=True)


def queued_path(
    version: Any, registry: Any, texts: list[str], device: str, repeats: int, args: Any, scratch: Path
) -> list[tuple[str, float]]:
    from pydantic import SecretStr

    from lepton_runtime.settings import LeptonSettings
    from producer import LeptonClient
    from workers.embedded import LocalRedis
    from workers.processes import WorkerProcess

    redis_server = LocalRedis(free_port(), scratch / "redis")  # as `lepton up` runs it: append-only on
    url = redis_server.start()
    env = {**os.environ, "LEPTON_REDIS_URL": url, "LEPTON_MODEL_DIR": str(registry.root)}
    client = LeptonClient(LeptonSettings(redis_url=SecretStr(url), model_dir=registry.root))
    results: list[tuple[str, float]] = []

    def bulk(chunk_size: int) -> None:
        job = client.submit_bulk(texts, model=version.reference, chunk_size=chunk_size)
        status = job.wait(900)
        assert status.state == "succeeded", status
        assert sum(1 for _ in client.result_lines(job.id)) == len(texts)

    try:
        for processes in [int(p) for p in args.worker_processes.split(",")]:
            worker = WorkerProcess(
                env, scratch / f"worker-{processes}.log", processes=processes,
                arguments=["--device", device, "--warm", version.reference], name_prefix="gpu-bench", cwd=ROOT,
            )  # fmt: skip
            try:
                worker.wait_ready(300)
                for chunk_size in [int(size) for size in args.chunk_sizes.split(",")]:
                    bulk(chunk_size)  # warm the path
                    seconds = median_seconds(lambda c=chunk_size: bulk(c), repeats)
                    name = f"bulk job, {processes} {device} worker process(es), chunks of {chunk_size}"
                    results.append((name, seconds))
                    print(f"  {name}: {len(texts) / seconds:,.0f} texts/s", flush=True)
            except Exception:
                print(worker.log_tail())
                raise
            finally:
                worker.stop()
    finally:
        client.close()
        redis_server.stop()
    return results


def report(
    facts: dict[str, str],
    training_rows: list[tuple[str, str]],
    rows: list[tuple[str, float, str]],
    model: str,
    count: int,
    repeats: int,
    agreement: float | None,
    distinct: int,
    device: str,
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "gpu" if device == "cuda" else "gpu-smoke-cpu"
    lines = [
        f"# The GPU path, measured in one run ({device})",
        "",
        f"`python bench/gpu.py`: {model}, {count:,} real texts (SST-2 + BANKING77 dev, shuffled and repeated),"
        f" medians of {repeats} passes. Ratios are against baselines measured in this run.",
        "",
        *[f"- {key}: {value}" for key, value in facts.items()],
        "",
    ]
    if training_rows:
        lines += ["## Fine-tuning MiniLM-L6 on SST-2 (80/20 split)", "", "| | |", "| --- | --- |"]
        lines += [f"| {key} | {value} |" for key, value in training_rows] + [""]
    lines += [
        "## Classification throughput",
        "",
        "| path | texts/s | ratio |",
        "| --- | ---: | --- |",
        *[f"| {path} | {rate:,.0f} | {note} |" for path, rate, note in rows],
        "",
    ]
    if agreement is not None:
        lines.append(f"fp16 vs fp32 argmax agreement on the {distinct:,} distinct texts: **{agreement:.4f}**.")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 0.5 * len(rows) + 1.4))
    axis.barh([path for path, _, _ in rows][::-1], [rate for _, rate, _ in rows][::-1], color="#4c72b0")
    axis.set_xlabel("texts per second (higher is better)")
    axis.set_title(f"MiniLM-L6 classification on {facts.get('gpu', device).split(',')[0]}, {count:,} texts")
    figure.tight_layout()
    figure.savefig(RESULTS / f"{name}.png", dpi=110)
    print(f"wrote {RESULTS / name}.md and {name}.png")


if __name__ == "__main__":
    main()
