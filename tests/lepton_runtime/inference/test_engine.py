"""The Engine on a real exported tiny BERT: predictions, order, provenance, bad input, integrity, providers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from lepton_runtime.errors import (
    InvalidInputError,
    ModelIntegrityError,
    ModelNotFoundError,
    ProviderUnavailableError,
)
from lepton_runtime.inference import Engine, ItemError, Prediction
from lepton_runtime.labelled_data import LabelledTexts
from lepton_runtime.registry import ModelRegistry, ModelVersion

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(published: ModelVersion) -> Engine:
    return Engine(published.path, max_items=50, max_text_chars=2_000, intra_op_threads=1)


def test_classify_returns_labels_probabilities_and_exact_provenance(engine: Engine, published: ModelVersion) -> None:
    (prediction,) = engine.classify(["a warm , funny and moving film"])
    assert isinstance(prediction, Prediction)
    assert prediction.label in ("problem", "question")
    assert set(prediction.scores) == {"problem", "question"}
    assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert prediction.score == max(prediction.scores.values())
    variant = prediction.model.variant
    assert variant == "int8"  # auto picks the verified int8 graph on the CPU
    assert prediction.model.model == "tiny" and prediction.model.version == published.version
    assert prediction.model.sha256 == published.manifest.files[published.manifest.variants[variant].file].sha256
    assert prediction.model.provider == "CPUExecutionProvider"
    assert prediction.model.precision == "int8"


def test_results_come_back_in_input_order_whatever_the_batching(
    published: ModelVersion, banking: LabelledTexts
) -> None:
    # fp32: int8 quantises activations per batch, so its scores shift slightly with batch company.
    engine = Engine(published.path, variant="fp32", max_batch_tokens=256, max_batch_size=8)
    texts = banking.texts[:60]
    together = engine.classify(texts)
    one_by_one = [engine.classify([t])[0] for t in texts]
    np.testing.assert_allclose([p.score for p in together], [p.score for p in one_by_one], atol=1e-5)
    assert [p.label for p in together] == [p.label for p in one_by_one]
    assert len({p.label for p in together}) == 2, "the tiny model should not answer one label for everything"
    assert engine.stats.batches > 60 and engine.stats.padding_efficiency > 0.5


def test_overlapped_batches_give_the_same_answers_in_order(published: ModelVersion, banking: LabelledTexts) -> None:
    # the GPU default (pad the next batch while the device runs this one), exercised on the CPU
    texts = banking.texts[:200]
    plain = Engine(published.path, variant="fp32", max_batch_tokens=256, max_batch_size=16)
    overlapped = Engine(published.path, variant="fp32", max_batch_tokens=256, max_batch_size=16, overlap_batches=True)
    expected, got = plain.classify(texts), overlapped.classify(texts)
    assert [p.label for p in got] == [p.label for p in expected]
    np.testing.assert_allclose([p.score for p in got], [p.score for p in expected], atol=1e-6)
    assert overlapped.stats.batches == plain.stats.batches > 10
    assert overlapped.stats.real_tokens == plain.stats.real_tokens


def test_seed_style_api_returns_one_dict(engine: Engine) -> None:
    answer = engine.forward(engine.preprocess("great film"))
    assert isinstance(answer, dict)
    assert answer["label"] in answer["scores"] and answer["score"] == max(answer["scores"].values())
    assert answer["model"]["model"] == "tiny"
    many = engine.forward(engine.preprocess(["great film", "dull"]))
    assert isinstance(many, list) and len(many) == 2


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ("just a string", "expected a list of strings, got str"),
        ([], "the list is empty"),
        (["ok"] * 51, "51 items is over the limit of 50"),
        (["ok", 7], r"texts\[1\]: expected a string, got int"),
        (["ok", ""], r"texts\[1\]: text is empty"),
        (["ok", "   \n"], r"texts\[1\]: text is empty"),
        (["ok", "x" * 2_001], r"texts\[1\]: text has 2001 characters \(limit: 2000 characters\)"),
        (["ok", "nul\x00byte"], r"texts\[1\]: text contains a NUL"),
        ([None, "ok", ["nested"]], r"2 of 3 texts are invalid: texts\[0\].*texts\[2\]"),
    ],
)
def test_bad_input_is_refused_naming_the_item_and_the_limit(engine: Engine, texts: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as caught:
        engine.classify(texts)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_input" and caught.value.issues


def test_one_bad_item_does_not_hide_the_others(engine: Engine) -> None:
    results = engine.classify(["good film", "", "bad film", 3], errors="return")
    assert [type(r) for r in results] == [Prediction, ItemError, Prediction, ItemError]
    assert results[1].index == 1 and "empty" in results[1].message
    assert results[0].label == engine.classify(["good film"])[0].label


def test_overflow_policy_truncates_and_says_so_or_refuses(published: ModelVersion) -> None:
    long_text = "terrific " * 500
    (prediction,) = Engine(published.path, warm=False).classify([long_text, "short"])[:1]
    assert prediction.truncated
    strict = Engine(published.path, on_overflow="error", warm=False)
    with pytest.raises(InvalidInputError, match=r"texts\[0\].*longer than the model's token limit.*128 tokens"):
        strict.classify([long_text])


def test_load_by_reference_and_variant(published: ModelVersion) -> None:
    registry = ModelRegistry(published.path.parent.parent)
    fp32 = Engine.load("tiny@production", registry=registry, variant="fp32", warm=False)
    assert fp32.provenance.precision == "fp32" and fp32.provenance.version == published.version
    with pytest.raises(ModelNotFoundError, match="has no fp16 variant"):
        Engine.load("tiny", registry=registry, variant="fp16")


def test_a_flipped_byte_is_caught_before_load(copy_of_published: ModelRegistry) -> None:
    version = copy_of_published.resolve("tiny")
    target = version.path / version.manifest.variants["int8"].file
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=r"model\.int8\.onnx: sha256 differs"):
        Engine(version.path)


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="a CUDA build is installed")
def test_cuda_asked_but_absent_refuses_to_start(published: ModelVersion) -> None:
    with pytest.raises(ProviderUnavailableError, match=r"Asked to use CUDAExecutionProvider, but the available"):
        Engine(published.path, device="cuda")


def test_importing_inference_loads_neither_torch_nor_transformers() -> None:
    code = (
        "import sys, lepton_runtime.inference, lepton_runtime;"
        "from lepton_runtime import Engine;"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent)
    assert completed.returncode == 0, completed.stdout + completed.stderr
