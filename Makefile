# The project's commands. `make up` runs the local stack; `make test` runs every check CI runs.
#   make up FRESH=1   the stack starts from nothing (drops the data kept in .local-stack/data/)
#   make up QUIET=1   the banner alone, no line per request
VENV := .venv
PY := $(VENV)/bin/python
STACK_FLAGS := $(if $(filter-out 0,$(FRESH)),--fresh) $(if $(filter-out 0,$(QUIET)),--quiet)

.PHONY: setup up test lint typecheck pytest bench

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt tools/setup.sh
	bash tools/setup.sh
	touch $@

up: setup
	$(PY) -m tools.stack $(STACK_FLAGS)

lint: setup
	$(PY) -m ruff check functions tools devicecloud tests bench main.py
	$(PY) -m ruff format --check functions tools devicecloud tests bench main.py

typecheck: setup
	$(PY) -m mypy functions tools devicecloud bench main.py

pytest: setup
	$(PY) -m pytest

test: lint typecheck pytest

bench: setup
	$(PY) -m bench
