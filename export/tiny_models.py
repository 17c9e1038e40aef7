"""Tiny random BERT checkpoints with MiniLM's tokenizer (2 layers, 32 wide): the models of the tests and of the
benchmarks that measure everything but the model (the queue, the store, Redis). Seeded, so the same on every run."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lepton_runtime.training import default_base_model

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
_SHAPE: dict[str, Any] = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
          "intermediate_size": 64, "max_position_embeddings": 512}  # fmt: skip


def tiny_classifier(directory: Path, labels: Sequence[str], *, seed: int = 0) -> Path:
    """A sequence classifier over ``labels``, untrained (a base to fine-tune, or a model whose speed is all that
    matters), saved with MiniLM's tokenizer in ``directory``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    options = _SHAPE | {
        "num_labels": len(labels), "id2label": dict(enumerate(labels)),
        "label2id": {label: index for index, label in enumerate(labels)},
    }  # fmt: skip
    config = BertConfig(**options)
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(directory)
    _copy_tokenizer(directory)
    return directory


def tiny_sentence_encoder(directory: Path, *, seed: int = 1, **config: Any) -> Path:
    """An untrained BERT saved as a sentence-transformers model (mean pooling, normalised: 32-float vectors)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    BertModel(BertConfig(**_SHAPE | config)).save_pretrained(directory)
    minilm = default_base_model()
    _copy_tokenizer(directory, extra=("modules.json",))
    (directory / "1_Pooling").mkdir(exist_ok=True)
    pooling = json.loads((minilm / "1_Pooling" / "config.json").read_text()) | {"word_embedding_dimension": 32}
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    return directory


def _copy_tokenizer(directory: Path, extra: Sequence[str] = ()) -> None:
    for name in (*TOKENIZER_FILES, *extra):
        shutil.copy(default_base_model() / name, directory / name)
