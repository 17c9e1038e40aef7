"""The Celery app keeps the contract: exactly its task names, JSON only, at-least-once delivery, events on."""

from __future__ import annotations

from pydantic import SecretStr

from lepton_runtime.settings import LeptonSettings
from workers.app import create_app


def test_the_app_registers_exactly_the_contract_and_is_safe_by_default() -> None:
    settings = LeptonSettings(redis_url=SecretStr("redis://:secret@127.0.0.1:1/0"))
    app = create_app(settings)
    assert sorted(name for name in app.tasks if not name.startswith("celery.")) == [
        "lepton.bulk.chunk",
        "lepton.classify",
        "lepton.train",
    ]
    conf = app.conf
    assert conf.accept_content == ["json"] and conf.task_serializer == "json" and conf.result_accept_content == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.worker_send_task_events  # Flower sees received, started, succeeded, failed, retried
    assert conf.task_soft_time_limit < conf.task_time_limit
    # a held message is a lease its worker renews (jobs/transport.py): short, so a dead worker's work comes back soon
    transport = conf.broker_transport_options
    assert transport["visibility_timeout"] == 20 and transport["unacked_restore_interval"] == 5
    assert transport["unacked_mutex_expire"] <= 10  # kombu's 300 s lock would stall restores after a failover
    assert conf.broker_transport.endswith("jobs.transport:Transport")
    assert conf.broker_transport_options["global_keyprefix"] == "lepton:"
    assert conf.task_routes["lepton.classify"]["queue"] == conf.task_routes["lepton.bulk.chunk"]["queue"]
    assert conf.task_routes["lepton.bulk.chunk"]["queue"] == "lepton.inference"
    assert conf.task_routes["lepton.train"]["queue"] == "lepton.training"


def test_a_training_worker_never_gives_a_running_run_to_a_second_worker() -> None:
    settings = LeptonSettings(redis_url=SecretStr("redis://127.0.0.1:1/0"))
    inference = create_app(settings).conf
    training = create_app(settings, consumes=["lepton.training"]).conf
    train = training.task_annotations["lepton.train"]
    assert train["soft_time_limit"] < train["time_limit"] < training.broker_transport_options["visibility_timeout"]
    assert train["time_limit"] > inference.broker_transport_options["visibility_timeout"]
    # the inference workers' restore sweep looks at other keys, so it never hands back a training message
    keys = ("unacked_key", "unacked_index_key", "unacked_mutex_key")
    assert all(
        training.broker_transport_options[key] != inference.broker_transport_options.get(key, key.removesuffix("_key"))
        for key in keys
    )
