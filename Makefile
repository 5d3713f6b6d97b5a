# The two commands of the README: `make demo` and `make test`. Each does its own set-up.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck unit notebooks lab bench setup graphviz chromium clean test-redis-floor

# the oldest redis-py that pyproject.toml allows: the Redis-facing tests run on it too
REDIS_FLOOR := 5.3.1
FLOOR_DIR   := .redis-floor
FLOOR_TESTS := tests/test_config.py tests/test_lock.py tests/test_connect.py \
               tests/test_queue.py tests/test_queue_cluster.py tests/test_queue_faults.py \
               tests/test_queue_release.py tests/test_queue_transitions.py \
               tests/test_runs.py tests/test_runs_cluster.py tests/test_runs_control.py \
               tests/test_runs_e2e.py tests/test_runs_retention.py tests/test_runs_walks.py \
               tests/test_submit_staged.py \
               tests/test_worker.py

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
	$(MAKE) test-redis-floor

# redis-py $(REDIS_FLOOR) in a directory of its own, ahead of the venv's on PYTHONPATH (the
# local workers the tests start inherit it)
test-redis-floor: setup
	test -d $(FLOOR_DIR)/redis-$(REDIS_FLOOR).dist-info || \
	  { rm -rf $(FLOOR_DIR) && $(PY) -m pip install -q --target $(FLOOR_DIR) redis==$(REDIS_FLOOR); }
	PYTHONPATH=$(abspath $(FLOOR_DIR)) $(PY) -c 'import redis; assert redis.__version__ == "$(REDIS_FLOOR)", redis.__version__'
	PYTHONPATH=$(abspath $(FLOOR_DIR)) $(PY) -m pytest -q -p no:cacheprovider $(FLOOR_TESTS)

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
	rm -rf $(VENV) $(FLOOR_DIR) .pytest_cache .mypy_cache .ruff_cache
