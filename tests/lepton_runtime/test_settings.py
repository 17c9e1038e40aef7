"""Settings from LEPTON_* variables: empty values mean defaults, limits are checked together, secrets stay hidden."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lepton_runtime.settings import LeptonSettings

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


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
    text = ENV_EXAMPLE.read_text()
    missing = [name for name in LeptonSettings.model_fields if f"LEPTON_{name.upper()}=" not in text]
    assert not missing, f".env.example lacks {missing}"


def test_the_env_example_shows_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """.env.example says "defaults shown": a value there that is not the default misleads whoever copies it."""
    for name in LeptonSettings.model_fields:
        monkeypatch.delenv(f"LEPTON_{name.upper()}", raising=False)
    from_example = LeptonSettings(_env_file=ENV_EXAMPLE).model_dump()  # type: ignore[call-arg]
    defaults = LeptonSettings().model_dump()
    differ = {name: (value, defaults[name]) for name, value in from_example.items() if value != defaults[name]}
    assert not differ, f".env.example shows values that are not the defaults (shown, default): {differ}"


def test_sentinels_give_kombus_url_and_options_and_passwords_stay_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from lepton_runtime.jobs import redacted
    from lepton_runtime.jobs.protocol import celery_config

    monkeypatch.setenv("LEPTON_REDIS_SENTINELS", "10.0.0.1:26379,10.0.0.2:26380")
    monkeypatch.setenv("LEPTON_REDIS_PASSWORD", "p@ss/word")
    monkeypatch.setenv("LEPTON_REDIS_SENTINEL_PASSWORD", "sentinel-secret")
    settings = LeptonSettings()
    assert settings.broker_configured
    assert (
        settings.broker_url == "sentinel://:p%40ss%2Fword@10.0.0.1:26379/0;sentinel://:p%40ss%2Fword@10.0.0.2:26380/0"
    )
    assert settings.sentinel_options() == {"master_name": "lepton", "sentinel_kwargs": {"password": "sentinel-secret"}}
    assert redacted(settings.broker_url) == "sentinel://10.0.0.1:26379/0;sentinel://10.0.0.2:26380/0"
    config = celery_config(settings)
    assert config["broker_transport"].endswith(":SentinelTransport")
    assert config["result_backend"].startswith("lepton_runtime.jobs.result_backend:LeptonSentinelResultBackend+")
    assert config["result_backend_transport_options"]["master_name"] == "lepton"
    assert "sentinel-secret" not in repr(settings) and "p@ss" not in repr(settings)
    monkeypatch.setenv("LEPTON_REDIS_SENTINELS", "10.0.0.1")  # no port
    with pytest.raises(ValidationError, match="redis_sentinels"):
        LeptonSettings()
