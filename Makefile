# CDCML research kit. `make` (or `make help`) lists the targets.
#
# Every real target is a file a step writes last (an executed notebook, a run's metrics.json,
# REPORT.md), with the parameter files, notebooks and library sources it depends on as
# prerequisites: a second `make reproduce` does nothing, and a failed step never looks finished.

SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.SUFFIXES:

CONFIG ?= default
MODEL  ?= cdcml
SEED   ?= 0
NPROC  ?= 2
JOBS   ?= 2
PYTHON ?= python3

VENV   := .venv
PY     := $(VENV)/bin/python
ENV_OK := $(VENV)/.installed

REPORTS := $(if $(filter default,$(CONFIG)),reports,reports/$(CONFIG))
DATA    := data/$(CONFIG)
RUNS    := runs/$(CONFIG)
NBOUT   := $(REPORTS)/notebooks
PARAMS  := params/$(CONFIG).yaml
NBRUN   := $(PY) -m cdcml_lib.workflow.nbrun

# Library sources each step depends on, by layer (docs/ARCHITECTURE.md, "Layers"): a whole layer's
# folder, so a new module can never be left out; a change re-runs only the steps that use it.
METHOD_SRC   := $(wildcard cdcml_lib/*.py)
WORKFLOW_SRC := $(wildcard cdcml_lib/workflow/*.py)
DATA_SRC  := cdcml_lib/__init__.py cdcml_lib/audio.py cdcml_lib/matching.py $(WORKFLOW_SRC) $(wildcard cdcml_lib/data/*.py)
TRAIN_SRC := $(DATA_SRC) $(METHOD_SRC) $(wildcard cdcml_lib/runs/*.py)
TABLE_SRC := $(wildcard cdcml_lib/results/*.py) cdcml_lib/resources/paper_results.csv
EMB_SRC   := $(wildcard cdcml_lib/explore/*.py)
# A run is named <variant>-s<seed>.
run_seed    = $(lastword $(subst -s, ,$(1)))
run_variant = $(patsubst %-s$(call run_seed,$(1)),%,$(1))

.PHONY: help env reproduce test lab data train train-ddp tables embeddings report clean clean-all bench

help: ## List the targets
	@echo "CDCML research kit (CONFIG=$(CONFIG): params/$(CONFIG).yaml)"
	@echo
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: CONFIG=default|smoke|paper|imemnet  MODEL=<params/variants/*>  SEED=0  JOBS=2  NPROC=2"

# --- environment ---------------------------------------------------------------------------
env: $(ENV_OK) ## Create .venv, install the kit with its test extras, register the 'cdcml' kernel

$(ENV_OK): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name cdcml --display-name "Python (cdcml)" >/dev/null
	@touch $@

# --- the study -----------------------------------------------------------------------------
# The runs the tables need come from params/$(CONFIG).yaml (study: seeds, comparison, ablation).
STUDY_MK := .make/study-$(CONFIG).mk
ifeq (,$(filter help env clean clean-all,$(MAKECMDGOALS))$(if $(MAKECMDGOALS),,x))
-include $(STUDY_MK)
endif

# Each step depends on its own section of the config through a stamp, .make/<config>-<section>.json,
# rewritten (with this fragment) only when that section's content changes.
STAMP := .make/$(CONFIG)
$(STUDY_MK): $(PARAMS) cdcml_lib/workflow/params.py | $(ENV_OK)
	@mkdir -p $(@D)
	@$(PY) -m cdcml_lib.workflow.params stamp $(CONFIG) .make
	@runs="$$($(PY) -m cdcml_lib.workflow.params study-runs $(CONFIG))" || exit 1; \
	{ echo "RUN_NAMES := $$runs"; \
	  for r in $$runs; do echo "$(RUNS)/$$r/metrics.json: params/variants/$${r%-s*}.yaml"; done; } > $@.tmp && mv $@.tmp $@

RUN_METRICS := $(foreach r,$(RUN_NAMES),$(RUNS)/$(r)/metrics.json)
DATASET_NB  := $(NBOUT)/01_dataset.ipynb

data: $(DATASET_NB) ## Build data/<CONFIG>/ (items, pairs, features) with notebooks/01_dataset

$(STAMP)-%.json: | $(ENV_OK)
	@$(PY) -m cdcml_lib.workflow.params stamp $(CONFIG) .make

$(DATASET_NB): $(STAMP)-dataset.json notebooks/01_dataset.ipynb $(DATA_SRC) | $(ENV_OK)
	$(NBRUN) notebooks/01_dataset.ipynb --config $(CONFIG) --out $@

# One training run per (variant, seed). A finished run whose inputs changed is moved aside to
# $(RUNS)/.superseded/ (runs are never overwritten); an unfinished one resumes. The dataset notebook
# is order-only: it runs first, but re-running it for its figures alone retrains nothing.
$(RUNS)/%/metrics.json: $(STAMP)-dataset.json $(STAMP)-train.json $(TRAIN_SRC) | $(DATASET_NB) $(ENV_OK)
	@if [ -f $@ ]; then mkdir -p $(RUNS)/.superseded && mv $(@D) $(RUNS)/.superseded/$*-$$(date +%Y%m%d-%H%M%S) \
	  && echo "moved the earlier $* run to $(RUNS)/.superseded/"; fi
	OMP_NUM_THREADS=$(if $(filter 1,$(JOBS)),2,1) $(PY) -m cdcml_lib.runs.train --config $(CONFIG) \
	  --variant $(call run_variant,$*) --seed $(call run_seed,$*)

train: | $(ENV_OK) ## Train MODEL (seed SEED) on CONFIG through notebooks/02_train
	$(NBRUN) notebooks/02_train.ipynb --config $(CONFIG) --variant $(MODEL) --seed $(SEED)

train-ddp: | $(ENV_OK) ## Train MODEL on NPROC processes with torchrun (DDP; gloo on CPU, nccl on GPUs)
	$(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) -m cdcml_lib.runs.train \
	  --config $(CONFIG) --variant $(MODEL) --seed $(SEED) $(if $(RUN_DIR),--run-dir $(RUN_DIR))

TRAIN_NB := $(NBOUT)/02_train-cdcml-s0.ipynb
$(TRAIN_NB): notebooks/02_train.ipynb $(RUNS)/cdcml-s0/metrics.json | $(ENV_OK)
	$(NBRUN) notebooks/02_train.ipynb --config $(CONFIG) --variant cdcml --seed 0 --out $@

TABLES_NB := $(NBOUT)/03_tables.ipynb
tables: $(TABLES_NB) ## Tables 3 and 4, the claims checklist and their plots

$(TABLES_NB): notebooks/03_tables.ipynb $(TABLE_SRC) $(STAMP)-study.json $(RUN_METRICS) | $(ENV_OK)
	$(NBRUN) notebooks/03_tables.ipynb --config $(CONFIG) --out $@

EMB_NB := $(NBOUT)/04_embeddings.ipynb
embeddings: $(EMB_NB) ## UMAP of the shared space, the matching gallery and the interactive map

$(EMB_NB): notebooks/04_embeddings.ipynb $(EMB_SRC) $(STAMP)-embeddings.json $(RUNS)/cdcml-s0/metrics.json $(RUNS)/sim-s0/metrics.json | $(ENV_OK)
	$(NBRUN) notebooks/04_embeddings.ipynb --config $(CONFIG) --out $@

REPORT := $(REPORTS)/REPORT.md
report: $(REPORT) ## Write REPORT.md (reports/, or reports/<CONFIG>/) from the finished steps

$(REPORT): $(TRAIN_NB) $(TABLES_NB) $(EMB_NB) $(TABLE_SRC) | $(ENV_OK)
	$(PY) -m cdcml_lib.results.report --config $(CONFIG) $(if $(filter default,$(CONFIG)),--readme)

# One study per CONFIG at a time: a second `make reproduce` (a test, another shell) waits for the first.
reproduce: | $(ENV_OK) ## Run the whole study on CONFIG: dataset, every run, tables, embeddings, report
	@mkdir -p .make; start=$$(date +%s); \
	flock .make/reproduce-$(CONFIG).lock $(MAKE) --no-print-directory -j$(JOBS) $(REPORT) CONFIG=$(CONFIG) && \
	echo "reproduce ($(CONFIG)) done in $$(( $$(date +%s) - start )) s: see $(REPORT)"

# --- tests, tools, cleaning ----------------------------------------------------------------
test: | $(ENV_OK) ## Run the unit tests, the notebooks under nbval and the smoke study
	$(PY) -m pytest tests notebooks --nbval-lax -p no:cacheprovider $(PYTEST_ARGS)

bench: | $(ENV_OK) ## Print the speed figures (features, loader, training)
	$(PY) benchmarks/features.py
	$(PY) benchmarks/loader.py --config $(CONFIG)
	$(PY) benchmarks/train.py --config $(CONFIG)

lab: | $(ENV_OK) ## Open JupyterLab on notebooks/
	$(VENV)/bin/jupyter lab notebooks/

# >>> gpu-check (issue 15) >>>
.PHONY: gpu-check
gpu-check: | $(ENV_OK) ## Prepared GPU check (<= 8 min on one GPU; CPU: skips the CUDA parts) -> reports/gpu/
	PY=$(PY) benchmarks/gpu_check.sh $(GPU_CHECK_ARGS)
# <<< gpu-check <<<

clean: ## Remove CONFIG's generated data, runs and (non-default) reports
	rm -rf $(DATA) $(RUNS) $(STUDY_MK) $(STAMP)-*.json $(if $(filter default,$(CONFIG)),reports/notebooks reports/timings,$(REPORTS))

clean-all: ## Remove every generated folder and the environment
	rm -rf data runs .make $(VENV) reports/notebooks reports/timings reports/smoke reports/paper reports/imemnet
