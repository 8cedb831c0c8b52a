# segstream: `make run` starts the whole system locally, `make test` runs every test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint format clean bench-consumer bench-bridge bench-state

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## run: local Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS is set), CRM simulator, bridge, consumer
run: $(STAMP)
	$(BIN)/segstream-sandbox run

## test: unit tests and real-broker integration tests (all markers)
test: $(STAMP)
	$(BIN)/pytest

## test-fast: what needs no broker
test-fast: $(STAMP)
	$(BIN)/pytest -m "not kafka and not slow"

## lint: ruff (lint + format check) and mypy --strict
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench-consumer: segstream's consumer vs a naive one-at-a-time consumer and a bare aiohttp client
bench-consumer: $(STAMP)
	$(BIN)/python -m bench.consumer

## bench-state: customer-state memory per customer and restore time, 1,000,000 customers
bench-state: $(STAMP)
	$(BIN)/python -m bench.state $(BENCH_ARGS)

## bench-bridge: durable 202/s of the bridge vs the same app without Kafka (vegeta; not in `test`)
bench-bridge: $(STAMP)
	$(BIN)/python -m bench.bridge $(BENCH_ARGS)

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .run .mypy_cache .ruff_cache .pytest_cache .hypothesis
