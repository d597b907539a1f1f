# The README's two commands are `make demo` and `make test`. Both create the project's
# virtual environment on first use (Python 3.11) and reuse it afterwards; it is rebuilt
# only when pyproject.toml changes.

PYTHON ?= python3.11
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.bioml-installed

.PHONY: env demo test test-all lint dryrun report bladder clean docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: on a CPU machine pip takes the local CPU build, elsewhere
	# the registry's build of the same version (CUDA on Linux).
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,slurm,docs]'
	touch $(STAMP)

env: $(STAMP)                 ## create / update the environment only

demo: $(STAMP)                ## run the whole pipeline on the default (simulated) data
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/$$($(BIN)/python -c "import yaml;print(yaml.safe_load(open('config/config.yaml'))['run'])")/report.html

test: $(STAMP)                ## run the test suite (slow and GPU tests skipped)
	$(BIN)/python -m pytest

test-all: $(STAMP)            ## the test suite including slow tests
	$(BIN)/python -m pytest -m "not gpu"

lint: $(STAMP)
	$(BIN)/snakemake --lint

dryrun: $(STAMP)
	$(BIN)/snakemake -n

bladder: $(STAMP)             ## the bladderbatch microarrays (needs data/bladderbatch, see README)
	$(BIN)/snakemake --cores $(CORES) --configfile config/bladderbatch.yaml
	$(BIN)/snakemake --configfile config/bladderbatch.yaml --report results/bladderbatch/report.html

docs: $(STAMP)                ## execute the tutorials (if changed) and build the site into docs/_build/html
	$(BIN)/python docs/execute_tutorials.py
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

clean:                        ## remove results and logs (not the environment)
	rm -rf results logs .snakemake report.html
