# journey-analysis: `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KERNEL ?= journey-analysis
CONFIG ?= configs/demo.yaml
PYTEST_ARGS ?= -n 2

.DEFAULT_GOAL := help
.PHONY: help install run test demo-data validate student lab bench bench-env clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (journey-analysis)" >/dev/null
	@touch $(STAMP)

install: $(STAMP) ## Create .venv or VENV=<path> (when missing), install the package with test tools, register the Jupyter kernel

run: $(STAMP) ## Run the whole pipeline on CONFIG=<yaml> (configs/demo.yaml by default) and print where the report is
	$(BIN)/journey run --config $(CONFIG)

test: $(STAMP) ## Run the whole test suite (import layers, unit, real-data, notebook tests)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS) tests
	@if ls notebooks/*.ipynb >/dev/null 2>&1; then $(BIN)/python -m pytest --nbval-lax -p no:xdist notebooks/*.ipynb; fi

validate: $(STAMP) ## Check the data named in CONFIG=<yaml> and print a data-quality summary
	$(BIN)/journey validate --config $(CONFIG)

demo-data: $(STAMP) ## Regenerate the frozen demo data in data/raw/demo (seed 0)
	$(BIN)/journey demo-data --out data/raw/demo

student: $(STAMP) ## Write copies of the notebooks without solution cells to notebooks/student/
	$(BIN)/journey student --out notebooks/student

lab: $(STAMP) ## Open JupyterLab on the notebooks
	$(BIN)/jupyter lab notebooks/

bench-env: ## Create .venv-bench with the benchmarks' peers (pm4py is AGPL: never a package dependency)
	@test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet pandas pyarrow pm4py psutil

bench: $(STAMP) bench-env ## Run the benchmarks (slow; see benchmarks/README.md)
	$(BIN)/python benchmarks/bench_steps.py --sizes 1,10,100
	$(BIN)/python benchmarks/bench_sentiment.py
	$(BIN)/python benchmarks/bench_voice.py
	$(BIN)/python benchmarks/bench_themes.py
	$(BIN)/python benchmarks/bench_segment.py
	$(BIN)/python benchmarks/bench_spark.py --sizes 10 100
	$(BIN)/python benchmarks/bench_run.py --sizes 100000,800000

clean: ## Remove the virtual environment and caches (keeps data and reports)
	rm -rf $(VENV) .pytest_cache build *.egg-info
