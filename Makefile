# access-api: `make run` serves a demo on http://127.0.0.1:8000, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_PASSWORD := .demo-admin-password
DEMO_EMAIL := admin@demo.example.com

.PHONY: install run test lint format typecheck contract openapi constraints bench clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "access-api needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/access-api migrate
	@test -s $(DEMO_PASSWORD) || (umask 077 && $(BIN)/python -c \
		'import secrets; print(secrets.token_urlsafe(18))' > $(DEMO_PASSWORD))
	$(BIN)/access-api bootstrap --name "Demo MSP" --domain-prefix demo \
		--admin-email $(DEMO_EMAIL) --admin-password-file $(DEMO_PASSWORD)
	@echo
	@echo "  Log in as $(DEMO_EMAIL) with the password in $(DEMO_PASSWORD): $$(cat $(DEMO_PASSWORD))"
	@echo "  Interactive docs: http://127.0.0.1:8000/docs"
	@echo
	$(BIN)/access-api serve --host 127.0.0.1 --port 8000

lint: $(STAMP)
	$(BIN)/ruff check src tests migrations bench
	$(BIN)/ruff format --check src tests migrations bench

format: $(STAMP)
	$(BIN)/ruff check --fix src tests migrations bench
	$(BIN)/ruff format src tests migrations bench

typecheck: $(STAMP)
	$(BIN)/mypy

contract: $(STAMP)
	@$(BIN)/access-api openapi | diff -u openapi.yaml - > /dev/null || \
		{ echo "openapi.yaml differs from the app's schema: run 'make openapi' and commit it"; \
		  $(BIN)/access-api openapi | diff -u openapi.yaml - | head -40; exit 1; }
	@echo "openapi.yaml matches the app"

openapi: $(STAMP)
	$(BIN)/access-api openapi > openapi.yaml

test: lint typecheck contract
	$(BIN)/pytest

# The peer (fastapi-users) gets a virtualenv of its own, so its pins never touch ours.
PEER := .venv-bench-peer
$(PEER)/.installed-stamp:
	$(PYTHON) -m venv $(PEER)
	$(PEER)/bin/python -m pip install --quiet "fastapi-users[sqlalchemy]" asyncpg "uvicorn[standard]"
	@touch $@

bench: $(STAMP) $(PEER)/.installed-stamp
	@command -v wrk > /dev/null || { echo "make bench needs wrk (Debian/Ubuntu: apt-get install wrk)"; exit 1; }
	$(BIN)/python -m bench $(BENCH_ARGS)

constraints: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^access-api' > constraints.txt

clean:
	rm -rf $(VENV) $(PEER) .pytest_cache .mypy_cache .ruff_cache
