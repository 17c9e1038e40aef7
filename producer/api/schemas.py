"""The HTTP API's wire models: what each route takes and answers (the OpenAPI document is built from them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lepton_runtime.constants import MAX_API_WAIT_S, MAX_CHUNK_SIZE, MAX_DEADLINE_S, PRODUCTION_ALIAS
from lepton_runtime.jobs import JobStatus, TrainingStatus
from lepton_runtime.jobs.audit import AuditEntry
from lepton_runtime.prediction import ItemError, Prediction
from lepton_runtime.registry.references import ALIAS_PATTERN, MAX_NAME_CHARS, MODEL_NAME_PATTERN, REFERENCE_PATTERN

# The media type of a bulk job's streamed results.
RESULTS_MEDIA_TYPE = "application/x-ndjson"
# Rows in one page of GET /v1/jobs/{id}/rows.
MAX_RESULTS_PAGE_ROWS = 10_000
# Jobs (and training runs) in one GET /v1/jobs.
MAX_LISTED_JOBS = 200
# What the document declares of names and references: the patterns the server checks.
NAME_RULES: dict[str, Any] = {"pattern": MODEL_NAME_PATTERN.pattern, "max_length": MAX_NAME_CHARS}


# JSON request bodies are taken as declared: no "5" for 5, no 0 for false (the document is what the server accepts).
STRICT = ConfigDict(strict=True)


def id_links(*operations: str) -> dict[str, Any]:
    """OpenAPI links from an answer's ``job_id`` to the operations that take it (generated clients and the
    stateful fuzzer follow them)."""
    return {name: {"operationId": name, "parameters": {"job_id": "$response.body#/job_id"}} for name in operations}


# Characters of a data store location in a request.
MAX_LOCATION_CHARS = 1024


def reference_field(what: str = "Model reference") -> Any:
    return Field(description=f"{what}: name, name@version or name@alias.", pattern=REFERENCE_PATTERN.pattern)


class ErrorIssue(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    code: str = Field(
        description="Stable error code, e.g. invalid_input, unknown_model, queue_full (the docs list all)."
    )
    message: str = Field(description="What went wrong and how to fix it.")
    issues: list[ErrorIssue] = Field(default_factory=list, description="Each bad field and its problem.")


class ErrorResponse(BaseModel):
    error: ErrorBody


class ClassifyRequest(BaseModel):
    texts: list[str] = Field(min_length=1, description="Texts to classify (at most LEPTON_MAX_ITEMS).")
    model: str = reference_field()
    wait_s: float | None = Field(
        default=None,
        ge=0,
        le=MAX_API_WAIT_S,
        description="Seconds to wait for the answer before 202 (default: the server's).",
    )
    deadline_ms: int | None = Field(
        default=None,
        ge=1,
        le=int(MAX_DEADLINE_S * 1000),
        description="Not run (answered 504 expired) unless a worker starts it within this many milliseconds; "
        "interactive lane only (up to LEPTON_INTERACTIVE_MAX_TEXTS texts).",
    )

    model_config = {
        "strict": True,
        "json_schema_extra": {"examples": [{"texts": ["a gorgeous, moving film"], "model": "sentiment@production"}]},
    }


class ModelProvenance(BaseModel):
    model: str
    version: int | None
    sha256: str
    variant: str
    precision: str
    provider: str


class PredictionOut(BaseModel):
    index: int
    label: str | None = None
    score: float | None = None
    scores: dict[str, float] | None = None
    truncated: bool = False
    error: ErrorBody | None = Field(default=None, description="Set instead of a label when this text was invalid.")

    @classmethod
    def of(cls, index: int, answer: Prediction | ItemError) -> PredictionOut:
        if isinstance(answer, ItemError):
            return cls(index=index, error=ErrorBody(code=answer.code, message=answer.message))
        return cls(
            index=index, label=answer.label, score=answer.score, scores=answer.scores, truncated=answer.truncated
        )


class ClassifyResponse(BaseModel):
    job_id: str
    state: str = Field(description="succeeded, or queued/running when the wait ran out (HTTP 202).")
    predictions: list[PredictionOut] | None = None
    model: ModelProvenance | None = None
    status_url: str


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request: ``input`` is one text or a list of texts (token arrays are not taken)."""

    input: str | list[str] = Field(description="A text, or a list of texts (at most LEPTON_MAX_ITEMS).")
    model: str = reference_field("An embedding model")
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="float: lists of numbers; base64: little-endian float32 bytes, base64."
    )
    dimensions: int | None = Field(default=None, ge=1, description="Must equal the model's width if given.")
    user: str | None = Field(default=None, max_length=256, description="Accepted for compatibility; not used.")

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("input: the list is empty; give at least one text")
        return value

    model_config = {
        "strict": True,
        "json_schema_extra": {"examples": [{"input": ["a gorgeous, moving film"], "model": "minilm"}]},
    }


class EmbeddingOut(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="The vector (a base64 string with encoding_format=base64).")


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingOut]
    model: str
    usage: EmbeddingsUsage
    provenance: ModelProvenance | None = Field(default=None, description="The exact model version that ran.")


class EntitiesRequest(BaseModel):
    texts: list[str] = Field(min_length=1, description="Texts to read entities from (at most LEPTON_MAX_ITEMS).")
    model: str = reference_field("An entity model")

    model_config = {
        "strict": True,
        "json_schema_extra": {"examples": [{"texts": ["Zoë Müller flew from São Paulo to Paris."], "model": "ner"}]},
    }


class EntityOut(BaseModel):
    start: int = Field(description="Character offset of the entity's first character in its text.")
    end: int = Field(description="Character offset just past its last character (end exclusive).")
    label: str = Field(description="The entity's type, e.g. PER, ORG, LOC, MISC.")
    score: float = Field(description="Mean probability of its words' labels.")
    text: str = Field(description="Exactly texts[index][start:end].")


class EntitiesOut(BaseModel):
    index: int
    entities: list[EntityOut] | None = None
    error: ErrorBody | None = Field(default=None, description="Set instead of entities when this text was invalid.")


class EntitiesResponse(BaseModel):
    results: list[EntitiesOut]
    model: ModelProvenance | None = None


def out_field() -> Any:
    return Field(
        default=None,
        min_length=1,
        max_length=MAX_LOCATION_CHARS,
        description="A new folder for the output parts and manifest, inside your part of the data store "
        "(<LEPTON_DATA_STORE>/tenants/<tenant>/..., or relative to it). Default: outputs/<job id>/ there.",
    )


def chunk_size_field() -> Any:
    return Field(default=None, ge=1, le=MAX_CHUNK_SIZE, description="Texts per chunk (default LEPTON_CHUNK_SIZE).")


class BulkTextsRequest(BaseModel):
    texts: list[str] = Field(min_length=1, description="Texts of the bulk job, in order.")
    ids: list[str] | None = Field(
        default=None, description="One id per text, in the texts' order: each output row's `id` (default: 0, 1, ...)."
    )
    model: str = reference_field()
    chunk_size: int | None = chunk_size_field()
    out: str | None = out_field()

    model_config = {
        "strict": True,
        "json_schema_extra": {
            "examples": [{"texts": ["great film", "dull", "loved it"], "ids": ["r1", "r2", "r3"], "model": "intents"}]
        },
    }


class BulkDatasetRequest(BaseModel):
    """A bulk job over a dataset the workers read from the data store (planned from its metadata)."""

    source: str = Field(
        min_length=1,
        max_length=MAX_LOCATION_CHARS,
        description="A dataset in your part of the data store: one file, a prefix or a glob of Parquet, JSON lines or "
        "CSV files (also .gz / .zst), as s3://... or relative to <LEPTON_DATA_STORE>/tenants/<tenant>/.",
    )
    model: str = reference_field()
    text_field: str = Field(default="text", min_length=1, max_length=200, description="The column of the texts.")
    id_field: str = Field(
        default="id", min_length=1, max_length=200, description="The column of the ids (else the row number)."
    )
    chunk_size: int | None = chunk_size_field()
    out: str | None = out_field()

    model_config = {
        "strict": True,
        "json_schema_extra": {"examples": [{"source": "corpus/*.parquet", "model": "sentiment", "out": "run-17/"}]},
    }


class BulkUploadFields(BaseModel):
    """The form fields beside an uploaded bulk file."""

    model: str = reference_field()
    text_field: str = "text"
    id_field: str = "id"
    chunk_size: int | None = Field(default=None, ge=1, le=MAX_CHUNK_SIZE)
    out: str | None = out_field()


def form_properties(model: type[BaseModel]) -> dict[str, Any]:
    """A model's properties as form fields: an optional field is left out, never sent as null (a form has no null)."""
    properties: dict[str, Any] = model.model_json_schema()["properties"]
    for schema in properties.values():
        kinds = [kind for kind in schema.pop("anyOf", []) if kind.get("type") != "null"]
        if kinds:
            schema.update(kinds[0])
        if "default" in schema and schema["default"] is None:
            del schema["default"]
    return properties


# POST /v1/jobs takes either body; FastAPI cannot declare two content types from one signature.
BULK_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"oneOf": [BulkTextsRequest.model_json_schema(), BulkDatasetRequest.model_json_schema()]}
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "model"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "JSONL, CSV or plain lines."},
                    **form_properties(BulkUploadFields),
                },
            }
        },
    },
}


class SubmittedJob(BaseModel):
    job_id: str
    created: bool = Field(description="False when an Idempotency-Key named an earlier submission.")
    status_url: str


class RetriedChunks(BaseModel):
    job_id: str
    chunks: list[int] = Field(description="The chunks sent again (only failed or never-sent ones).")


class ModelVersionOut(BaseModel):
    version: int
    reference: str
    variants: list[str]
    metrics: dict[str, Any]
    created_at: str | None = None


class ModelOut(BaseModel):
    name: str
    owner: str = Field(description="The tenant the name belongs to (its first publisher).")
    shared: bool = Field(description="Whether every tenant may run it (else its owner and the operator only).")
    aliases: dict[str, int]
    versions: list[ModelVersionOut]


class ModelsResponse(BaseModel):
    models: list[ModelOut]


class PromoteRequest(BaseModel):
    model_config = STRICT
    version: int = Field(ge=1, description="The version to point the alias at.")
    alias: str = Field(default=PRODUCTION_ALIAS, pattern=ALIAS_PATTERN.pattern)


class RollbackRequest(BaseModel):
    model_config = STRICT
    alias: str = Field(default=PRODUCTION_ALIAS, description="The alias to point back.", pattern=ALIAS_PATTERN.pattern)


class ShareRequest(BaseModel):
    model_config = STRICT
    shared: bool = Field(description="true: every tenant may run the model; false: its owner (and the operator) only.")


class ModelOwnerOut(BaseModel):
    name: str
    owner: str
    shared: bool


class DeletedVersion(BaseModel):
    name: str
    version: int
    deleted: bool = True


class DeadLetterOut(BaseModel):
    id: str
    tenant: str
    queue: str
    task: str
    code: str
    message: str
    attempts: int


class DeadLettersResponse(BaseModel):
    dead_letters: list[DeadLetterOut]


class JobsResponse(BaseModel):
    jobs: list[JobStatus] = Field(description="Bulk jobs, newest first.")
    training_runs: list[TrainingStatus] = Field(description="Training runs, newest first.")


class ResultsPage(BaseModel):
    job_id: str
    rows: list[dict[str, Any]] = Field(description="Output rows in input order, as GET /v1/jobs/{id}/results has them.")
    next_cursor: int | None = Field(description="The cursor of the next page; null after the last one.")


class AuditResponse(BaseModel):
    entries: list[AuditEntry] = Field(description="Newest first.")


class PromoteResponse(BaseModel):
    name: str
    alias: str
    version: int


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class Readiness(BaseModel):
    ready: bool
    broker: bool
    workers: dict[str, int] = Field(description="Workers consuming each queue.")
    queue_depth: dict[str, int] = Field(description="Messages waiting in each queue.")
    problems: list[str] = Field(default_factory=list)
