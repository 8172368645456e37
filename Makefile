# flightos — the two commands a new user needs: `make run` and `make test`.
# Both create the virtual environment and install what they need.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-stamp
TARGET ?= sim-radhard
# A Python 3.10 interpreter (JetPack 6 ships 3.10): `make test` runs the suite on it too when one is found.
PY310  ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10; do \
            $$p -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV310 = .venv310
STAMP310 = $(VENV310)/.installed-stamp

.PHONY: run test lint typecheck imports pytest bench clean venv test-py310 docs

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "flightos needs Python >= 3.10")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,report,inference]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/flightos run --target $(TARGET)

lint: $(STAMP)
	$(VENV)/bin/ruff check flightos hal services tests bench
	$(VENV)/bin/ruff format --check flightos hal services tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

imports: $(STAMP)
	$(VENV)/bin/lint-imports

pytest: $(STAMP)
	$(PY) -m pytest -q

test: lint typecheck imports pytest test-py310

$(STAMP310): pyproject.toml
	@test -x $(VENV310)/bin/python || $(PY310) -m venv $(VENV310)
	$(VENV310)/bin/python -m pip install --quiet --upgrade pip
	$(VENV310)/bin/python -m pip install --quiet -e '.[dev,report,inference]'
	@touch $(STAMP310)

# The 3.10 pass skips only the tests marked slow (the 30 s link cuts), which ran on the main interpreter.
test-py310:
ifeq ($(strip $(PY310)),)
	@echo "test-py310: no Python 3.10 interpreter found; the suite ran on $$($(PY) --version) only"
else
	@$(MAKE) --no-print-directory $(STAMP310)
	$(VENV310)/bin/python -m pytest -q -p no:cacheprovider -m "not slow"
endif

# The bench extra (paho-mqtt, for the MQTT peer): a failed install only costs the MQTT rows, which say why.
BENCH_STAMP = $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	-$(PY) -m pip install --quiet -e '.[dev,report,inference,bench]' && touch $(BENCH_STAMP)

bench: $(STAMP) $(BENCH_STAMP)
	$(PY) -m bench

docs: $(STAMP)
	$(PY) -m flightos.config.docs > docs/targets.md
	$(PY) -m flightos.reference topics > docs/topics.md
	$(PY) -m flightos.reference testing > docs/testing.md

clean:
	rm -rf $(VENV) $(VENV310) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
