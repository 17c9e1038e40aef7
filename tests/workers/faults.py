"""Faults for worker tests, loaded into a real worker with ``--include tests.workers.faults``.

A text equal to POISON kills the process that classifies it (SIGKILL, like the OOM killer); a text
equal to HANG makes the process tell the test (a Redis list) and then wait forever, so the test
knows the worker is in the middle of that chunk when it kills it; STUCK waits through the soft
time limit, so only the hard one (the pool process is killed) ends it. HANG_ONCE hangs like HANG in the first
process that meets it only (a whole worker killed there: the process that gets it next runs it); SLOW pushes
its pid to SLOW_KEY, then takes LEPTON_TEST_SLOW_S seconds (a long task on a live worker); LATE returns at once,
and then Celery stores its result for LEPTON_TEST_LATE_S seconds, so its soft time limit passes after the body
returned. The faults live inside
``Engine.run`` (what workers call for every task), so they strike after the delivery was counted, like a real crash.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Any

from celery.backends.base import Backend
from celery.exceptions import SoftTimeLimitExceeded

from lepton_runtime.inference.engine import Engine
from lepton_runtime.jobs import connect

POISON = "__lepton_test_poison__"
HANG = "__lepton_test_hang__"
STUCK = "__lepton_test_stuck__"  # hangs and ignores the soft time limit: only the hard limit ends it
HANG_ONCE = "__lepton_test_hang_once__"
SLOW = "__lepton_test_slow__"
LATE = "__lepton_test_late__"
HANGING_KEY = "lepton:test:hanging"
SLOW_KEY = "lepton:test:slow"
_HUNG_ONCE_KEY = "lepton:test:hung-once"

_run = Engine.run
_mark_as_done = Backend.mark_as_done
_late_results: list[bool] = []  # one entry while this process owes a slow result store to a LATE task


def _run_with_faults(self: Engine, texts: Any, **options: Any) -> Any:
    if POISON in texts:
        os.kill(os.getpid(), signal.SIGKILL)
    if HANG in texts:
        with connect(os.environ["LEPTON_REDIS_URL"]) as client:
            client.rpush(HANGING_KEY, os.getpid())
        threading.Event().wait()
    if HANG_ONCE in texts:
        with connect(os.environ["LEPTON_REDIS_URL"]) as client:
            first = client.set(_HUNG_ONCE_KEY, os.getpid(), nx=True)
            if first:
                client.rpush(HANGING_KEY, os.getpid())
        if first:
            threading.Event().wait()
    if SLOW in texts:
        with connect(os.environ["LEPTON_REDIS_URL"]) as client:
            client.rpush(SLOW_KEY, os.getpid())
        time.sleep(float(os.environ.get("LEPTON_TEST_SLOW_S", "4")))  # the long task itself, not a wait for anything
    if LATE in texts:
        _late_results.append(True)
    if STUCK in texts:
        while True:
            with contextlib.suppress(SoftTimeLimitExceeded):
                threading.Event().wait()
    return _run(self, texts, **options)


def _mark_as_done_late(self: Backend, *args: Any, **kwargs: Any) -> Any:
    if _late_results:
        _late_results.clear()
        time.sleep(float(os.environ.get("LEPTON_TEST_LATE_S", "3")))  # a slow store, not a wait for anything
    return _mark_as_done(self, *args, **kwargs)


Engine.run = _run_with_faults  # type: ignore[method-assign]
Backend.mark_as_done = _mark_as_done_late  # type: ignore[method-assign]
