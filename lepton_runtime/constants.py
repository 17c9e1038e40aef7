"""Named defaults of Lepton Runtime, each with its unit; settings and CLIs start from these."""

from __future__ import annotations

# Registry root when LEPTON_MODEL_DIR is not set.
DEFAULT_MODEL_DIR = "./models"
# Broker and result backend when LEPTON_REDIS_URL is not set (loopback only).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Every Redis key of the project starts with this.
REDIS_KEY_PREFIX = "lepton:"

# Tokens per text kept by default at export; longer texts are truncated (or refused, by policy).
DEFAULT_MAX_SEQUENCE_LENGTH = 128
# Padded tokens (rows x longest row) in one ONNX Runtime call; bench/engine.py measured 1024 best
# on 2 cores (int8 MiniLM, bench/results/engine.md: 1391 texts/s at 1024, 1243 at 512, 1155 at 2048).
DEFAULT_MAX_BATCH_TOKENS = 1024
# Rows in one ONNX Runtime call, whatever their length.
DEFAULT_MAX_BATCH_SIZE = 256
# Texts in one classify call; bulk jobs split larger inputs into chunks.
DEFAULT_MAX_ITEMS = 10_000
# Characters in one text before tokenisation; bounds the tokenizer's time and memory.
DEFAULT_MAX_TEXT_CHARS = 100_000

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
# ONNX opset of exported graphs.
DEFAULT_OPSET = 17

# Aliases that the CLI and the training path know by name.
PRODUCTION_ALIAS = "production"
STAGING_ALIAS = "staging"
