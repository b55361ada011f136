# Two commands do everything on a fresh machine with Python 3.11+ and make:
#   make run    install, start the embedded PostgreSQL (unless DATABASE_URL is set),
#               migrate, seed the demo, serve on $(PORT)
#   make test   the same set-up, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PORT   ?= 8000
HOST   ?= 127.0.0.1
WORKERS ?= 2
STAMP   = $(VENV)/.installed
# Runs a command with DATABASE_URL set: as given, else the embedded PostgreSQL
# in .data/pg (started if needed). Settings never start a database themselves.
WITH_DB = $(BIN)/python -m devtools.embedded_db run --

.PHONY: run test install migrate seed serve worker lint typecheck check bench db-url db-stop clean deploy-check

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

migrate: install
	$(WITH_DB) $(BIN)/python manage.py bootstrap

seed: migrate
	$(WITH_DB) $(BIN)/python manage.py seed_demo

run: seed
	$(WITH_DB) $(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(WITH_DB) $(BIN)/gunicorn config.wsgi -c deploy/gunicorn.conf.py --bind $(HOST):$(PORT) --workers $(WORKERS)

# The Celery worker that sends the outbox's emails, with the beat that sweeps
# it (-B: fine for one worker; production runs one separate `celery beat`).
# Needs a broker: REDIS_URL (or CELERY_BROKER_URL). Without one, `make run`
# sends email from the web process itself (README, "Email").
worker: install
	@test -n "$${CELERY_BROKER_URL:-$$REDIS_URL}" || { echo "make worker needs REDIS_URL (or CELERY_BROKER_URL); without one, make run sends email in-process."; exit 2; }
	$(WITH_DB) $(BIN)/celery -A config worker -B --loglevel=INFO --concurrency=$(WORKERS) --schedule=.data/celerybeat-schedule

# With CITUS_URL (a Citus coordinator's database), the whole suite runs on
# that cluster instead, tests/tenants/test_citus.py included (deploy/README.md).
test: install
	DATABASE_URL="$${CITUS_URL:-$$DATABASE_URL}" $(WITH_DB) $(BIN)/pytest $(PYTEST_ARGS)

# ruff (style and the import rules it knows), import-linter (the layers: see
# docs/ARCHITECTURE.md and [tool.importlinter] in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(WITH_DB) $(BIN)/mypy .

check: install
	$(WITH_DB) $(BIN)/python manage.py check --fail-level WARNING
	$(WITH_DB) $(BIN)/python manage.py makemigrations --check --dry-run

# Offline checks of deploy/: Kubernetes schemas, nginx -t and requests through
# nginx, compose structure, Dockerfile and .dockerignore (scripts/check_deploy.py).
deploy-check: install
	$(BIN)/python scripts/check_deploy.py

bench: migrate
	$(BIN)/python bench/provision.py

db-url: install
	@$(BIN)/python -m devtools.embedded_db url

db-stop: install
	$(BIN)/python -m devtools.embedded_db stop

clean: db-stop
	rm -rf $(VENV) .data staticfiles .pytest_cache .mypy_cache .ruff_cache
