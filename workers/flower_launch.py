"""Flower, with its Prometheus /metrics behind the same password as its pages (Flower 2 serves /metrics
to anyone); run as ``python -m workers.flower_launch --app workers.celery:app flower ...``."""

from __future__ import annotations

import sys


def protect_metrics() -> None:
    """Require Flower's own authentication (basic auth or OAuth, when configured) on /metrics."""
    import tornado.web
    from flower.views import monitor

    monitor.Metrics.get = tornado.web.authenticated(monitor.Metrics.get)


def main(arguments: list[str]) -> None:
    from celery.bin.celery import main as celery_main

    protect_metrics()
    sys.argv = ["celery", *arguments]
    celery_main()


if __name__ == "__main__":
    main(sys.argv[1:])
