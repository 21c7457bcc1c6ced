# Two commands for a newcomer: `make run` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app portal
# The PostgreSQL pass of the suite creates and drops a throwaway database through this server.
PG_ADMIN_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
PYTEST_ARGS ?= -q
# The suite runs on two processes (pytest-xdist): the browser tests mostly wait on chromium and the servers while the
# rest mostly compute, so the two overlap well on a 2-core machine. What must share a process: tests/markers.py
# scope_of. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS))

# The tests that need no service or tool beyond Python: no PostgreSQL, slapd, chromium, nginx or JDK, nothing slow.
FAST := not (postgres or ldap or browser or nginx or jdk or slow)

.PHONY: run demo test test-sqlite test-postgres test-fast lint system-packages install install-dev migrate bench \
	bench-onboarding clean

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

## make test: the whole suite on SQLite, then again on PostgreSQL. First the Debian packages it drives (slapd,
## ldap-utils, a JDK, openssl, chromium, nginx) are checked, and installed when run as root or with sudo; otherwise
## scripts/ensure-system-packages prints what to install and stops. PostgreSQL must answer at 127.0.0.1:5432.
test: test-sqlite test-postgres

system-packages:
	scripts/ensure-system-packages

test-sqlite: system-packages install-dev
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

test-postgres: system-packages install-dev
	PORTAL_TEST_PG_ADMIN_URL=$(PG_ADMIN_URL) $(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

## make test-fast: the tests that need no external service (markers: tests/markers.py), under a minute. Bytecode is
## written even when PYTHONDONTWRITEBYTECODE is set: otherwise every run compiles the portal again and pytest rewrites
## the asserts of ~100 test modules again (about 15 s of CPU on a 2-core machine)
test-fast: install-dev
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS) -m "$(FAST)"

## make lint: ruff and the import contract (the layers, pyproject.toml [tool.importlinter]); CI runs it first
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

## make bench: every benchmark in bench/ (tenant list, onboarding, tokens, mixed load, sign-in flood) in its quick
## form on SQLite and on PostgreSQL ($(PG_ADMIN_URL), throwaway databases), about 10 minutes, load from wrk, then one
## table of figures (server CPU per request ratios) with the command behind each (bench/README.md).
## Full length: make bench BENCH_ARGS=--full; one database: BENCH_ARGS='--databases sqlite'
BENCH_ARGS ?=
bench: system-packages install-dev
	$(BIN)/python bench/run_all.py --database-url $(PG_ADMIN_URL) $(BENCH_ARGS)

## make bench-onboarding: 1,000 tenants delivered to both simulated products, concurrent vs one after another
bench-onboarding: install-dev
	$(BIN)/python bench/onboarding.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
