# The two commands of the README: `make demo` and `make test`. Each does its own set-up.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck unit notebooks lab bench setup graphviz chromium clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,browser]'
	touch $(STAMP)

setup: $(STAMP) graphviz

graphviz:
	@scripts/ensure-graphviz.sh

# Not fatal: without Chromium, tests/test_browser.py is skipped and says why.
chromium:
	@scripts/ensure-chromium.sh || echo "tests/test_browser.py will be skipped (no Chromium)"

demo: setup
	$(PY) -m ironforge_nb.demo

lint: $(STAMP)
	$(PY) -m ruff check ironforge_nb tests benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy

unit: setup chromium
	$(PY) -m pytest tests

notebooks: setup
	$(PY) -m pytest --nbval notebooks

test: setup chromium lint typecheck
	$(PY) -m pytest tests
	$(PY) -m pytest --nbval notebooks

lab: setup
	$(PY) -m pip install -q -e '.[dev,lab]'
	$(VENV)/bin/jupyter lab notebooks

bench: setup
	benchmarks/setup_envs.sh
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) benchmarks/bench_dag.py
	$(PY) benchmarks/bench_render.py
	$(PY) benchmarks/bench_queue.py
	$(PY) benchmarks/bench_runs.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
