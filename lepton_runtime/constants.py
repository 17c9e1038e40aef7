"""Named defaults of Lepton Runtime, each with its unit; settings and CLIs start from these."""

from __future__ import annotations

# Registry root when LEPTON_MODEL_DIR is not set.
DEFAULT_MODEL_DIR = "./models"
# Where bulk datasets and outputs live when LEPTON_DATA_STORE is not set: a folder the workers share.
DEFAULT_DATA_DIR = "./lepton-data"
# Where a host keeps its verified copies of versions from an object store (LEPTON_MODEL_CACHE_DIR).
DEFAULT_MODEL_CACHE_DIR = "~/.cache/lepton/models"
# Disk those copies may take, MB (a MiniLM version with its int8 variant is about 150 MB).
DEFAULT_MODEL_CACHE_BUDGET_MB = 20_000.0
# Broker and result backend when LEPTON_REDIS_URL is not set: the Redis that `lepton up` starts on
# loopback. Its own port, so that it never collides with a Redis already running on 6379.
EMBEDDED_REDIS_PORT = 6390
EMBEDDED_REDIS_URL = f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"
# Every Redis key of the project starts with this.
REDIS_KEY_PREFIX = "lepton:"

# Tokens per text kept by default at export; longer texts are truncated (or refused, by policy).
DEFAULT_MAX_SEQUENCE_LENGTH = 128
# Padded tokens (rows x longest row) in one ONNX Runtime call on the CPU, per intra-op thread: bench/engine.py
# measured 1024 best with 2 threads (int8 MiniLM, bench/results/engine.md: 1391 texts/s at 1024, 1243 at 512,
# 1155 at 2048), and a worker's single-threaded process runs best at 512 (short texts: 841 texts/s at 512, 747 at
# 1024; 40-80-token texts 265 and 256): past that the activations leave the core's cache.
DEFAULT_MAX_BATCH_TOKENS_PER_THREAD = 512
DEFAULT_MAX_BATCH_TOKENS = 2 * DEFAULT_MAX_BATCH_TOKENS_PER_THREAD  # with 2 threads, as bench/engine.py runs
# Rows in one ONNX Runtime call, whatever their length.
DEFAULT_MAX_BATCH_SIZE = 256
# On CUDA a call costs a launch and two copies whatever its size: far larger batches pay off
# (bench/gpu.py sweeps the budget on the GPU; bench/results/gpu.md).
DEFAULT_MAX_BATCH_TOKENS_CUDA = 16_384
DEFAULT_MAX_BATCH_SIZE_CUDA = 1024
# Texts in one classify call; bulk jobs split larger inputs into chunks.
DEFAULT_MAX_ITEMS = 10_000
# Characters in one text before tokenisation; bounds the tokenizer's time and memory.
DEFAULT_MAX_TEXT_CHARS = 100_000
# The longest line a bulk or training file may have: room for a text of the default maximum in JSON with every
# character escaped, and its other fields.
MAX_LINE_BYTES = 1024 * 1024

# Parity gate: shapes (batch size, sequence length) and the largest allowed |logit difference|.
PARITY_BATCH_SIZES = (1, 7, 64)
PARITY_SEQUENCE_LENGTHS = (8, 128)
PARITY_MAX_ABS_DIFF = 1e-4
# fp16 is compared with fp32 on the GPU with a looser tolerance and an argmax agreement floor.
FP16_MIN_AGREEMENT = 0.995
# int8 gate: largest accuracy drop against fp32 (points of accuracy, 0.5 = half a percent).
INT8_MAX_ACCURACY_DROP_POINTS = 0.5
# int8 gate without labels: smallest argmax agreement with fp32.
INT8_MIN_AGREEMENT_UNLABELLED = 0.99
# Embedding models: fp32 against PyTorch (cosine per row), int8 against fp32 on real texts.
EMBEDDING_PARITY_MIN_COSINE = 0.9999
INT8_EMBEDDING_MIN_MEAN_COSINE = 0.99
INT8_EMBEDDING_MIN_NEIGHBOUR_OVERLAP = 0.90
INT8_EMBEDDING_NEIGHBOURS = 10
INT8_EMBEDDING_MIN_GOLDEN_TEXTS = 2000
# Entity models: int8's span F1 on labelled sentences at most this far below fp32's.
INT8_ENTITY_MAX_F1_DROP_POINTS = 1.0
# ONNX opset of exported graphs.
DEFAULT_OPSET = 17

# Aliases that the CLI and the training path know by name.
PRODUCTION_ALIAS = "production"
STAGING_ALIAS = "staging"

# -- the queue ----------------------------------------------------------------------------------
# Queues and task names of the contract; producers send by these names, never by importing worker code.
INFERENCE_QUEUE = "lepton.inference"
TRAINING_QUEUE = "lepton.training"
# Every queue a worker may consume.
KNOWN_QUEUES = (INFERENCE_QUEUE, TRAINING_QUEUE)
# Message priorities of the broker (Redis: lower runs first), one list per step.
PRIORITY_STEPS = (0, 3, 6, 9)
CLASSIFY_TASK = "lepton.classify"
BULK_CHUNK_TASK = "lepton.bulk.chunk"
TRAIN_TASK = "lepton.train"
# Not a task: the name under which each batch of the interactive lane appears in Flower (a task event).
INTERACTIVE_BATCH_EVENT_NAME = "lepton.lane.interactive"
# Texts per bulk chunk (one message). bench/queue.py, 2 cores, 6,000 texts: chunks of 128 / 256 /
# 512 / 1024 ran at 0.94 / 1.03 / 1.01 / 0.98x the in-process Engine; 512 sends half the messages of 256.
DEFAULT_CHUNK_SIZE = 512
# Chunk messages of one bulk job in the broker at once, at least (the window grows to twice the live worker
# processes, scaled by its tenant's weight and shared among the tenant's running jobs): LEPTON_BULK_WINDOW_CHUNKS.
DEFAULT_BULK_WINDOW_CHUNKS = 4
# Largest chunk a client may ask for; bounds one message's memory and one redelivery's lost work.
MAX_CHUNK_SIZE = 10_000
# Deliveries of one message that may start without finishing (worker killed) before the next one
# is dead-lettered instead of run.
DEFAULT_MAX_DELIVERIES = 3
# -- the lanes (workers/interactive.py, workers/scheduler.py) -----------------------------------
# Requests with up to this many texts take the interactive lane (micro-batched across callers, served
# between bulk batches); larger ones are a `lepton.classify` task of the bulk lane.
DEFAULT_INTERACTIVE_MAX_TEXTS = 32
# How long a worker process waits for more requests to join the first one in a batch (milliseconds).
# 6 ms rather than 2: beside bulk work, one-text requests batch more (a call costs about 25 padded tokens, more than
# a short text). bench/mixed.py with short texts: bulk kept 0.85x and 0.88x of its rate alone in two runs (0.79x
# at 2 ms), one-text p50 27 and 25 ms (34 ms); long texts 0.80x and 0.71x (0.79x): within the swing of this
# machine. A lone caller never waits (workers/interactive.py).
DEFAULT_BATCH_WAIT_MS = 6.0
# Requests in one interactive batch (their texts still go in token-budget ONNX Runtime batches).
DEFAULT_MAX_BATCH_REQUESTS = 64
# Padded tokens of one bulk batch while interactive requests come to the process (instead of the engine's
# budget): the longest an interactive request waits is one such batch. A single-threaded process runs 384 as
# fast as 512 and 256 7% slower (40-80-token texts: 257, 265, 239 texts/s), so 384 bounds the wait at no cost.
DEFAULT_BULK_BATCH_TOKENS_BESIDE_INTERACTIVE = 384
# The least share of a worker process's time that bulk work keeps while interactive work overloads it.
DEFAULT_BULK_MIN_SHARE = 0.2
# Requests a tenant may have waiting in the interactive lane before it gets 429.
DEFAULT_TENANT_QUOTA_REQUESTS = 256
# The tenant of bare tokens and of everything recorded before tenants owned their work.
DEFAULT_TENANT = "default"
# The tenant whose tokens see and act on every tenant's work, within their scopes (LEPTON_OPERATOR_TENANT).
DEFAULT_OPERATOR_TENANT = "operator"
# Entries the audit trail keeps (LEPTON_AUDIT_MAX_ENTRIES): the oldest go first.
DEFAULT_AUDIT_MAX_ENTRIES = 100_000
# The longest deadline an interactive request may carry (seconds from submission).
MAX_DEADLINE_S = 3600.0
# An interactive request taken by a process that died is taken again by another after this (seconds).
DEFAULT_INTERACTIVE_CLAIM_AFTER_S = 10.0
# Hard time limit of an inference task (the child is killed), and the soft one (an exception).
DEFAULT_TASK_TIME_LIMIT_S = 300.0
DEFAULT_TASK_SOFT_TIME_LIMIT_S = 240.0
# A message a worker holds is a lease of this many seconds, renewed while the worker lives
# (jobs/transport.py): a dead worker's messages go back to their queue this long after its last renewal.
DEFAULT_VISIBILITY_TIMEOUT_S = 20.0
# Training queues keep a timeout above their longest run (the margin): a paused training worker's run is
# never started a second time beside it.
VISIBILITY_TIMEOUT_MARGIN_S = 60.0
# Seconds between sweeps that give abandoned (unacknowledged, timed-out) messages back to a queue.
DEFAULT_RESTORE_INTERVAL_S = 5.0
# Transient failures: retries, and the exponential backoff between them (full jitter).
DEFAULT_MAX_RETRIES = 5
RETRY_BACKOFF_BASE_S = 1.0
RETRY_BACKOFF_MAX_S = 60.0
# Job records, results and dead letters are kept this long after their last change.
DEFAULT_JOB_TTL_S = 7 * 24 * 3600
# Memory that one worker process may spend on loaded models before the least recently used goes.
DEFAULT_MODEL_MEMORY_BUDGET_MB = 2048

# Training runs (`lepton.train`): hard and soft time limits; the training queue's visibility timeout
# is the hard limit plus VISIBILITY_TIMEOUT_MARGIN_S, so a long run is never started twice.
DEFAULT_TRAIN_TIME_LIMIT_S = 6 * 3600.0
DEFAULT_TRAIN_SOFT_TIME_LIMIT_S = 6 * 3600.0 - 300.0
# A running training run's holder beats every timeout/4; silent this long, its run may be taken over (and the
# lost-message sweep sends the run again).
DEFAULT_TRAIN_HEARTBEAT_TIMEOUT_S = 30.0
TRAIN_HEARTBEATS_PER_TIMEOUT = 4
# A training run keeps its validation split beside its checkpoint under this name: export gates int8
# on exactly these texts, and the demo reports accuracy on them apart.
VALIDATION_FILE = "validation.jsonl"
# Fine-tuning defaults, fit for MiniLM-L6 on a 2-core CPU; the training request schema
# (jobs/schemas.py TrainingOptions) gives them, with their bounds, to the CLI, the API and the client.
DEFAULT_TRAIN_EPOCHS = 3
DEFAULT_TRAIN_LEARNING_RATE = 5e-5
DEFAULT_TRAIN_BATCH_SIZE = 16
DEFAULT_TRAIN_MAX_LENGTH = 128  # tokens per text
DEFAULT_TRAIN_SEED = 13
# Where training runs keep their checkpoints, curves and validation splits.
DEFAULT_CHECKPOINT_DIR = "./checkpoints"
# Largest training file a producer may send through Redis (the rows travel with the run).
MAX_TRAINING_DATA_BYTES = 64 * 1024 * 1024
# The metric that decides promotion: a new version goes to production when it is at least this good.
PROMOTION_METRIC = "validation_accuracy"

# The HTTP API: the largest request body (a bulk upload), the queue depth past which submissions
# get 429 (messages waiting in a queue), and how long POST /v1/classify waits before answering 202.
DEFAULT_API_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_API_MAX_QUEUE_DEPTH = 10_000
DEFAULT_API_CLASSIFY_WAIT_S = 10.0
# The longest a request may wait for its answer (seconds) before it gets 202 and a job id.
MAX_API_WAIT_S = 60.0
# Seconds a client is asked to wait (Retry-After) when the queue is too deep, and when its tenant has its
# quota of waiting interactive requests (they are answered in milliseconds: the quota frees up fast).
API_RETRY_AFTER_S = 5
QUOTA_RETRY_AFTER_S = 1
DEFAULT_API_PORT = 8000
