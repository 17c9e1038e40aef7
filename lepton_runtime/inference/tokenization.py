"""Tokenisation with the model's own fast (Rust) tokenizer, without padding: batches pad themselves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class EncodedText:
    """Token ids and type ids of one text (or of one window of a long text), and whether it was cut to the
    maximum length. Tasks that point into the text also get each token's character span (``offsets``, end
    exclusive; special tokens ``(0, 0)``), its word (``word_ids``, -1 for special tokens), the text itself,
    and the further windows of a text longer than one (``windows``: they overlap, nothing is cut)."""

    ids: np.ndarray
    type_ids: np.ndarray
    truncated: bool
    offsets: np.ndarray | None = None
    word_ids: np.ndarray | None = None
    text: str | None = None
    windows: tuple[EncodedText, ...] = ()


class TextEncoder:
    """Turns texts into token ids with truncation at ``max_length`` and no padding; with ``window_stride`` a
    long text becomes windows of ``max_length`` tokens overlapping by that many tokens, with offsets."""

    def __init__(
        self, tokenizer_path: Path, max_length: int, *, window_stride: int | None = None, offsets: bool = False
    ) -> None:
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # tokenizer.json files often pad every text to a fixed length; batching pads far less.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length, stride=window_stride or 0)
        self.max_length = max_length
        self.windowed = window_stride is not None
        self.offsets = offsets or self.windowed

    def encode(self, texts: list[str]) -> list[EncodedText]:
        """Encode texts in one call to the Rust tokenizer."""
        encodings = self.tokenizer.encode_batch(texts)
        if not self.offsets:
            return [
                EncodedText(
                    ids=np.asarray(encoding.ids, dtype=np.int64),
                    type_ids=np.asarray(encoding.type_ids, dtype=np.int64),
                    truncated=bool(encoding.overflowing),
                )
                for encoding in encodings
            ]
        return [self._with_offsets(encoding, text) for encoding, text in zip(encodings, texts, strict=True)]

    def _with_offsets(self, encoding: Encoding, text: str) -> EncodedText:
        def one(part: Encoding, windows: tuple[EncodedText, ...] = ()) -> EncodedText:
            return EncodedText(
                ids=np.asarray(part.ids, dtype=np.int64),
                type_ids=np.asarray(part.type_ids, dtype=np.int64),
                truncated=bool(part.overflowing) and not self.windowed,
                offsets=np.asarray(part.offsets, dtype=np.int64).reshape(-1, 2),
                word_ids=np.asarray([-1 if word is None else word for word in part.word_ids], dtype=np.int64),
                text=text,
                windows=windows,
            )

        windows = tuple(one(part) for part in encoding.overflowing) if self.windowed else ()
        return one(encoding, windows)
