# Two commands set everything up on a fresh machine:
#   make run    venv + install + serve on http://localhost:7007 (embedded default config)
#   make test   everything the tests need + every test (from a plain clone: nothing beside it)
# and for the container image:
#   make image       build it as $(IMAGE) (docker, or buildah where there is no Docker engine)
#   make test-image  build it with buildah and test the server running from it (tests/image)
# Optional, with the workspace's real Backstage peer (or PEER_DIR=...):
#   make compat-live   record Backstage now and run the compatibility test against that
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
NODE_STAMP := tests/op/node_modules/.installed tests/compat/peer_idp/node_modules/.installed \
	tests/browser/frontend/node_modules/.installed tests/backstage_auth/node_modules/.installed

SPEC_LINT := tools/spec-lint

.PHONY: run test lint spec-lint typecheck clean browser forward-proxy compat-live lock image \
	test-image

# Every installed distribution comes from a lock with hashes (requirements/*.lock, made by
# `make lock`); the project itself is then installed without resolving anything. pip check
# fails when pyproject.toml's pins changed and the locks were not refreshed.
$(STAMP): pyproject.toml requirements/build.lock requirements/runtime.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/build.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements/runtime.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $@

$(TEST_STAMP): $(STAMP) requirements/test.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements/test.lock
	$(BIN)/pip check
	touch $@

# The locks are for the image's platform (CPython 3.11 on Linux); --upgrade moves the
# unpinned transitive dependencies to their newest versions.
UV_COMPILE = $(BIN)/uv pip compile --quiet --upgrade --generate-hashes --python-version 3.11 \
	--python-platform linux --custom-compile-command 'make lock'

$(VENV)/.installed-uv: $(STAMP) requirements/tools.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements/tools.lock
	touch $@

lock: $(VENV)/.installed-uv
	$(UV_COMPILE) -o requirements/runtime.lock pyproject.toml
	$(UV_COMPILE) -o requirements/test.lock --extra test pyproject.toml
	$(UV_COMPILE) -o requirements/build.lock requirements/build.in
	$(UV_COMPILE) -o requirements/tools.lock requirements/tools.in

%/node_modules/.installed: %/package.json %/package-lock.json
	cd $* && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The real Backstage backend from npm, one project for tests/backstage_auth (the auth
# backend), tests/backstage_backend and tests/mcp_e2e (the catalog and MCP actions
# backends beside our server): better-sqlite3's addon is built from source against the
# local Node headers (no prebuilt binary can be downloaded).
tests/backstage_auth/node_modules/.installed: tests/backstage_auth/package.json tests/backstage_auth/package-lock.json
	cd tests/backstage_auth && npm ci --no-audit --no-fund --loglevel=error --nodedir=/usr
	cd tests/backstage_auth && (node -e "new (require('better-sqlite3'))(':memory:')" 2>/dev/null \
		|| npm rebuild better-sqlite3 --nodedir=/usr)
	touch $@

# make run PORT=17313: the demo on another port (its URLs follow).
PORT ?= 7007
run: $(STAMP)
	$(BIN)/auth-backend serve --development --log-format text --port $(PORT)

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

# app/ strictly; tests/ too, with the relaxations in pyproject.toml ([[tool.mypy.overrides]]).
typecheck: $(TEST_STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --explicit-package-bases tests

# Debian's chromium for the browser tests (never a downloaded browser build).
browser:
	bash scripts/install-browser.sh

# Debian's tinyproxy, the real forward proxy of the corporate-network tests.
forward-proxy:
	bash scripts/install-proxy.sh

# The coverage figure (branch coverage of app/) is printed before pytest's summary.
test: $(TEST_STAMP) $(NODE_STAMP) browser forward-proxy lint spec-lint typecheck
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered

# Says what is missing (and fails) before installing anything when there is no peer.
compat-live:
	bash scripts/compat-live.sh --check
	$(MAKE) $(TEST_STAMP) tests/compat/peer_idp/node_modules/.installed
	bash scripts/compat-live.sh

IMAGE ?= auth-backend:test

image:
	bash scripts/build-image.sh $(IMAGE)

# tests/image runs the image with buildah (no Docker engine here), so it is built with buildah.
test-image: $(TEST_STAMP) tests/op/node_modules/.installed
	bash scripts/install-image-tools.sh
	IMAGE_BUILDER=buildah bash scripts/build-image.sh $(IMAGE)
	AUTH_BACKEND_IMAGE=$(IMAGE) $(BIN)/python -m pytest tests/image

clean:
	rm -rf $(VENV) tests/op/node_modules tests/compat/peer_idp/node_modules \
		tests/browser/frontend/node_modules tests/backstage_auth/node_modules \
		$(SPEC_LINT)/node_modules
