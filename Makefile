# Two commands do everything on a fresh machine:  `make run`  and  `make test`.
SHELL := /bin/bash
VENV ?= $(HOME)/.cache/scfactor/venv
BIN := $(VENV)/bin
CORES ?= 2
# pip's retries per index request (its default is 5, with back-off): an index that cannot be reached at all, such as
# PyTorch's CPU index on a machine that reaches only PyPI, otherwise costs several seconds per package
PIP_RETRIES ?= 1
# the interpreter the environment is built from: Python 3.11 with its venv module (pyproject: >=3.11,<3.12)
PYTHON ?= python3
# the environment is (re)built when the pins or the checkout location change
ENV_HASH := $(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-12)-$(shell echo $(CURDIR) | sha256sum | cut -c1-8)
STAMP := $(VENV)/.scfactor-env-$(ENV_HASH)
export PATH := $(BIN):$(PATH)
export PYTHONUNBUFFERED := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: env run paper test lint report dag docs clean

env: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@echo "== setting up $(VENV)"
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "error: $(PYTHON) is not Python 3.11 (install python3.11 and python3.11-venv, then make PYTHON=python3.11)" >&2; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo "error: $(PYTHON) lacks the venv module (apt-get install python3.11-venv)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --retries $(PIP_RETRIES) --upgrade pip==24.3.1 setuptools==80.9.0 wheel==0.45.1
	$(BIN)/python -m pip install --quiet --retries $(PIP_RETRIES) -r requirements.lock
	$(BIN)/python -m pip install --quiet --retries $(PIP_RETRIES) --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.scfactor-env-*
	touch $@

## the default analysis on bundled data (config/config.yaml)
run: env
	snakemake --profile profiles/local --cores $(CORES) --configfile config/config.yaml

## the paper configuration (config/paper.yaml, hours on 2 cores), then its run time and headline numbers
paper: env
	set -o pipefail; snakemake --profile profiles/local --cores $(CORES) --configfile config/config.yaml config/paper.yaml \
		--keep-going 2>&1 | tee paper.run.log
	python benchmarks/run_times.py --log paper.run.log --label "config/paper.yaml, --cores $(CORES)" \
		--output benchmarks/results/run_paper.md
	python benchmarks/headlines.py --results results --label "paper config (make paper)" \
		--output benchmarks/results/headlines_paper.md

## the test suite (unit, workflow, real-SLURM cluster tests) in three pytest processes at once
## (tests/run_parallel.py: the SLURM tests mostly wait on the scheduler); plain `pytest` runs it in one
test: env
	$(BIN)/python tests/run_parallel.py

lint: env
	snakemake --lint --configfile config/config.yaml

report: env
	snakemake --profile profiles/local --configfile config/config.yaml --report report.zip

docs: env
	python workflow/scripts/config_docs.py --output config/README.md

clean:
	rm -rf results logs .snakemake report.zip paper.run.log
