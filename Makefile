# regbench — `make help` lists the targets.
PYTHON ?= python3
RUNS ?= runs
GRID ?= quick
WORKERS ?= 2
DATA ?= $(REGBENCH_DATA)
, := ,

.DEFAULT_GOAL := help
.PHONY: help install test test-slow lint bench report status perf golden nightly clean-runs

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

install: ## install regbench with the CPU torch wheel and the test tools
	$(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e '.[dev]'

test: ## the test suite without the slow end-to-end checks (a few minutes)
	$(PYTHON) -m pytest -q -m "not slow"

test-slow: ## the slow end-to-end checks: kills and resumes, SLURM, plugins, DDP, compiles
	$(PYTHON) -m pytest -q -m slow

lint: ## ruff
	$(PYTHON) -m ruff check .

bench: ## run the default grid (GRID=quick, WORKERS=2) and write results/$(GRID)/
	$(PYTHON) -m regbench launch $(GRID) --runs-dir $(RUNS) --workers $(WORKERS)
	$(PYTHON) -m regbench report $(GRID) --runs-dir $(RUNS)

report: ## rewrite results/$(GRID)/ from the run directories
	$(PYTHON) -m regbench report $(GRID) --runs-dir $(RUNS)

status: ## count done / pending / failed runs of $(GRID)
	$(PYTHON) -m regbench status $(GRID) --runs-dir $(RUNS)

perf: ## every variant's speed against nn.LSTM, and the harness against a plain loop (results/perf/)
	$(PYTHON) -m regbench.perf
	$(PYTHON) -m regbench.perf.end_to_end $(if $(DATA),--sizes quick$(,)tcn$(,)sst2 --data-dir $(DATA))

golden: ## re-record the golden numbers (tests/golden.json) after an intended change
	$(PYTHON) -m regbench.checks.golden --record $(if $(DATA),--data-dir $(DATA))

nightly: ## rerun one ladder rung from scratch and check it (not in CI; about 10 min)
	$(PYTHON) -m regbench.checks.nightly

clean-runs: ## delete the run directories under $(RUNS) (finished runs too)
	rm -rf $(RUNS)
