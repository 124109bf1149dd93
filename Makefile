# Two jobs, each sets itself up from a fresh machine (Python >= 3.11 with venv):
#   make run    the headline job (see README)
#   make test   the full test suite and the linter
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first: asking for plain "torch" can pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(PY) examples/headline.py

test: setup
	$(PY) -m pytest
	$(PY) -m ruff check .

bench: setup
	$(PY) benchmarks/bench_env.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
