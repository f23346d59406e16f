# Two commands do everything on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint format install

# constraints.txt pins the tested versions (torch 2.13.0 CPU); pyproject.toml only states ranges.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# torch's default threads (one per core): on a quiet 2-core machine two threads train the
# playground model 1.78x faster than one (71 vs 126 ms a step) and evaluate it 1.35x faster
# (12.8 vs 17.3 s, `wagle evaluate` on forget10); the build's parallel fine-tunes take one
# thread each. On a machine busy with other work, OMP_NUM_THREADS=1 make demo is faster.
demo: $(STAMP)
	$(VENV)/bin/wagle demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

test: lint
	$(VENV)/bin/python -m pytest
