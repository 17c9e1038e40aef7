"""Settings of Lepton Runtime: one object read from ``LEPTON_*`` environment variables at entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lepton_runtime import constants


class LeptonSettings(BaseSettings):
    """Everything an entry point needs to know about its environment; nothing below reads env itself."""

    model_config = SettingsConfigDict(env_prefix="LEPTON_", env_file=None, extra="ignore", env_ignore_empty=True)

    redis_url: SecretStr | None = Field(
        default=None,
        description="Broker and result backend URL; may carry a password, so it is never logged. "
        "Unset: the embedded Redis that `lepton up` starts on loopback.",
    )
    redis_sentinels: str | None = Field(
        default=None,
        pattern=r"^[^,:\s]+:\d+(,[^,:\s]+:\d+)*$",
        description="host:port,host:port of Redis Sentinels: every process asks them for the primary of "
        "LEPTON_REDIS_SERVICE and finds the new one after a failover by itself (LEPTON_REDIS_URL is then unused).",
    )
    redis_service: str = Field(default="lepton", min_length=1, description="The Sentinels' name of the Redis primary.")
    redis_password: SecretStr | None = Field(
        default=None, description="With LEPTON_REDIS_SENTINELS: the password of the Redis primary and its replicas."
    )
    redis_sentinel_password: SecretStr | None = Field(
        default=None, description="With LEPTON_REDIS_SENTINELS: the password of the Sentinels themselves."
    )
    redis_wait_replicas: int = Field(
        default=0,
        ge=0,
        le=16,
        description="Replicas that must hold a bulk job or training run (Redis WAIT) before its id is returned, so "
        "a failover right after cannot lose it. 0: replication stays asynchronous.",
    )
    redis_wait_timeout_ms: int = Field(
        default=1000, ge=1, le=60_000, description="How long a submission waits for LEPTON_REDIS_WAIT_REPLICAS."
    )
    model_dir: Path = Field(default=Path(constants.DEFAULT_MODEL_DIR), description="Registry root.")
    model_store: str | None = Field(
        default=None,
        pattern=r"^s3://[^/]+(/.*)?$",
        description="s3://BUCKET[/PREFIX]: the registry in an S3-compatible object store instead of LEPTON_MODEL_DIR "
        "(credentials and region from the standard AWS variables). Unset: the directory.",
    )
    model_cache_dir: Path = Field(
        default=Path(constants.DEFAULT_MODEL_CACHE_DIR),
        description="With LEPTON_MODEL_STORE: where this host keeps the verified copies of the versions it loads.",
    )
    model_cache_budget_mb: float = Field(
        default=constants.DEFAULT_MODEL_CACHE_BUDGET_MB,
        gt=0,
        description="Disk the copies of LEPTON_MODEL_CACHE_DIR may take (MB); copies no process uses go first, least "
        "recently used first.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="The S3-compatible server of LEPTON_MODEL_STORE (MinIO, Ceph). Unset: AWS_ENDPOINT_URL, else AWS.",
    )
    data_store: str = Field(
        default=constants.DEFAULT_DATA_DIR,
        min_length=1,
        description="Where bulk datasets are read and bulk outputs written: s3://BUCKET[/PREFIX] (the server of "
        "LEPTON_S3_ENDPOINT_URL) or a folder every worker shares. Each tenant reads and writes under "
        "<store>/tenants/<tenant>/.",
    )
    device: Literal["cpu", "cuda"] = Field(default="cpu", description="Execution provider family.")
    intra_op_threads: int = Field(default=0, ge=0, description="ONNX Runtime threads; 0 = cores.")
    max_batch_tokens: int | None = Field(
        default=None,
        ge=16,
        description="Padded tokens per ONNX Runtime call. Unset: "
        f"{constants.DEFAULT_MAX_BATCH_TOKENS_PER_THREAD} per ONNX Runtime thread on CPU, "
        f"{constants.DEFAULT_MAX_BATCH_TOKENS_CUDA} on CUDA.",
    )
    max_items: int = Field(
        default=constants.DEFAULT_MAX_ITEMS,
        ge=1,
        description="Texts one request or bulk input may carry (more: 413 `too_large`; a bulk job for many texts).",
    )
    max_text_chars: int = Field(
        default=constants.DEFAULT_MAX_TEXT_CHARS,
        ge=1,
        description="Characters one text may have (longer: an item error `invalid_input` naming the text).",
    )
    api_tokens: list[SecretStr] = Field(default_factory=list, description="Bearer tokens of the API.")
    api_allow_anonymous: bool = Field(
        default=False, description="Serve the API without tokens; refused unless it is bound to loopback."
    )
    api_max_body_bytes: int = Field(
        default=constants.DEFAULT_API_MAX_BODY_BYTES,
        ge=1024,
        description="Largest HTTP request body (a bulk upload), bytes; larger ones get 413.",
    )
    api_max_queue_depth: int = Field(
        default=constants.DEFAULT_API_MAX_QUEUE_DEPTH, ge=1, description="Waiting messages before 429."
    )
    api_classify_wait_s: float = Field(
        default=constants.DEFAULT_API_CLASSIFY_WAIT_S,
        ge=0,
        le=60,
        description="Seconds POST /v1/classify waits for its answer before answering 202 with the job id.",
    )
    api_max_wait_s: float = Field(
        default=constants.MAX_API_WAIT_S,
        ge=0,
        le=constants.MAX_API_WAIT_S,
        description="Longest wait a request may ask.",
    )
    flower_basic_auth: SecretStr | None = Field(default=None, description="user:password for Flower.")
    # the queue
    chunk_size: int = Field(
        default=constants.DEFAULT_CHUNK_SIZE,
        ge=1,
        le=constants.MAX_CHUNK_SIZE,
        description="Texts per bulk chunk (bench/queue.py measured 512 best on 2 cores).",
    )
    bulk_window_chunks: int = Field(
        default=constants.DEFAULT_BULK_WINDOW_CHUNKS,
        ge=1,
        le=10_000,
        description="Chunk messages of one bulk job in the broker at once, at least: the rest wait in the job's "
        "record and are sent as chunks finish (the window grows to twice the live worker processes).",
    )
    max_deliveries: int = Field(
        default=constants.DEFAULT_MAX_DELIVERIES,
        ge=1,
        description="Starts of one message that may end with a dead worker before it is dead-lettered.",
    )
    max_retries: int = Field(
        default=constants.DEFAULT_MAX_RETRIES,
        ge=0,
        description="Retries of a transient failure (exponential backoff with full jitter between them).",
    )
    task_time_limit_s: float = Field(
        default=constants.DEFAULT_TASK_TIME_LIMIT_S,
        gt=0,
        description="Hard time limit of a task, seconds: the worker process running it past this is killed.",
    )
    task_soft_time_limit_s: float = Field(
        default=constants.DEFAULT_TASK_SOFT_TIME_LIMIT_S,
        gt=0,
        description="Soft time limit of a task body, seconds (below the hard one): the task fails `time_limit`.",
    )
    visibility_timeout_s: float = Field(
        default=constants.DEFAULT_VISIBILITY_TIMEOUT_S,
        ge=2,
        description="A held message's lease: its worker renews it while alive; a dead worker's comes back after this.",
    )
    restore_interval_s: float = Field(
        default=constants.DEFAULT_RESTORE_INTERVAL_S,
        gt=0,
        description="Seconds between sweeps that give abandoned messages back to their queue.",
    )
    job_ttl_s: int = Field(
        default=constants.DEFAULT_JOB_TTL_S,
        ge=60,
        description="How long job records, results and dead letters are kept, seconds (7 days).",
    )
    model_memory_budget_mb: int = Field(
        default=constants.DEFAULT_MODEL_MEMORY_BUDGET_MB,
        ge=64,
        description="Memory one worker process may spend on loaded models (MB); the least recently used goes first.",
    )
    # the lanes and the tenants
    interactive_max_texts: int = Field(
        default=constants.DEFAULT_INTERACTIVE_MAX_TEXTS,
        ge=0,
        le=constants.DEFAULT_MAX_ITEMS,
        description="Requests with up to this many texts take the interactive lane (0: none does).",
    )
    batch_wait_ms: float = Field(
        default=constants.DEFAULT_BATCH_WAIT_MS, ge=0, le=1000, description="Wait for company of a batch, ms."
    )
    max_batch_requests: int = Field(
        default=constants.DEFAULT_MAX_BATCH_REQUESTS,
        ge=1,
        le=4096,
        description="Requests in one interactive batch (1: no micro-batching).",
    )
    bulk_batch_tokens_beside_interactive: int = Field(
        default=constants.DEFAULT_BULK_BATCH_TOKENS_BESIDE_INTERACTIVE,
        ge=16,
        description="Padded tokens per bulk batch while interactive requests come (bounds their wait).",
    )
    bulk_min_share: float = Field(
        default=constants.DEFAULT_BULK_MIN_SHARE, ge=0, le=1, description="Least share of worker time for bulk work."
    )
    interactive_claim_after_s: float = Field(
        default=constants.DEFAULT_INTERACTIVE_CLAIM_AFTER_S,
        gt=0,
        description="An interactive request whose worker process died is taken by another after this, seconds.",
    )
    tenant: str = Field(
        default=constants.DEFAULT_TENANT,
        description="The tenant this client sends as, and owner of what it submits and publishes.",
    )
    operator_tenant: str = Field(
        default=constants.DEFAULT_OPERATOR_TENANT,
        description="API tokens of this tenant see and act on every tenant's work, within their scopes.",
    )
    audit_max_entries: int = Field(
        default=constants.DEFAULT_AUDIT_MAX_ENTRIES, ge=100, description="Audit trail entries kept (oldest dropped)."
    )
    tenant_quota_requests: int = Field(
        default=constants.DEFAULT_TENANT_QUOTA_REQUESTS, ge=1, description="Waiting interactive requests per tenant."
    )
    tenant_quotas: dict[str, int] = Field(default_factory=dict, description='Per tenant, JSON: {"a": 64}.')
    tenant_weights: dict[str, float] = Field(
        default_factory=dict, description='Shares of worker time per tenant, JSON: {"a": 2} (default 1).'
    )
    # training
    checkpoint_dir: Path = Field(
        default=Path(constants.DEFAULT_CHECKPOINT_DIR), description="Where training runs keep checkpoints."
    )
    train_time_limit_s: float = Field(
        default=constants.DEFAULT_TRAIN_TIME_LIMIT_S,
        gt=0,
        description="Hard time limit of one training run, seconds (6 h); training workers hold messages this + 60 s.",
    )
    train_soft_time_limit_s: float = Field(
        default=constants.DEFAULT_TRAIN_SOFT_TIME_LIMIT_S,
        gt=0,
        description="Soft time limit of one training run, seconds: it stops cleanly, publishing nothing.",
    )
    train_heartbeat_timeout_s: float = Field(
        default=constants.DEFAULT_TRAIN_HEARTBEAT_TIMEOUT_S,
        ge=2,
        description="A running training run whose worker was silent this long is run again by another.",
    )

    @property
    def broker_url(self) -> str:
        """The Redis URL to use (secret: never log it); the embedded default when none is configured. With
        Sentinels, kombu's form: ``sentinel://[:password@]host:port/0`` per Sentinel, joined by ``;`` (see
        ``sentinel_options``)."""
        if self.redis_sentinels:
            password = self.redis_password.get_secret_value() if self.redis_password else None
            auth = f":{quote(password, safe='')}@" if password else ""
            return ";".join(f"sentinel://{auth}{address}/0" for address in self.redis_sentinels.split(","))
        return self.redis_url.get_secret_value() if self.redis_url else constants.EMBEDDED_REDIS_URL

    def sentinel_options(self) -> dict[str, Any]:
        """What a Sentinel client needs beside ``broker_url`` (the service, the Sentinels' password); empty without
        Sentinels. The keys are kombu's and Celery's transport options."""
        if not self.redis_sentinels:
            return {}
        options: dict[str, Any] = {"master_name": self.redis_service}
        if self.redis_sentinel_password:
            options["sentinel_kwargs"] = {"password": self.redis_sentinel_password.get_secret_value()}
        return options

    def quota_of(self, tenant: str) -> int:
        """Interactive requests ``tenant`` may have waiting."""
        return self.tenant_quotas.get(tenant, self.tenant_quota_requests)

    @property
    def broker_configured(self) -> bool:
        return self.redis_url is not None or self.redis_sentinels is not None

    @property
    def training_visibility_timeout_s(self) -> float:
        """Visibility timeout of workers that consume the training queue: above the longest run."""
        return max(self.visibility_timeout_s, self.train_time_limit_s + constants.VISIBILITY_TIMEOUT_MARGIN_S)

    @model_validator(mode="after")
    def _limits_are_ordered(self) -> LeptonSettings:
        if self.task_soft_time_limit_s >= self.task_time_limit_s:
            raise ValueError(
                f"LEPTON_TASK_SOFT_TIME_LIMIT_S ({self.task_soft_time_limit_s}) must be below "
                f"LEPTON_TASK_TIME_LIMIT_S ({self.task_time_limit_s})"
            )
        if self.train_soft_time_limit_s >= self.train_time_limit_s:
            raise ValueError(
                f"LEPTON_TRAIN_SOFT_TIME_LIMIT_S ({self.train_soft_time_limit_s}) must be below "
                f"LEPTON_TRAIN_TIME_LIMIT_S ({self.train_time_limit_s})"
            )
        return self


def load_settings() -> LeptonSettings:
    """Read the settings once; call this at an entry point and pass plain values down."""
    return LeptonSettings()
