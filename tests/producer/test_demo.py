"""`lepton demo`'s summary: which variant served the bulk job and the gate it passed."""

from __future__ import annotations

from lepton_runtime.registry import ModelVersion
from producer.demo import variant_note


def test_variant_note_names_the_int8_recipe_and_its_gate(published: ModelVersion) -> None:
    gate = published.manifest.variants["int8"].gate
    note = variant_note(published, "int8")
    assert note.startswith(f"int8 ({gate['recipe']})")
    assert f"gate accuracy {gate['accuracy']:.4f} vs fp32 {gate['fp32_accuracy']:.4f}" in note
    assert ("missed the gate" in note) == bool(gate["tried"])


def test_variant_note_of_fp32_has_no_recipe(published: ModelVersion) -> None:
    assert variant_note(published, "fp32").startswith("fp32")
    assert "(" not in variant_note(published, "fp32")
