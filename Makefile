# Two commands for a newcomer: `make run` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app portal
# The PostgreSQL pass of the suite creates and drops a throwaway database through this server.
PG_ADMIN_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
PYTEST_ARGS ?= -q

.PHONY: run demo test test-sqlite test-postgres install install-dev migrate bench bench-onboarding clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(FLASK) db upgrade

## make run: install, migrate the SQLite database in instance/, create the first admin, serve on :5000, with one
## outbox worker in the background delivering tenant changes to IS 7 and API Manager (stopped with the server)
run: migrate
	$(FLASK) bootstrap-admin
	$(FLASK) worker --concurrency 4 & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	$(FLASK) run --host 127.0.0.1 --port 5000

## make demo: both WSO2 simulators and the portal wired to them (fresh database in instance/demo/), on :5000, with
## a demo tenant whose API Manager key generation through IS's mTLS handler is reported.
## Options: make demo DEMO_ARGS="--port 5001 --direction apim_to_is --key-manager-users admin" (see --help)
DEMO_ARGS ?=
demo: install-dev
	$(BIN)/python -m simulators.demo $(DEMO_ARGS)

## make test: the whole suite on SQLite, then again on PostgreSQL
test: test-sqlite test-postgres

test-sqlite: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: install-dev
	PORTAL_TEST_PG_ADMIN_URL=$(PG_ADMIN_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)

## make bench: every benchmark in bench/ (tenant list, onboarding, tokens, mixed load) in its quick form, about 5
## minutes, then one table of ratios with the command behind each (bench/README.md). Full length:
## make bench BENCH_ARGS=--full; on PostgreSQL: BENCH_ARGS='--database-url $(PG_ADMIN_URL)'
BENCH_ARGS ?=
bench: install-dev
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

## make bench-onboarding: 1,000 tenants delivered to both simulated products, concurrent vs one after another
bench-onboarding: install-dev
	$(BIN)/python bench/onboarding.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
