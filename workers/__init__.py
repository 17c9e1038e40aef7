"""Workers: the Celery app, task bodies, worker boot and dead letters (the queue arrives with issue 3)."""
