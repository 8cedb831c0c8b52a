# segstream: `make run` starts the whole system locally, `make test` runs every test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

DEPLOY_STAMP := $(VENV)/.installed-deploy
# Test processes (pytest-xdist), each with its own broker. The integration tests mostly wait
# (for brokers, group joins, retry timers), so three share two cores well; the `serial` ones
# (a pass/fail line on a rate, the benchmark smoke runs) run alone afterwards.
TEST_WORKERS ?= 3

.PHONY: help run test test-fast lint format clean bench bench-latency bench-consumer bench-scaling bench-failover bench-state bench-memory bench-ratelimit bench-bridge bench-profile deploy-check deploy-generate
.DEFAULT_GOAL := help

## help: this list
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(STAMP)

## run: local Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS is set), CRM simulator, bridge, consumer
run: $(STAMP)
	$(BIN)/segstream-sandbox run

## test: unit tests and real-broker integration tests (every marker but deploy: see deploy-check)
test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup -m "not deploy and not serial" --ignore=tests/deploy
	$(BIN)/pytest -m "serial and not deploy" --ignore=tests/deploy

## test-fast: what needs no broker
test-fast: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not kafka and not slow and not deploy" --ignore=tests/deploy

## lint: ruff (lint + format check) and mypy --strict
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: every benchmark below, then docs/PERFORMANCE.md and its plots (about 25 min; not in `test`)
bench: $(STAMP)
	$(BIN)/python -m bench.report run $(BENCH_ARGS)

## bench-latency: end-to-end latency (record timestamp -> CRM) against rate, vs a policy-free consumer
bench-latency: $(STAMP)
	$(BIN)/python -m bench.latency $(BENCH_ARGS)

## bench-consumer: segstream's consumer vs a naive one-at-a-time consumer and a bare aiohttp client
bench-consumer: $(STAMP)
	$(BIN)/python -m bench.consumer $(BENCH_ARGS)

## bench-scaling: group throughput with 1, 2 and 3 consumer instances
bench-scaling: $(STAMP)
	$(BIN)/python -m bench.scaling $(BENCH_ARGS)

## bench-failover: pause in the flow after one of two instances is killed (SIGKILL)
bench-failover: $(STAMP)
	$(BIN)/python -m bench.failover $(BENCH_ARGS)

## bench-state: customer-state restore and dedupe rebuild time and memory (BENCH_ARGS="--sweep 10000,100000")
bench-state: $(STAMP)
	$(BIN)/python -m bench.state $(BENCH_ARGS)

## bench-memory: the consumer's memory with its in-flight bound full
bench-memory: $(STAMP)
	$(BIN)/python -m bench.memory $(BENCH_ARGS)

## bench-ratelimit: a group's write rate against its configured CRM rate, and its 429s
bench-ratelimit: $(STAMP)
	$(BIN)/python -m bench.ratelimit $(BENCH_ARGS)

## bench-bridge: durable 202/s of the bridge vs the same app without Kafka (vegeta; not in `test`)
bench-bridge: $(STAMP)
	$(BIN)/python -m bench.bridge $(BENCH_ARGS)

## bench-profile: py-spy profiles of the consumer and the bridge under load
bench-profile: $(STAMP)
	$(BIN)/python -m bench.profile $(BENCH_ARGS)

$(DEPLOY_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,deploy]'
	@touch $(DEPLOY_STAMP)

## deploy-check: build the image, run it and the compose stack, validate deploy/k8s, promtool the alert rules, run dashboard and alert queries in a real Prometheus (Docker engine started if none answers; tools from deploy/check/install-tools.sh)
deploy-check: $(DEPLOY_STAMP)
	deploy/check/run.sh $(DEPLOY_CHECK_ARGS)

## deploy-generate: regenerate deploy/k8s/base/monitoring/prometheusrule.yaml from the alert rules
deploy-generate: $(DEPLOY_STAMP)
	$(BIN)/python deploy/prometheus/prometheusrule.py > deploy/k8s/base/monitoring/prometheusrule.yaml

## format: ruff fix and format
format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## clean: the virtualenv, local state and caches (not ~/.cache/segstream)
clean:
	rm -rf $(VENV) .run .wheelhouse .mypy_cache .ruff_cache .pytest_cache .hypothesis
