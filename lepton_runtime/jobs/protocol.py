"""The Celery configuration both sides share: JSON only, queues, key prefix, acks and time limits.

Producers build a send-only Celery app from it and workers the full one, so a setting that both
must agree on (serialisation, key prefix, routes) is written once. It is plain data: importing
this module imports neither celery nor any worker code.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from lepton_runtime.constants import (
    BULK_CHUNK_TASK,
    CLASSIFY_TASK,
    INFERENCE_QUEUE,
    PRIORITY_STEPS,
    REDIS_KEY_PREFIX,
    TRAIN_TASK,
    TRAINING_QUEUE,
)
from lepton_runtime.jobs.keys import TRAINING_UNACKED_KEYS
from lepton_runtime.settings import LeptonSettings

TASK_QUEUES = {CLASSIFY_TASK: INFERENCE_QUEUE, BULK_CHUNK_TASK: INFERENCE_QUEUE, TRAIN_TASK: TRAINING_QUEUE}
# Message priorities (Redis: lower runs first, PRIORITY_STEPS): one-shot requests before bulk chunks.
INTERACTIVE_PRIORITY = 0
BULK_PRIORITY = 6
RESULT_BACKEND_CLASS = "lepton_runtime.jobs.result_backend:LeptonResultBackend"
SENTINEL_RESULT_BACKEND_CLASS = "lepton_runtime.jobs.result_backend:LeptonSentinelResultBackend"
# kombu's Redis transport, mended so that a Redis outage never ends a worker (jobs/transport.py).
BROKER_TRANSPORT_CLASS = "lepton_runtime.jobs.transport:Transport"
SENTINEL_BROKER_TRANSPORT_CLASS = "lepton_runtime.jobs.transport:SentinelTransport"
# Results of one-shot tasks (`lepton.classify`) are kept this long in the result backend.
RESULT_TTL_S = 24 * 3600


def celery_config(settings: LeptonSettings, *, consumes: Collection[str] = (INFERENCE_QUEUE,)) -> dict[str, Any]:
    """Celery settings (lower-case names) for ``app.conf.update``; ``consumes``: the queues a worker takes."""
    training = TRAINING_QUEUE in consumes
    sentinel = settings.sentinel_options()  # with Sentinels: the service's name, their password; else empty
    transport = {
        "global_keyprefix": REDIS_KEY_PREFIX,
        "visibility_timeout": (settings.training_visibility_timeout_s if training else settings.visibility_timeout_s),
        **(TRAINING_UNACKED_KEYS if training else {}),
        # give abandoned messages back every restore interval (kombu scans every Nth call otherwise)
        "unacked_restore_interval": settings.restore_interval_s,
        "unacked_restore_throttle": 1,
        # the lock of a restore scan (milliseconds of work) expires soon: one left by a process killed mid-scan, or
        # copied to a replica that a failover promotes, would otherwise stop every restore for kombu's 300 s
        "unacked_mutex_expire": max(10, int(2 * settings.restore_interval_s)),
        # one list per priority, consumed strictly in order: a one-text request never waits behind
        # a bulk job's thousands of chunks
        "priority_steps": list(PRIORITY_STEPS),
        "queue_order_strategy": "priority",
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 25,
        **sentinel,
    }
    backend = SENTINEL_RESULT_BACKEND_CLASS if sentinel else RESULT_BACKEND_CLASS
    return {
        "broker_url": settings.broker_url,
        # Celery's Redis backend with a one-round-trip store (jobs/result_backend.py), named by path:
        # importing this module still imports no celery
        "result_backend": f"{backend}+{settings.broker_url}",
        # JSON only: a pickle message is refused before it is decoded
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        "broker_transport": SENTINEL_BROKER_TRANSPORT_CLASS if sentinel else BROKER_TRANSPORT_CLASS,
        "broker_transport_options": transport,
        "result_backend_transport_options": {
            "global_keyprefix": REDIS_KEY_PREFIX,
            "retry_policy": {"timeout": 5.0},
            **sentinel,
        },
        "result_expires": RESULT_TTL_S,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_default_queue": INFERENCE_QUEUE,
        "task_routes": {name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
        "task_create_missing_queues": True,
        # at-least-once: acknowledge after the task, give the message back if its process dies
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit_s,
        "task_soft_time_limit": settings.task_soft_time_limit_s,
        "task_annotations": {
            TRAIN_TASK: {"time_limit": settings.train_time_limit_s, "soft_time_limit": settings.train_soft_time_limit_s}
        },
        # events for Flower: received, started, succeeded, failed, retried (the worker sends them);
        # no "sent" event and no STARTED state write, each an extra Redis write on the one-text path
        "worker_send_task_events": True,
        "task_send_sent_event": False,
        "task_track_started": False,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
    }


__all__ = ["BULK_PRIORITY", "INTERACTIVE_PRIORITY", "TASK_QUEUES", "celery_config"]
