"""Classifiers on the sentence embedding a sentence-transformers base defines: mean pooling (and L2 normalisation),
then a linear head; the module, its checkpoint files, and the head's first weights.

all-MiniLM-L6-v2 was trained for mean-pooled, normalised embeddings, not for its ``[CLS]`` pooler, so a classifier
fine-tuned from it puts its head where the base's meaning is. The checkpoint stays a sentence-transformers directory
(``modules.json``, ``1_Pooling/``, the encoder's ``config.json`` with the labels, ``model.safetensors``) plus
``classifier_head.safetensors``: ``lepton export`` reads it as encoder + pooling + head in one graph.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

POOLED_HEAD_FILE = "classifier_head.safetensors"
MODULES_FILE = "modules.json"
# The files besides the encoder's that make a directory a sentence-transformers checkpoint.
SENTENCE_TRANSFORMERS_FILES = (MODULES_FILE, "sentence_bert_config.json", "config_sentence_transformers.json")
POOLING_DIRECTORY = "1_Pooling"


def is_sentence_encoder(path: Path) -> bool:
    """Whether ``path`` is a sentence-transformers checkpoint (its pooling is known)."""
    return (path / MODULES_FILE).is_file()


def normalizes(path: Path) -> bool:
    """Whether the sentence-transformers checkpoint at ``path`` L2-normalises its embeddings."""
    modules = json.loads((path / MODULES_FILE).read_text(encoding="utf-8"))
    return any(module["type"].endswith(".Normalize") for module in modules)


def mean_pooled(encoder: Any, normalize: bool) -> Any:
    """The encoder followed by mean pooling over real tokens (and L2 normalisation), as sentence-transformers'
    Pooling and Normalize modules compute them: (input ids, mask, types) -> embeddings."""
    import torch

    class MeanPooledEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1) if normalize else pooled

    return MeanPooledEncoder().eval()


def pooled_classifier(pooled_encoder: Any, weight: np.ndarray, bias: np.ndarray) -> Any:
    """One module: ``pooled_encoder`` then a linear head starting at ``weight`` [labels x dimensions] and ``bias``;
    (input ids, mask, types) -> logits (what is trained end to end, and the graph to export)."""
    import torch

    class PooledClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = pooled_encoder
            self.classifier = torch.nn.Linear(weight.shape[1], weight.shape[0])
            with torch.no_grad():
                self.classifier.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)))
                self.classifier.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32)))

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            return self.classifier(self.encoder(input_ids, attention_mask, token_type_ids))

    return PooledClassifier().eval()


def save_pooled_classifier(model: Any, tokenizer: Any, base: Path, output_dir: Path, labels: list[str]) -> None:
    """Write ``model`` (a ``pooled_classifier``) to ``output_dir`` as a sentence-transformers directory with the
    base's pooling files, the labels in ``config.json`` and the head in POOLED_HEAD_FILE."""
    from safetensors.torch import save_file

    encoder = model.encoder.encoder
    encoder.config.id2label = dict(enumerate(labels))
    encoder.config.label2id = {label: i for i, label in enumerate(labels)}
    encoder.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    for name in SENTENCE_TRANSFORMERS_FILES:
        if (base / name).is_file():
            shutil.copy2(base / name, output_dir / name)
    if (base / POOLING_DIRECTORY).is_dir():
        shutil.copytree(base / POOLING_DIRECTORY, output_dir / POOLING_DIRECTORY, dirs_exist_ok=True)
    head = model.classifier
    save_file(
        {"weight": head.weight.detach().cpu().contiguous(), "bias": head.bias.detach().cpu().contiguous()},
        str(output_dir / POOLED_HEAD_FILE),
    )
