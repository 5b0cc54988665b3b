# The two commands of README.md: `make run` (the demo) and `make test` (the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip

.PHONY: run test lint format migrate demo clean help

help:
	@echo "make run   - install, migrate, load the demo and start web + Celery worker + beat"
	@echo "make test  - lint and run the whole suite against PostgreSQL and Redis"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt | $(BIN)/python
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.run-deps

run: $(VENV)/.run-deps
	mkdir -p var/broker/queue var/broker/processed var/broker/control
	sh scripts/ensure_pdf_deps.sh
	$(BIN)/python scripts/compile_messages.py
	DJANGO_SETTINGS_MODULE=collections_portal.settings.local $(BIN)/python manage.py migrate --noinput
	DJANGO_SETTINGS_MODULE=collections_portal.settings.local $(BIN)/python manage.py seed_demo
	DJANGO_SETTINGS_MODULE=collections_portal.settings.local ./scripts/run_demo.sh

lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev-deps
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(VENV)/.dev-deps
	$(BIN)/python scripts/check_services.py
	sh scripts/ensure_chromium.sh
	sh scripts/ensure_compose.sh
	sh scripts/ensure_pdf_deps.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DJANGO_SETTINGS_MODULE=collections_portal.settings.test $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/mypy
	$(BIN)/python scripts/compile_messages.py
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf var/db.sqlite3 var/broker
