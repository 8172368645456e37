# flightos — the two commands a new user needs: `make run` and `make test`.
# Both create the virtual environment and install what they need.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-stamp
TARGET ?= sim-radhard
PY310  ?= $(shell command -v python3.10 2>/dev/null)

.PHONY: run test lint typecheck imports pytest bench clean venv test-py310

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "flightos needs Python >= 3.10")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,report]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/flightos run --target $(TARGET)

lint: $(STAMP)
	$(VENV)/bin/ruff check flightos hal services tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

imports: $(STAMP)
	$(VENV)/bin/lint-imports

pytest: $(STAMP)
	$(PY) -m pytest -q

test: lint typecheck imports pytest

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
