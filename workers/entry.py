"""The app for Celery's own command line (``celery -A workers.entry:app flower``): settings from LEPTON_*."""

from __future__ import annotations

import socket

from lepton_runtime.settings import load_settings
from workers import runtime
from workers.app import create_app

settings = load_settings()
runtime.configure(settings, runtime.WorkerOptions(name=f"celery@{socket.gethostname()}"))
app = create_app(settings)
