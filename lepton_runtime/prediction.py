"""What a model answers, shared by the engine and producers: a prediction or an embedding with provenance, or an
error for one item."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# How a bulk row carries a vector: little-endian float32, base64 (exact, a third of the size of decimal JSON).
VECTOR_ENCODING = "base64-float32-le"


@dataclass(frozen=True)
class Provenance:
    """Exactly which model made a prediction, and how it was run."""

    model: str
    version: int | None
    sha256: str
    variant: str
    precision: str
    provider: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Prediction:
    """The label with the highest probability, its probability, all probabilities, and provenance."""

    label: str
    score: float
    scores: dict[str, float]
    model: Provenance
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": self.score,
            "scores": self.scores,
            "truncated": self.truncated,
            "model": self.model.as_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prediction:
        return cls(
            label=data["label"],
            score=data["score"],
            scores=data["scores"],
            model=Provenance.from_dict(data["model"]),
            truncated=data.get("truncated", False),
        )


@dataclass(frozen=True)
class Embedding:
    """One text's sentence embedding (unit length when the model normalises, as all-MiniLM-L6-v2 does)."""

    vector: Sequence[float]
    model: Provenance
    truncated: bool = False
    tokens: int = 0  # the tokens the model read (usage figures)

    def as_dict(self) -> dict[str, Any]:
        vector = self.vector.tolist() if hasattr(self.vector, "tolist") else [float(x) for x in self.vector]
        return {"embedding": vector, "truncated": self.truncated, "tokens": self.tokens, "model": self.model.as_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Embedding:
        return cls(
            vector=data["embedding"],
            model=Provenance.from_dict(data["model"]),
            truncated=data.get("truncated", False),
            tokens=data.get("tokens", 0),
        )


@dataclass(frozen=True)
class Entity:
    """A span of the original text and its type: ``text == original[start:end]`` (character offsets, end
    exclusive); ``score`` is the mean probability of its words' labels."""

    start: int
    end: int
    label: str
    score: float
    text: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Entities:
    """The entities found in one text, in order of their start, and provenance."""

    entities: list[Entity]
    model: Provenance

    def as_dict(self) -> dict[str, Any]:
        return {"entities": [entity.as_dict() for entity in self.entities], "model": self.model.as_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entities:
        return cls([Entity(**entity) for entity in data["entities"]], Provenance.from_dict(data["model"]))


@dataclass(frozen=True)
class ItemError:
    """Why one item of a request got no prediction; the others are unaffected."""

    index: int
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "error": {"code": self.code, "message": self.message}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ItemError:
        return cls(index=data["index"], code=data["error"]["code"], message=data["error"]["message"])


def encode_vector(vector: Any) -> str:
    """A vector as base64 of its little-endian float32 bytes (``VECTOR_ENCODING``)."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    """The float32 vector ``encode_vector`` wrote."""
    return np.frombuffer(base64.b64decode(text), dtype="<f4")
