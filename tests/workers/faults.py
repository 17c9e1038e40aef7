"""Faults for worker tests, loaded into a real worker with ``--include tests.workers.faults``.

A text equal to POISON kills the process that classifies it (SIGKILL, like the OOM killer); a text
equal to HANG makes the process tell the test (a Redis list) and then wait forever, so the test
knows the worker is in the middle of that chunk when it kills it; STUCK waits through the soft
time limit, so only the hard one (the pool process is killed) ends it. HANG_ONCE hangs like HANG in the first
process that meets it only (a whole worker killed there: the process that gets it next runs it); SLOW takes
LEPTON_TEST_SLOW_S seconds (a long task on a live worker). The faults live inside
``Engine.run`` (what workers call for every task), so they strike after the delivery was counted, like a real crash.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from lepton_runtime.inference.engine import Engine
from lepton_runtime.jobs import connect

POISON = "__lepton_test_poison__"
HANG = "__lepton_test_hang__"
STUCK = "__lepton_test_stuck__"  # hangs and ignores the soft time limit: only the hard limit ends it
HANG_ONCE = "__lepton_test_hang_once__"
SLOW = "__lepton_test_slow__"
HANGING_KEY = "lepton:test:hanging"
_HUNG_ONCE_KEY = "lepton:test:hung-once"

_run = Engine.run


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
        time.sleep(float(os.environ.get("LEPTON_TEST_SLOW_S", "4")))  # the long task itself, not a wait for anything
    if STUCK in texts:
        while True:
            with contextlib.suppress(SoftTimeLimitExceeded):
                threading.Event().wait()
    return _run(self, texts, **options)


Engine.run = _run_with_faults  # type: ignore[method-assign]
