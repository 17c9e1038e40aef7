"""The app for Celery's own command line, built from the ``LEPTON_*`` settings: ``celery -A workers ...``.

Celery finds it by itself: ``-A workers`` looks for ``workers.celery`` and takes its ``app``. So an operator
can run ``celery -A workers inspect ping``, ``inspect active_queues``, ``control shutdown``, ``events``,
``purge -Q lepton.inference`` or ``celery -A workers flower`` against a running fleet (set
``LEPTON_REDIS_URL`` as the workers have it). Start workers with ``lepton worker``, which adds the warm-up,
sweeps and metrics of a Lepton worker process.
"""

from __future__ import annotations

import socket

from lepton_runtime.settings import load_settings
from workers import runtime
from workers.app import create_app

settings = load_settings()
runtime.configure(settings, runtime.WorkerOptions(name=f"celery@{socket.gethostname()}"))
app = create_app(settings)
