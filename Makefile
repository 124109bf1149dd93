# Each job sets itself up from a fresh machine (Python >= 3.11 with venv):
#   make run    the headline job (see README)
#   make test   the full test suite and the linter
#   make docs   the documentation site into build/site/ (mkdocs build --strict: any warning fails)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test docs bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first: asking for plain "torch" can pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,docs]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(PY) examples/headline.py

test: setup
	$(PY) -m pytest
	$(PY) -m ruff check .

docs: setup
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir build/site

bench: setup
	$(PY) benchmarks/bench_env.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info build/site
