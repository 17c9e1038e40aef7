"""``lepton predict``: run a published model on texts from the command line (labels, or embeddings), one JSON object
per text."""

from __future__ import annotations

import json
import sys

import click

from lepton_runtime.settings import load_settings


@click.command()
@click.argument("reference")
@click.argument("texts", nargs=-1)
@click.option(
    "--variant",
    type=click.Choice(["auto", "fp32", "int8", "fp16"]),
    default="auto",
    show_default=True,
    help="Graph to run; auto = int8 on CPU (fp16 on CUDA) when verified, else fp32.",
)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default: LEPTON_DEVICE or cpu.")
@click.option("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: all cores).")
@click.option(
    "--top-k",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="A classifier's scores: only the K highest, best first (--all-scores for every label).",
)
@click.option("--all-scores", is_flag=True, help="Every label's score (77 of them for BANKING77).")
def predict(
    reference: str,
    texts: tuple[str, ...],
    variant: str,
    device: str | None,
    threads: int | None,
    top_k: int,
    all_scores: bool,
) -> None:
    """Run model REFERENCE (name, name@version or name@alias) on TEXTS (or lines of stdin), in this process.

    Prints one JSON object per text, in order: for a classifier label, score and the --top-k best scores,
    for an embedding model the vector; then the exact model (name, version, sha256, variant, precision,
    provider). An invalid text prints an error object in its place; the exit code is then 1.

    \b
    Examples:
      lepton predict intents@production "my card payment was declined" "how do I top up?"
      lepton predict intents --top-k 3 < questions.txt       # one text per line
      lepton predict minilm "where is my card?"              # an embedding model
    """
    from lepton_runtime.inference import Engine

    settings = load_settings()
    items = list(texts) or [line.rstrip("\n") for line in sys.stdin]
    engine = Engine.load(
        reference,
        registry=settings.model_dir,
        variant=variant,
        device=device or settings.device,
        intra_op_threads=threads if threads is not None else settings.intra_op_threads,
        max_batch_tokens=settings.max_batch_tokens,
        max_items=settings.max_items,
        max_text_chars=settings.max_text_chars,
    )
    failed = False
    for result in engine.run(items, errors="return"):
        failed |= hasattr(result, "code")
        answer = result.as_dict()
        if not all_scores and isinstance(answer.get("scores"), dict):
            best = sorted(answer["scores"].items(), key=lambda item: item[1], reverse=True)[:top_k]
            answer["scores"] = dict(best)
        click.echo(json.dumps(answer, ensure_ascii=False))
    if failed:
        sys.exit(1)
