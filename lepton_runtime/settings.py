"""Settings of Lepton Runtime: one object read from ``LEPTON_*`` environment variables at entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from lepton_runtime import constants


class LeptonSettings(BaseSettings):
    """Everything an entry point needs to know about its environment; nothing below reads env itself."""

    model_config = SettingsConfigDict(env_prefix="LEPTON_", env_file=None, extra="ignore")

    redis_url: SecretStr = Field(
        default=SecretStr(constants.DEFAULT_REDIS_URL),
        description="Broker and result backend URL; may carry a password, so it is never logged.",
    )
    model_dir: Path = Field(default=Path(constants.DEFAULT_MODEL_DIR), description="Registry root.")
    device: Literal["cpu", "cuda"] = Field(default="cpu", description="Execution provider family.")
    intra_op_threads: int = Field(default=0, ge=0, description="ONNX Runtime threads; 0 = cores.")
    max_batch_tokens: int = Field(default=constants.DEFAULT_MAX_BATCH_TOKENS, ge=16)
    max_items: int = Field(default=constants.DEFAULT_MAX_ITEMS, ge=1)
    max_text_chars: int = Field(default=constants.DEFAULT_MAX_TEXT_CHARS, ge=1)
    api_tokens: list[SecretStr] = Field(default_factory=list, description="Bearer tokens of the API.")
    flower_basic_auth: SecretStr | None = Field(default=None, description="user:password for Flower.")


def load_settings() -> LeptonSettings:
    """Read the settings once; call this at an entry point and pass plain values down."""
    return LeptonSettings()
