# The one definition of every check: CI (.ci/run), pre-commit and people all call these targets.
SHELL := /bin/bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q --disable-pip-version-check
# torch first, pinned: the local CPU wheel; a bare `torch` would pull gigabytes of CUDA packages.
TORCH_SPEC ?= torch==2.13.0

# MkDocs Material's notice about its successor, printed on every build
export NO_MKDOCS_2_WARNING := 1

.PHONY: docs docs-serve install wheels images base-image compose-test test test-fast lint format types check bench bench-queue bench-mixed bench-embeddings bench-entities bench-outputs bench-zero-shot bench-replication bench-scale soak chaos demo clean

install: $(VENV)/.installed  ## create .venv with everything for CPU use (inference, training, API, dev tools)

$(VENV)/.installed: pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[cpu,train,api,dev]"
	touch $@

# -- container images (docs/operations/deploy.md) --
# The wheelhouse the images install from (no index inside a build): every pin of docker/requirements-*.txt and the
# project's own wheel. GPU=1 adds the CUDA libraries of the inference-gpu image (gigabytes).
WHEELS := build/wheels
IMAGE_REQUIREMENTS := docker/requirements-inference.txt docker/requirements-trainer.txt docker/requirements-s3-standin.txt $(if $(GPU),docker/requirements-inference-gpu.txt)
IMAGE_TARGETS := inference trainer redis prometheus s3-standin $(if $(GPU),inference-gpu)
# debian:bookworm-slim from a registry, or the image `make base-image` made here from Debian's archive
BASE_IMAGE ?= $(shell docker image inspect lepton-base:bookworm >/dev/null 2>&1 && echo lepton-base:bookworm || echo debian:bookworm-slim)

wheels: install  ## fill build/wheels with every pinned dependency of the images, build/project with the project's wheel
	for file in $(IMAGE_REQUIREMENTS); do \
		$(PIP) wheel --quiet --no-deps --find-links $(WHEELS) --wheel-dir $(WHEELS) -r $$file || exit 1; \
	done
	rm -rf build/project && $(PIP) wheel --quiet --no-deps --wheel-dir build/project .

images: wheels  ## build the images (BASE_IMAGE=...; GPU=1 adds inference-gpu) and print their sizes
	for target in $(IMAGE_TARGETS); do \
		docker build --quiet --build-arg BASE_IMAGE=$(BASE_IMAGE) --target $$target -t lepton-runtime:$$target . || exit 1; \
	done
	docker image ls lepton-runtime

base-image:  ## make lepton-base:bookworm from Debian's package archive alone (root, debootstrap; about a minute)
	docker/base-image.sh lepton-base:bookworm

compose-test: images  ## the fleet in containers for real: up, a model published, jobs, a worker killed, down
	LEPTON_COMPOSE_TEST=1 BASE_IMAGE=$(BASE_IMAGE) LEPTON_COMPOSE_REPORT=bench/results/compose.md \
		$(PYTHON) -m pytest tests/test_compose_fleet.py -v -p no:cacheprovider --timeout 1800

# Test files run in this many processes at once (pytest-xdist); each has its own Redis, ports and temp dirs.
TEST_PROCESSES ?= 2

test: install  ## the suite CI runs (all but the soak runs), test files spread over TEST_PROCESSES processes
	$(PYTHON) -m pytest -n $(TEST_PROCESSES) --dist loadfile -m "not soak"

test-fast: install  ## unit tests only, no model export
	$(PYTHON) -m pytest -m "not slow"

lint: install  ## ruff (lint and format) and the import contracts of pyproject.toml (import-linter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

types: install
	$(VENV)/bin/mypy

check: lint types test  ## lint + types + tests

bench: install  ## engine throughput against the transformers pipeline, measured in one run
	$(PYTHON) bench/engine.py

bench-queue: install  ## bulk jobs and one-text requests through Redis and a real worker vs in process
	$(PYTHON) bench/queue.py

bench-mixed: install  ## online + bulk traffic on one fleet (MiniLM on SST-2): latency, micro-batching, bulk share, tenants
	$(PYTHON) -c "from lepton_runtime.registry import ModelRegistry as R; R('models').resolve('sentiment@production')" \
		2>/dev/null || $(VENV)/bin/lepton train ../shared/datasets/sst2/dev.jsonl --name sentiment --epochs 3 --max-length 64
	$(PYTHON) bench/mixed.py

bench-replication: install  ## what LEPTON_REDIS_WAIT_REPLICAS costs a submission (a primary and one replica)
	$(PYTHON) -c "from lepton_runtime.registry import ModelRegistry as R; R('models').resolve('intents@production')" \
		2>/dev/null || $(VENV)/bin/lepton demo
	$(PYTHON) bench/replication.py

bench-scale: install  ## a 10,000,000-row Parquet dataset through the data store: Redis memory, producer RSS, submit time, texts/s; a 1,000,000-row job under faults; MiniLM int8 through the store vs in process
	$(PYTHON) bench/scale.py --rows $(or $(ROWS),10000000)
	$(PYTHON) bench/scale_faults.py
	$(PYTHON) -c "from lepton_runtime.registry import ModelRegistry as R; R('models').resolve('intents@production')" \
		2>/dev/null || $(VENV)/bin/lepton demo
	$(PYTHON) bench/store_speed.py

bench-embeddings: install  ## all-MiniLM-L6-v2 in the Engine vs sentence-transformers; a 100,000-text corpus through the queue
	$(PYTHON) bench/embeddings.py
	$(PYTHON) bench/bulk_embeddings.py

bench-entities: install  ## an entity model trained on the shared CoNLL-2003 (if none is published) vs the transformers pipeline
	$(PYTHON) -c "from lepton_runtime.registry import ModelRegistry as R; R('models').resolve('ner@production')" \
		2>/dev/null || $(VENV)/bin/lepton train ../shared/datasets/conll2003/train.jsonl --task token-classification \
		--validation ../shared/datasets/conll2003/validation.jsonl --name ner --epochs 3 --lr 1e-4 --batch-size 32
	$(PYTHON) bench/entities.py

bench-outputs: install  ## a bulk job's output file: its parts' columns copied vs every row through its JSON line
	$(PYTHON) bench/outputs.py

bench-zero-shot: install  ## bench/zero_shot.py: zero-shot accuracy per template on SST-2 and BANKING77 (needs ../shared)
	$(PYTHON) bench/zero_shot.py

soak: install  ## long reliability suite + 30 minutes of mixed traffic on MiniLM; reports in bench/results/
	$(PYTHON) -m pytest -m soak tests  # the runs kept out of `make test`: two minutes of bulk jobs and 32 clients
	LEPTON_RELIABILITY_LONG=1 LEPTON_RELIABILITY_REPORT=bench/results/reliability.md $(PYTHON) -m pytest tests/reliability
	LEPTON_RELIABILITY_LONG=1 $(PYTHON) -m pytest tests/export/test_embedding.py  # the real all-MiniLM-L6-v2 vs sentence-transformers
	$(PYTHON) -c "from lepton_runtime.registry import ModelRegistry as R; R('models').resolve('intents@production')" \
		2>/dev/null || $(VENV)/bin/lepton demo  # the soak classifies with the demo's fine-tuned MiniLM (intents)
	$(PYTHON) bench/soak.py --minutes 30

chaos: install  ## 10 minutes of overlapping faults (seeded) under traffic, then a checker; report in bench/results/chaos.md
	$(PYTHON) -c "from lepton_runtime.registry import ModelRegistry as R; R('models').resolve('intents@production')" \
		2>/dev/null || $(VENV)/bin/lepton demo
	$(PYTHON) bench/chaos.py --minutes 10 --seed $(or $(SEED),1)

docs: install  ## the docs site (docs/, mkdocs.yml) into site/, every warning an error
	$(VENV)/bin/mkdocs build --strict

docs-serve: install  ## the docs site on http://127.0.0.1:8001 while you edit
	$(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8001

demo: install  ## the main job end to end on the embedded default
	$(VENV)/bin/lepton demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo site
