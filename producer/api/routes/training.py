"""``/v1/train``: a fine-tuning run queued on an uploaded labelled file (followed at ``/v1/jobs/{id}``)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, UploadFile
from fastapi.responses import Response

from lepton_runtime.jobs import DEFAULT_TRAINING, PromotePolicy, TrainedTask, TrainingOptions, TrainRequest
from producer.api.dependencies import TRAIN, Client, CurrentCaller, Settings
from producer.api.errors import error_responses
from producer.api.routes.jobs import submitted
from producer.api.schemas import NAME_RULES, SubmittedJob, id_links
from producer.api.tenancy import audited
from producer.api.uploads import uploaded

# A file part as OpenAPI 3.0 tools read one (FastAPI declares only contentMediaType, which clients generated from
# the document take for a plain string field and send as one).
FILE_PART: dict[str, Any] = {"format": "binary"}

router = APIRouter(tags=["training"], responses=error_responses(401, 403, 413, 422, 429, 503, 500))


def option(name: str) -> object:
    """A form field with the description and bounds of ``TrainingOptions`` (the one source)."""
    bounds = TrainingOptions.bounds(name)
    return Form(
        description=TrainingOptions.model_fields[name].description,
        ge=bounds.get("ge"),
        gt=bounds.get("gt"),
        le=bounds.get("le"),
    )


# OpenAPI links: where a submitted run's id is used next.
RUN_LINKS = id_links("job_status", "cancel_job")


@router.post(
    "/v1/train",
    response_model=SubmittedJob,
    status_code=201,
    dependencies=TRAIN,
    responses={201: {"links": RUN_LINKS}, 200: {"model": SubmittedJob, "links": RUN_LINKS}},
)
def train(
    settings: Settings,
    client: Client,
    caller: CurrentCaller,
    file: Annotated[
        UploadFile,
        File(
            description='Labelled data: JSONL {"text", "label"} or CSV; entities: JSONL {"tokens", "tags"}.',
            json_schema_extra=FILE_PART,
        ),
    ],
    name: Annotated[str, Form(description="Model name to publish, e.g. sentiment.", **NAME_RULES)],
    task: Annotated[TrainedTask, Form(description=TrainRequest.model_fields["task"].description)] = (
        "text-classification"
    ),
    # optional but, when sent, a file: declared as a file part that may be left out (not as nullable)
    validation: Annotated[
        UploadFile,
        File(
            description="Validation data in the same format (required for token-classification); unset: 20%.",
            json_schema_extra=FILE_PART,
        ),
    ] = None,  # type: ignore[assignment]
    epochs: Annotated[int, option("epochs")] = DEFAULT_TRAINING.epochs,
    learning_rate: Annotated[float, option("learning_rate")] = DEFAULT_TRAINING.learning_rate,
    batch_size: Annotated[int, option("batch_size")] = DEFAULT_TRAINING.batch_size,
    max_length: Annotated[int, option("max_length")] = DEFAULT_TRAINING.max_length,
    promote: Annotated[PromotePolicy, option("promote")] = DEFAULT_TRAINING.promote,
    text_field: Annotated[str, Form()] = "text",
    label_field: Annotated[str, Form()] = "label",
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Queue a fine-tuning run of MiniLM-L6 on an uploaded labelled file (a classifier, or with
    task=token-classification an entity model); follow it at GET /v1/jobs/{id}."""
    with ExitStack() as files:
        path = files.enter_context(uploaded(file))
        validation_path = files.enter_context(uploaded(validation)) if validation else None
        run = client.train(path, name=name, validation=validation_path, task=task, epochs=epochs,
                           learning_rate=learning_rate, batch_size=batch_size, max_length=max_length, promote=promote,
                           text_field=text_field, label_field=label_field, idempotency_key=idempotency_key,
                           tenant=caller.tenant)  # fmt: skip
    if run.created:
        audited(client, settings, caller, "train", run.id, f"{name} ({task}, {epochs} epochs)")
    return submitted(run.id, run.created)
