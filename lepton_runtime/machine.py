"""What this machine offers a process: the cores it may run on, a free port of loopback."""

from __future__ import annotations

import os
import socket


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now (for a Redis, an API or a test server started next)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
