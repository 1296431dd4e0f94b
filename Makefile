# Two commands do everything: `make demo` and `make test`. Each first runs the idempotent set-up.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test demo lint bench clean

setup: $(STAMP) system-packages

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

.PHONY: system-packages
system-packages:
	@./scripts/system-packages.sh

# two workers: most of the suite waits on sockets, ptys and subprocesses, so two halve the wall time
# (CI has two cores); each worker starts its own PostgreSQL and brokers on free ports
test: setup lint
	$(PY) -m pytest -q -n 2

demo: setup
	$(VENV)/bin/bondgate demo

# lint: ruff (rules and format) and mypy (strict for kernel/, devices/ and edge/rules.py: pyproject.toml)
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: setup
	$(PY) bench/central_ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
