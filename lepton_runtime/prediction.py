"""What a model answers, shared by the engine and producers: a prediction with provenance, or an error for one item."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
