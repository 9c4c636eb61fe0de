# Watchword: one entry point for everything. `make help` lists the targets.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TS := clients/typescript
BUF := $(TS)/node_modules/.bin/buf
INSTALLED := $(VENV)/.installed
# What `make run` and `make migrate` need: the server and the client, without the dev tools.
RUN_INSTALLED := $(VENV)/.installed-run
PIP_INSTALL := $(PY) -m pip install --quiet -c constraints.txt
NODE_INSTALLED := $(TS)/node_modules/.installed
# `make run` lets you try registration and login at once; e-mail verification needs mail
# (a later feature), so it is off here unless you say otherwise.
RUN_ENV ?= WATCHWORD_REGISTRATION_VERIFICATION=false

.DEFAULT_GOAL := help
.PHONY: help install h2load run migrate test pytest test-serializable bench lint breaking generate check-generated lock clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

PYTHON_SOURCES := pyproject.toml clients/python/pyproject.toml constraints.txt VERSION

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The full install serves too, so it stamps both.
$(INSTALLED): $(PYTHON_SOURCES) | $(VENV)/bin/python
	$(PIP_INSTALL) -e clients/python -e '.[dev]'
	touch $@ $(RUN_INSTALLED)

$(RUN_INSTALLED): $(PYTHON_SOURCES) | $(VENV)/bin/python
	$(PIP_INSTALL) -e clients/python -e .
	touch $@

$(NODE_INSTALLED): $(TS)/package.json $(TS)/package-lock.json
	cd $(TS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(INSTALLED) $(NODE_INSTALLED) h2load ## Create .venv and install the server, client and tools

# h2load (Debian's nghttp2-client) drives `make bench` and the benchmark's smoke test.
H2LOAD_PACKAGE := nghttp2-client
h2load: ## Make sure h2load is installed (apt-get as root on Debian; otherwise says how)
	@command -v h2load >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing h2load ($(H2LOAD_PACKAGE))"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(H2LOAD_PACKAGE) \
			|| { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(H2LOAD_PACKAGE); }; \
		else \
			echo "h2load is missing: install it, e.g. 'sudo apt-get install $(H2LOAD_PACKAGE)' on Debian/Ubuntu (nghttp2 elsewhere)" >&2; \
			exit 1; \
		fi; \
	}
	@command -v h2load >/dev/null 2>&1 || { echo "h2load is still missing after installing $(H2LOAD_PACKAGE)" >&2; exit 1; }

run: $(RUN_INSTALLED) ## Install what serving needs, migrate and serve on 127.0.0.1:50051 (embedded SQLite)
	$(RUN_ENV) $(VENV)/bin/watchword migrate
	$(RUN_ENV) $(VENV)/bin/watchword serve

migrate: $(RUN_INSTALLED) ## Bring the configured database's schema up to date
	$(VENV)/bin/watchword migrate

test: install check-generated lint breaking pytest test-serializable ## Install and run every check and test

pytest: $(INSTALLED) h2load ## Run the test suite only (PostgreSQL is found or started by the tests)
	$(PY) -m pytest

# The suites that drive the database again, with every test database's default isolation
# SERIALIZABLE: what CockroachDB and YugabyteDB run, where a transaction may be refused for
# a concurrent one and must be retried.
SERIALIZABLE_SUITES := tests/e2e tests/races tests/faults tests/integration
test-serializable: $(INSTALLED) h2load ## The end-to-end, race, fault and integration tests under SERIALIZABLE
	WATCHWORD_TEST_ISOLATION=serializable $(PY) -m pytest -m 'not client_side' $(SERIALIZABLE_SUITES)

# Flags for the benchmark, e.g. BENCH_ARGS="--large" or "--only B1,B5 --rounds 5".
BENCH_ARGS ?=
bench: $(INSTALLED) h2load ## Benchmark a real server (BENCH_ARGS=--large adds B4; see python -m bench --help)
	$(PY) -m bench $(BENCH_ARGS)

lint: install ## ruff, mypy --strict, the import rules (lint-imports) and buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(BUF) lint

# The contract may grow but never break: compare with the previous commit of main (or
# BUF_AGAINST=<git ref>) once that commit has protos. A shallow clone without it is told so.
BUF_AGAINST ?= HEAD~1
breaking: install ## buf breaking against the previous commit (BUF_AGAINST=<ref> to choose)
	@if git rev-parse --verify --quiet "$(BUF_AGAINST):protos" >/dev/null; then \
		echo "buf breaking --against .git#ref=$(BUF_AGAINST)"; \
		$(BUF) breaking protos --against ".git#ref=$(BUF_AGAINST),subdir=protos"; \
	else \
		echo "buf breaking: $(BUF_AGAINST) has no protos/ here; nothing to compare with"; \
	fi

generate: install ## Regenerate the Python and TypeScript code from protos/
	tools/generate.sh

check-generated: install ## Fail when the committed generated code differs from a fresh generation
	tools/check_generated.sh

lock: ## Re-resolve dependencies from scratch and rewrite constraints.txt
	rm -rf $(VENV)-lock
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/pip install --quiet --upgrade pip
	$(VENV)-lock/bin/pip install --quiet -e clients/python -e '.[dev]'
	{ echo "# Versions the last good install resolved to: \`make install\` passes this with -c so installs repeat."; \
	  echo "# Refresh with \`make lock\` after changing dependencies in pyproject.toml."; \
	  $(VENV)-lock/bin/pip freeze --exclude-editable | grep -iv '^watchword'; } > constraints.txt
	rm -rf $(VENV)-lock

clean: ## Remove the virtual environment, node_modules and caches
	rm -rf $(VENV) $(TS)/node_modules .mypy_cache .ruff_cache .pytest_cache
