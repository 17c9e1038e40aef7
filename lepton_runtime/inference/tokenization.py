"""Tokenisation with the model's own fast (Rust) tokenizer, without padding: batches pad themselves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class EncodedText:
    """Token ids and type ids of one text, and whether it was cut to the maximum length."""

    ids: np.ndarray
    type_ids: np.ndarray
    truncated: bool


class TextEncoder:
    """Turns texts into token ids with truncation at ``max_length`` and no padding."""

    def __init__(self, tokenizer_path: Path, max_length: int) -> None:
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # tokenizer.json files often pad every text to a fixed length; batching pads far less.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.max_length = max_length

    def encode(self, texts: list[str]) -> list[EncodedText]:
        """Encode texts in one call to the Rust tokenizer."""
        return [
            EncodedText(
                ids=np.asarray(encoding.ids, dtype=np.int64),
                type_ids=np.asarray(encoding.type_ids, dtype=np.int64),
                truncated=bool(encoding.overflowing),
            )
            for encoding in self.tokenizer.encode_batch(texts)
        ]
