"""Export on a real tiny BERT: manifest contents, parity gate, int8 gate, fp16 marking, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import export.pipeline as pipeline
from export.publish import export_checkpoint
from export.quality import compare_predictions
from lepton_runtime.errors import ExportError, InvalidInputError, ParityError
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelRegistry, ModelVersion
from lepton_runtime.registry.checksums import sha256_file

pytestmark = pytest.mark.slow


def test_published_manifest_records_everything_a_user_checks(published: ModelVersion) -> None:
    manifest = published.manifest
    assert manifest.labels == ["problem", "question"]
    assert manifest.max_sequence_length == 128 and manifest.opset == 17
    assert set(manifest.variants) == {"fp32", "int8"}
    assert all(v.verified for v in manifest.variants.values())
    shapes = {(c["batch_size"], c["sequence_length"]) for c in manifest.parity["cases"]}
    assert shapes == {(b, s) for b in (1, 7, 64) for s in (8, 128)}
    assert manifest.parity["max_abs_diff"] <= 1e-4
    assert any(op.startswith("Attention") for op in manifest.variants["fp32"].optimizations)
    int8_gate = manifest.variants["int8"].gate
    assert int8_gate["accuracy_drop_points"] <= 0.5 and 0 < int8_gate["agreement_with_fp32"] <= 1
    assert {"fp32_accuracy", "accuracy", "recipe"} <= set(int8_gate)
    assert manifest.metrics["validation_accuracy"] > 0.6 and "golden_fp32_accuracy" in manifest.metrics
    for relative, entry in manifest.files.items():
        assert sha256_file(published.path / relative) == entry.sha256
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json", "config.json"} <= set(manifest.files)
    assert manifest.source["sha256"] and manifest.created_at


def _perturbing_exporter(real_export):  # type: ignore[no-untyped-def]
    """The real exporter, then a change to the classifier bias: what a broken export looks like."""

    def export(model, output, opset, *args, **options):  # type: ignore[no-untyped-def]
        path = real_export(model, output, opset, *args, **options)
        graph = onnx.load(str(path))
        for initializer in graph.graph.initializer:
            if "classifier.bias" in initializer.name:
                bias = numpy_helper.to_array(initializer).copy()
                bias[0] += 0.5
                initializer.CopyFrom(numpy_helper.from_array(bias, initializer.name))
        onnx.save(graph, str(path))
        return path

    return export


def test_a_parity_failure_publishes_nothing_and_lists_every_shape(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "export_onnx", _perturbing_exporter(pipeline.export_onnx))
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ParityError) as caught:
        export_checkpoint(tiny_checkpoint, registry, "broken")
    message = str(caught.value)
    assert "6 of 6 shapes" in message and "nothing was published" in message
    for batch in (1, 7, 64):
        for length in (8, 128):
            assert f"batch {batch} x seq {length}" in message
    assert registry.list_models() == []
    assert not any((tmp_path / "broken" / ".staging").iterdir())


def test_int8_needs_a_golden_set(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(InvalidInputError, match="--golden"):
        export_checkpoint(tiny_checkpoint, ModelRegistry(tmp_path), "m", variants=["int8"])


def test_golden_labels_must_be_the_models(tmp_path: Path, tiny_checkpoint: Path) -> None:
    golden = tmp_path / "golden.jsonl"
    golden.write_text(json.dumps({"text": "fine", "label": "neutral"}) + "\n")
    with pytest.raises(InvalidInputError, match="labels the model does not know: \\['neutral'\\]"):
        export_checkpoint(tiny_checkpoint, ModelRegistry(tmp_path / "r"), "m", golden=golden)


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="a GPU gates fp16 for real")
def test_fp16_without_a_gpu_is_published_unverified_and_never_chosen_automatically(
    tmp_path: Path, tiny_checkpoint: Path, golden_file: Path
) -> None:
    from lepton_runtime.inference import Engine

    version = export_checkpoint(
        tiny_checkpoint, ModelRegistry(tmp_path), "m", variants=["fp32", "fp16"], golden=golden_file
    )
    fp16 = version.manifest.variants["fp16"]
    assert fp16.verified is False and "unverified" in (fp16.note or "")
    assert Engine(version.path, warm=False).provenance.variant == "fp32"


def test_a_checkpoint_that_is_not_a_classifier_is_refused(tmp_path: Path) -> None:
    from lepton_runtime.training import default_base_model

    with pytest.raises(ExportError, match=r"not a sequence\s+classifier"):
        export_checkpoint(default_base_model(), ModelRegistry(tmp_path), "m")


@pytest.mark.parametrize(
    ("candidate", "labels", "passed"),
    [
        (["a"] * 200, ["a"] * 200, True),  # identical
        (["a"] * 199 + ["b"], ["a"] * 200, True),  # 0.5 point drop: at the limit
        (["a"] * 198 + ["b"] * 2, ["a"] * 200, False),  # 1 point drop
        (["a"] * 198 + ["b"] * 2, None, True),  # unlabelled: 99% agreement passes
        (["a"] * 197 + ["b"] * 3, None, False),  # unlabelled: 98.5% fails
    ],
)
def test_int8_gate_thresholds(candidate: list[str], labels: list[str] | None, passed: bool) -> None:
    golden = LabelledTexts(["t"] * 200, labels, "golden")
    assert compare_predictions(["a"] * 200, candidate, golden).passed is passed
