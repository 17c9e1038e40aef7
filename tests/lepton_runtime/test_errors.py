"""The error tree is the one source of codes: each class declares its code and HTTP status, codes are unique,
and the HTTP API guide (docs/guide/http-api.md) lists every code a client can receive."""

from __future__ import annotations

import re
from pathlib import Path

from lepton_runtime.errors import LeptonError, error_classes, http_status_by_code

API_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide" / "http-api.md"


def test_every_class_declares_its_own_code_and_http_status() -> None:
    classes = error_classes()
    assert len(classes) > 20 and classes[0] is LeptonError
    for kind in classes:
        assert "code" in vars(kind), f"{kind.__name__} inherits its code: give it one of its own"
        assert "http_status" in vars(kind), f"{kind.__name__} has no HTTP status of its own: declare http_status"
        assert 400 <= kind.http_status <= 599, kind
        assert kind.__doc__ and kind.__doc__.split()[0] in {"Raised", "Recorded", "Reported"}, kind
    codes = [kind.code for kind in classes]
    assert len(codes) == len(set(codes)), "two classes share a code"
    assert http_status_by_code() == {kind.code: kind.http_status for kind in classes}


def test_the_tree_drawing_and_the_api_guide_name_every_code() -> None:
    import lepton_runtime.errors as errors

    drawing = errors.__doc__ or ""
    guide = API_GUIDE.read_text(encoding="utf-8")
    for kind in error_classes()[1:]:  # the root's code is never sent
        assert re.search(rf"{kind.__name__}\s+{kind.code}\s+{kind.http_status}\b", drawing), kind.__name__
        assert f"`{kind.code}`" in guide, f"{API_GUIDE.name} does not list the error code {kind.code}"
