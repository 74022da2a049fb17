# The two commands of the README. Each creates .venv if needed and installs the package.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean corpus corpus-deps

# setup.py builds the native library (src/uintr_emu/native/*.c) into the package.
$(STAMP): pyproject.toml setup.py $(wildcard src/uintr_emu/native/*.[ch])
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# pip byte-compiles a package it installs, but not an editable install's sources: under
# PYTHONDONTWRITEBYTECODE every start would compile every module again (~0.4 s). Only the
# modules changed since the last time are compiled.
BYTECODE := $(VENV)/bin/python -m compileall -q src/uintr_emu

demo: $(STAMP)
	$(BYTECODE)
	$(VENV)/bin/uintr-emu demo

test: $(STAMP) corpus-deps
	$(BYTECODE)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

# The real-program corpus (tests/corpus/, docs/linux.md "Real programs"): the programs it runs,
# installed where missing and possible (root, apt-get); `make test` runs its quick subset.
corpus-deps:
	$(PYTHON) tests/corpus/deps.py

corpus: $(STAMP) corpus-deps
	$(BYTECODE)
	$(VENV)/bin/python tests/corpus/run.py

bench: $(STAMP)
	$(BYTECODE)
	$(VENV)/bin/python benchmarks/run.py

clean:
	rm -rf $(VENV) build .pytest_cache src/uintr_emu/_fastpath*.so
