"""Settings from LEPTON_* variables: empty values mean defaults, limits are checked together, secrets stay hidden."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lepton_runtime.settings import LeptonSettings


def test_empty_variables_mean_the_defaults_and_the_url_stays_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEPTON_REDIS_URL", "")
    monkeypatch.setenv("LEPTON_VISIBILITY_TIMEOUT_S", "")
    settings = LeptonSettings()
    assert not settings.broker_configured and settings.broker_url == "redis://127.0.0.1:6390/0"
    assert settings.visibility_timeout_s == 20 and settings.training_visibility_timeout_s > settings.train_time_limit_s
    monkeypatch.setenv("LEPTON_REDIS_URL", "redis://:hunter2@10.0.0.5:6379/0")
    configured = LeptonSettings()
    assert configured.broker_url.endswith("@10.0.0.5:6379/0")
    assert "hunter2" not in repr(configured) and "hunter2" not in str(configured.model_dump())


def test_time_limits_must_nest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEPTON_TASK_TIME_LIMIT_S", "600")
    monkeypatch.setenv("LEPTON_TASK_SOFT_TIME_LIMIT_S", "500")
    with pytest.raises(ValidationError, match="LEPTON_TASK_SOFT_TIME_LIMIT_S"):
        LeptonSettings(task_soft_time_limit_s=700)
    with pytest.raises(ValidationError, match="visibility_timeout_s"):
        LeptonSettings(visibility_timeout_s=0.5)  # renewed every 0.125 s: too short to be a lease


def test_the_env_example_lists_every_setting() -> None:
    from pathlib import Path

    from lepton_runtime.settings import LeptonSettings

    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    missing = [name for name in LeptonSettings.model_fields if f"LEPTON_{name.upper()}=" not in text]
    assert not missing, f".env.example lacks {missing}"
