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

.PHONY: run test install migrate seed serve lint typecheck check bench db-url db-stop clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

migrate: install
	$(BIN)/python manage.py bootstrap

seed: migrate
	$(BIN)/python manage.py seed_demo

run: seed
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/gunicorn config.wsgi --bind $(HOST):$(PORT) --workers $(WORKERS) --access-logfile -

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy .

check: install
	$(BIN)/python manage.py check --fail-level WARNING
	$(BIN)/python manage.py makemigrations --check --dry-run

bench: migrate
	$(BIN)/python bench/provision.py

db-url: install
	@$(BIN)/python -m config.embedded_db url

db-stop: install
	$(BIN)/python -m config.embedded_db stop

clean: db-stop
	rm -rf $(VENV) .data staticfiles .pytest_cache .mypy_cache .ruff_cache
