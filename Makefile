# Everything a fresh machine needs: `make demo` and `make test` create the virtualenv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Flower must never install dependencies at run time nor phone home.
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION := 1
export FLWR_TELEMETRY_ENABLED := 0

.PHONY: setup demo test bench lint clean

setup: $(STAMP)

# torch first and pinned: 2.13.0 is the CPU build on local disk; an unpinned torch pulls a CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/polyclinic demo --out demo-out

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: setup
	$(BIN)/python benchmarks/site_pipeline.py
	$(BIN)/python benchmarks/dp_overhead.py
	$(BIN)/python benchmarks/federation.py
	$(BIN)/python benchmarks/secure_aggregation.py --repeats 3
	$(BIN)/python benchmarks/utility.py --seeds 5
	$(BIN)/python benchmarks/input_signal.py

lint: setup
	$(BIN)/ruff check polyclinic modalities privacy compliance client server benchmarks tests

clean:
	rm -rf $(VENV) demo-out
