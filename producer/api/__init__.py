"""The HTTP API (FastAPI): other services, in any language, submit and follow jobs with a bearer token.

Every route answers with a declared model; errors share one shape, ``{"error": {"code", "message",
"issues"}}``, with the stable codes and HTTP statuses of ``lepton_runtime.errors``. Submissions are refused
with 429 and ``Retry-After`` while the queue holds more than ``LEPTON_API_MAX_QUEUE_DEPTH`` waiting
messages, and an ``Idempotency-Key`` header makes a repeated submission return the first job.

    app.py           the factory: settings and client in app.state, error handlers, body limit, routers
    dependencies.py  settings, client, bearer tokens, queue depth (FastAPI dependencies)
    errors.py        the error shape, statuses from the error tree, handlers
    schemas.py       request and response models
    uploads.py       uploaded files, counted while copied
    routes/          classify, jobs, training, models, operations: one router each
"""

from producer.api.app import check_exposure, create_app, create_app_from_env

__all__ = ["check_exposure", "create_app", "create_app_from_env"]
