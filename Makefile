# The project's commands. `make up` runs the local stack; `make test` runs every check CI runs.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup up test lint typecheck pytest bench

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt functions/devtools/setup.sh
	bash functions/devtools/setup.sh
	touch $@

up: setup
	$(PY) -m functions.devtools.stack

lint: setup
	$(PY) -m ruff check functions tests bench main.py
	$(PY) -m ruff format --check functions tests bench main.py

typecheck: setup
	$(PY) -m mypy functions bench main.py

pytest: setup
	$(PY) -m pytest

test: lint typecheck pytest

bench: setup
	$(PY) -m bench
