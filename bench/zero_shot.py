"""Zero-shot classification accuracy on the shared SST-2 and BANKING77 development files, per prompt template and
label form, against the majority-class baseline measured on the same files: what chose the default template.

Each label is embedded in each template twice: its name as given (``card_arrival``) and rewritten as plain words
(``card arrival``: what ``lepton_runtime.tasks.zero_shot`` does). The texts are embedded once per file. Prints the
table and writes bench/results/zero-shot.md.

    python bench/zero_shot.py [--model minilm@production] [--registry models] [--variant fp32]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

# bench/queue.py would shadow the standard library's `queue` (torch imports it): keep this folder off the path.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for bench.shared_data

from bench.shared_data import shared_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TEMPLATES = ("{}", "This text is about {}.", "This example is {}.", "It is about {}.", "A message about {}.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a published embedding model (default: export one here)")
    parser.add_argument("--registry", default=str(ROOT / "models"), help="registry root of --model")
    parser.add_argument("--variant", default=None, help="fp32 or int8 (default: the engine's choice)")
    args = parser.parse_args()

    from lepton_runtime import Engine
    from lepton_runtime.registry import ModelRegistry
    from lepton_runtime.tasks.zero_shot import DEFAULT_TEMPLATE, ZERO_SHOT, label_sentence

    if args.model:
        version = ModelRegistry(args.registry).resolve(args.model)
    else:
        from export.publish import export_checkpoint
        from lepton_runtime.training import default_base_model

        scratch = Path(tempfile.mkdtemp(prefix="lepton-zero-shot-"))
        print("exporting all-MiniLM-L6-v2 (fp32) ...", file=sys.stderr)
        version = export_checkpoint(
            default_base_model(), ModelRegistry(scratch / "models"), "minilm", task="embedding", variants=["fp32"]
        )
    engine = Engine(version.path, **({"variant": args.variant} if args.variant else {}))
    rows = []
    for corpus in ("sst2", "banking77"):
        records = [json.loads(line) for line in shared_file(corpus).open(encoding="utf-8")]
        texts, truth = [r["text"] for r in records], [r["label"] for r in records]
        labels = sorted(set(truth))
        vectors = engine.embed(texts)
        majority = Counter(truth).most_common(1)[0][1] / len(truth)
        for template in TEMPLATES:
            for form, sentences in (
                ("as given", [template.replace("{}", label) for label in labels]),
                ("plain words", [label_sentence(label, template) for label in labels]),
            ):
                guesses = (vectors @ engine.embed(sentences).T).argmax(axis=1)
                accuracy = float(np.mean([labels[g] == t for g, t in zip(guesses, truth, strict=True)]))
                rows.append((corpus, len(texts), len(labels), template, form, accuracy, majority))
                print(f"{corpus} {template!r} {form}: {accuracy:.4f} (majority {majority:.4f})", file=sys.stderr)
    check = engine.infer(ZERO_SHOT, texts[:8], labels=labels)  # the task itself agrees with the table's default row
    assert all(result.label in labels for result in check)

    means = {
        (template, form): float(np.mean([r[5] for r in rows if r[3] == template and r[4] == form]))
        for template in TEMPLATES
        for form in ("as given", "plain words")
    }
    best = max(means, key=lambda key: means[key])
    lines = [
        "# Zero-shot classification: accuracy per template and label form",
        "",
        f"Model {version.reference} ({engine.provenance.variant}), `python bench/zero_shot.py`; texts embedded once "
        "per file, each label embedded in each template; accuracy against the file's labels; the baseline is the "
        "majority class of the same file.",
        "",
        "| file | texts | labels | template | labels as | accuracy | majority class | vs majority |",
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for corpus, count, n_labels, template, form, accuracy, majority in rows:
        lines.append(
            f"| {corpus} | {count:,} | {n_labels} | `{template}` | {form} | {accuracy:.4f} | {majority:.4f} "
            f"| {accuracy / majority:.2f}x |"
        )
    lines += ["", "Mean of the two files per template and label form:", ""]
    lines += [f"- `{template}`, {form}: {mean:.4f}" for (template, form), mean in means.items()]
    lines += [
        "",
        f"Best mean: `{best[0]}` with labels as {best[1]} ({means[best]:.4f}); the shipped default is "
        f"`{DEFAULT_TEMPLATE}` with plain words ({means[(DEFAULT_TEMPLATE, 'plain words')]:.4f}).",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "zero-shot.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
