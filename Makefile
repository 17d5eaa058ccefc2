# Two commands set everything up on a fresh machine:
#   make run    venv + install + serve on http://localhost:7007 (embedded default config)
#   make test   everything the tests need + every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
NODE_STAMP := tests/op/node_modules/.installed tests/compat/peer_idp/node_modules/.installed \
	tests/browser/frontend/node_modules/.installed

SPEC_LINT := tools/spec-lint

.PHONY: run test lint spec-lint typecheck clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

%/node_modules/.installed: %/package.json %/package-lock.json
	cd $* && npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: $(STAMP)
	$(BIN)/auth-backend serve --development --log-format text

lint: $(TEST_STAMP)
	$(BIN)/ruff check app tests
	$(BIN)/ruff format --check app tests
	$(BIN)/lint-imports --config .importlinter

# Every document in spec/ is valid OpenAPI and follows the style rules in
# tools/spec-lint/redocly.yaml (each provider's own document: tests/server/test_spec_documents.py).
spec-lint: $(TEST_STAMP) $(SPEC_LINT)/node_modules/.installed
	$(BIN)/openapi-spec-validator spec/*.yaml
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
		$(SPEC_LINT)/node_modules/.bin/redocly lint --config $(SPEC_LINT)/redocly.yaml spec/*.yaml

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

# Debian's chromium for the browser tests (never a downloaded browser build).
browser:
	bash scripts/install-browser.sh

test: $(TEST_STAMP) $(NODE_STAMP) browser lint spec-lint typecheck
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) tests/op/node_modules tests/compat/peer_idp/node_modules tests/browser/frontend/node_modules \
		$(SPEC_LINT)/node_modules
