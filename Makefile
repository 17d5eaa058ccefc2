# Two commands set everything up on a fresh machine:
#   make run    venv + install + serve on http://localhost:7007 (embedded default config)
#   make test   everything the tests need + every test (from a plain clone: nothing beside it)
# Optional, with the workspace's real Backstage peer (or PEER_DIR=...):
#   make compat-live   record Backstage now and run the compatibility test against that
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
NODE_STAMP := tests/op/node_modules/.installed tests/compat/peer_idp/node_modules/.installed \
	tests/browser/frontend/node_modules/.installed

.PHONY: run test lint typecheck clean browser compat-live

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

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

# Debian's chromium for the browser tests (never a downloaded browser build).
browser:
	bash scripts/install-browser.sh

# The coverage figure (branch coverage of app/) is printed before pytest's summary.
test: $(TEST_STAMP) $(NODE_STAMP) browser lint typecheck
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered

# Says what is missing (and fails) before installing anything when there is no peer.
compat-live:
	bash scripts/compat-live.sh --check
	$(MAKE) $(TEST_STAMP) tests/compat/peer_idp/node_modules/.installed
	bash scripts/compat-live.sh

clean:
	rm -rf $(VENV) tests/op/node_modules tests/compat/peer_idp/node_modules tests/browser/frontend/node_modules
