"""Writing a finished bulk job's output file: the job's parts copied column for column (producer/outputs.py) against
the baseline of every row through its JSON line (how the writer worked before: each line parsed, vectors decoded from
base64, the columns built again), measured in the same run on the same parts.

The parts are made here as a worker writes them (``part_table`` through the task's spec): 100,000 rows in chunks of
1,000, of 384-dimensional embeddings and of classifier labels. Prints medians of ``--repeats`` runs and the ratio,
and writes bench/results/outputs.md.

    python bench/outputs.py [--rows 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

# bench/queue.py would shadow the standard library's `queue`: keep this folder off the path.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from lepton_runtime.jobs.output_rows import json_lines, part_table, with_ids  # noqa: E402
from lepton_runtime.prediction import Embedding, ItemError, Prediction, Provenance, decode_vector  # noqa: E402
from lepton_runtime.tasks import task_spec  # noqa: E402
from producer.outputs import write_output  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODEL = Provenance("bench", 1, "0" * 64, "fp32", "fp32", "CPUExecutionProvider")
CHUNK_ROWS = 1000
DIMENSIONS = 384


def job_parts(task: str, rows: int) -> list[pa.Table]:
    """The parts of a ``rows``-text job of ``task`` (one text in 500 failed), as workers write them."""
    rng = np.random.default_rng(0)
    spec, parts = task_spec(task), []
    for first in range(0, rows, CHUNK_ROWS):
        indices = range(first, min(rows, first + CHUNK_ROWS))
        vectors = rng.normal(size=(len(indices), DIMENSIONS)).astype(np.float32)
        results: list[Any] = []
        for offset, index in enumerate(indices):
            if index % 500 == 7:
                results.append(ItemError(offset, "invalid_input", "text: empty"))
            elif task == "embedding":
                results.append(Embedding(vectors[offset], MODEL))
            else:
                label = "positive" if index % 3 else "negative"
                results.append(Prediction(label, 0.9, {label: 0.9}, MODEL))
        ids = [f"row-{index}" for index in indices]
        parts.append(with_ids(part_table(spec, ids, list(indices), results, MODEL), first))
    return parts


def through_json_lines(parts: Iterable[pa.Table], target: Path) -> int:
    """The baseline: each row's JSON line parsed and the Parquet columns built again from the dicts."""
    rows = 0
    writer = None
    for part in parts:
        batch_rows = [
            json.loads(line) for batch in part.to_batches() for line in json_lines(batch, part.schema.metadata)
        ]
        columns: dict[str, Any] = {"id": pa.array([row["id"] for row in batch_rows], pa.string())}
        if any("vector" in row for row in batch_rows):
            vectors = [decode_vector(row["vector"]) if "vector" in row else None for row in batch_rows]
            flat = np.concatenate([v if v is not None else np.full(DIMENSIONS, np.nan, np.float32) for v in vectors])
            mask = pa.array([v is None for v in vectors], pa.bool_())
            columns["embedding"] = pa.FixedSizeListArray.from_arrays(
                pa.array(flat, pa.float32()), DIMENSIONS, mask=mask
            )
        else:
            columns["label"] = pa.array([row.get("label") for row in batch_rows], pa.string())
            columns["score"] = pa.array([row.get("score") for row in batch_rows], pa.float64())
        errors = [row.get("error") or {} for row in batch_rows]
        columns["truncated"] = pa.array([bool(row.get("truncated")) for row in batch_rows], pa.bool_())
        columns["error_code"] = pa.array([error.get("code") for error in errors], pa.string())
        columns["error_message"] = pa.array([error.get("message") for error in errors], pa.string())
        table = pa.table(columns)
        if writer is None:
            writer = pq.ParquetWriter(str(target), table.schema)
        writer.write_table(table)
        rows += len(batch_rows)
    if writer is not None:
        writer.close()
    return rows


def median_s(write: Callable[[list[pa.Table], Path], int], parts: list[pa.Table], rows: int, repeats: int) -> float:
    times = []
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(repeats):
            target = Path(scratch) / f"out-{repeat}.parquet"
            started = time.perf_counter()
            assert write(parts, target) == rows
            times.append(time.perf_counter() - started)
            assert pq.read_metadata(target).num_rows == rows
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of each job")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each writer (the median is reported)")
    args = parser.parse_args()

    lines = [
        "# Bulk output files: parts copied column for column vs every row through JSON",
        "",
        f"`python bench/outputs.py --rows {args.rows} --repeats {args.repeats}`: a job's parts made as workers write",
        f"them ({CHUNK_ROWS} rows each, one text in 500 failed), written to one `.parquet` file; medians.",
        "",
        "| job | rows | through JSON lines (baseline) | columns copied | ratio |",
        "|---|---|---|---|---|",
    ]
    for task, what in (("embedding", f"embeddings ({DIMENSIONS} dims)"), ("text-classification", "labels")):
        parts = job_parts(task, args.rows)

        def copied(tables: list[pa.Table], target: Path) -> int:
            return write_output(iter(tables), target, args.rows)

        baseline = median_s(through_json_lines, parts, args.rows, args.repeats)
        new = median_s(copied, parts, args.rows, args.repeats)
        print(f"{what}: through JSON lines {baseline:.2f} s, columns copied {new:.2f} s: {baseline / new:.1f}x")
        lines.append(f"| {what} | {args.rows:,} | {baseline:.2f} s | {new:.2f} s | {baseline / new:.1f}x |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "outputs.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS / 'outputs.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
