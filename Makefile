# CDCML research kit. `make` (or `make help`) lists the targets.
#
# Every real target is a file a step writes last (an executed notebook, a run's metrics.json,
# REPORT.md), with the parameter files, notebooks and library sources it depends on as
# prerequisites (through stamps that change with their content, not their time: "Content stamps"
# below): a second `make reproduce` does nothing, and a failed step never looks finished.

SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDEXPANSION:

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
# The configs whose reports are committed (the README shows both): make clean keeps their tables and
# verdicts (make reproduce writes them again) and removes only the executed notebooks and timings.
COMMITTED_REPORTS := default decisive
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
TRAIN_SRC := $(sort $(DATA_SRC) $(METHOD_SRC) $(wildcard cdcml_lib/runs/*.py))
TABLE_SRC := $(wildcard cdcml_lib/results/*.py) cdcml_lib/resources/paper_results.csv
EMB_SRC   := $(wildcard cdcml_lib/explore/*.py)
# Content stamps: the steps depend on .make/content/<file>.sha256, which changes only when the
# content of <file> does (cdcml_lib/workflow/content.py: a notebook's cells, a YAML file's values,
# a source's bytes), not on the time of <file>: touching a file, switching branches and back or
# reverting an edit re-runs nothing. .make/content.mk, included below, brings the stamps of the
# files newer than itself up to date before any step is judged (also under make -n and make -q);
# a file put back with an older time (cp -p, tar) is not looked at again, as before the stamps.
CONTENT_DIR := .make/content
content      = $(patsubst %,$(CONTENT_DIR)/%.sha256,$(1))
CONTENT_SRC := $(sort $(TRAIN_SRC) $(TABLE_SRC) $(EMB_SRC) $(wildcard notebooks/0*.ipynb) $(wildcard params/variants/*.yaml))
CONTENT_MK  := .make/content.mk
# A run is named <variant>-s<seed> (cdcml_lib.workflow.paths.run_name; variant_runs below spells it for Make).

.PHONY: help env lock reference acp reproduce test lab data train train-ddp tables embeddings report readme clean clean-all bench

help: ## List the targets
	@echo "CDCML research kit (CONFIG=$(CONFIG): params/$(CONFIG).yaml)"
	@echo
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-12s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: CONFIG=default|smoke|paper|imemnet  MODEL=<params/variants/*>  SEEDS=\"0 1 2\" (default: the study's)  JOBS=2  NPROC=2  SEED=0 (train-ddp)  LAUNCH=<prefix>"

# --- environment ---------------------------------------------------------------------------
# requirements-lock.txt pins every package (dependencies of dependencies too) for Linux x86-64 and
# CPython 3.11, so two machines run the same code. torch is locked at the newest release that
# installs everywhere these machines run (some cap pip at torch 2.14.1). Elsewhere make env says
# so and installs from the ranges of pyproject.toml; the report records the versions that ran.
LOCK       := requirements-lock.txt
LOCK_TORCH := torch==2.14.1 torchvision==0.29.1
LOCK_PLATFORM_OK = $(PY) -c "import platform, sys; sys.exit(not (sys.platform == 'linux' and platform.machine() == 'x86_64' and sys.version_info[:2] == (3, 11)))"

env: $(ENV_OK) ## Create .venv from requirements-lock.txt (else the ranges), register the 'cdcml' kernel

$(ENV_OK): pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if $(LOCK_PLATFORM_OK) && $(PY) -m pip install --quiet -r $(LOCK); then \
	  echo "installed the locked versions ($(LOCK))"; \
	else \
	  echo "warning: this platform cannot take $(LOCK) (Linux x86-64, CPython 3.11): installing from the"; \
	  echo "warning: version ranges of pyproject.toml instead; numbers may differ from the committed reference"; \
	  $(PY) -m pip install --quiet -e '.[dev]' || exit 1; \
	fi
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name cdcml --display-name "Python (cdcml)" >/dev/null
	@touch $@

lock: ## Regenerate requirements-lock.txt in a fresh virtual environment (needs the package registry)
	@rm -rf .make/lock-venv && $(PYTHON) -m venv .make/lock-venv
	.make/lock-venv/bin/python -m pip install --quiet --upgrade pip
	.make/lock-venv/bin/python -m pip install --quiet '.[dev]' $(LOCK_TORCH)
	@{ echo "# Exact versions of every package the kit installs (make env), for Linux x86-64, CPython 3.11."; \
	   echo "# Written by 'make lock' on $$(date -u +%Y-%m-%d); edit pyproject.toml's ranges, then run it again."; \
	   .make/lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^cdcml-kit'; } > $(LOCK).tmp && mv $(LOCK).tmp $(LOCK)
	@rm -rf .make/lock-venv
	@echo "wrote $(LOCK): $$(grep -vc '^#' $(LOCK)) packages"

# --- the study -----------------------------------------------------------------------------
# The variants and seeds the tables need come from params/$(CONFIG).yaml (study section).
STUDY_MK := .make/study-$(CONFIG).mk
ifeq (,$(filter help env clean clean-all,$(MAKECMDGOALS))$(if $(MAKECMDGOALS),,x))
-include $(STUDY_MK) $(CONTENT_MK)
endif

# $? : only the files newer than the last update need digesting again.
$(CONTENT_MK): $(CONTENT_SRC) | $(ENV_OK)
	@mkdir -p $(@D)
	@$(PY) -m cdcml_lib.workflow.content update $(CONTENT_DIR) $?
	@echo "# written by make: the content stamps in $(CONTENT_DIR)/ are current" > $@
# A stamp deleted by hand is made again (its file's time: judged as the file itself would be).
$(CONTENT_DIR)/%.sha256: | $(ENV_OK)
	@$(PY) -m cdcml_lib.workflow.content update $(CONTENT_DIR) $*

# Every parameter of the config and its variant files is checked first (reproduce, and nbrun for
# each notebook: all problems in one message). Each notebook depends on the stamp of the values it
# reads, .make/<config>-<notebook>.json (which ones: cdcml_lib/workflow/schema.py, STEPS, the one
# place that says it), and a run on the sections it is computed from, .make/<config>-<section>.json;
# a stamp is rewritten (with this fragment) only when its content changes. A config lists only what
# it changes from its base (base: default) and the schema's defaults: all of them are prerequisites.
STAMP := .make/$(CONFIG)
PARAMS_SRC := $(wildcard params/*.yaml params/variants/*.yaml) cdcml_lib/workflow/params.py cdcml_lib/workflow/schema.py
$(STUDY_MK): $(PARAMS_SRC) Makefile | $(ENV_OK)
	@mkdir -p $(@D)
	@$(PY) -m cdcml_lib.workflow.params stamp $(CONFIG) .make
	@variants="$$($(PY) -m cdcml_lib.workflow.params study-variants $(CONFIG))" || exit 1; \
	seeds="$$($(PY) -m cdcml_lib.workflow.params study-seeds $(CONFIG))" || exit 1; \
	{ echo "VARIANTS := $$variants"; echo "SEEDS := $$seeds"; \
	  for v in $$variants; do echo "$(NBOUT)/02_train-$$v.ipynb: $(call content,params/variants/$$v.yaml)"; done; } > $@.tmp && mv $@.tmp $@

# A target whose files were deleted by hand (data/, a run folder) is made again: FORCE when missing.
FORCE:
.PHONY: FORCE
missing = $(filter-out $(wildcard $(1)),$(1))

DATASET_NB  := $(NBOUT)/01_dataset.ipynb
data: $(DATASET_NB) ## Build data/<CONFIG>/ (items, pairs, features) with notebooks/01_dataset

$(STAMP)-%.json: | $(ENV_OK)
	@$(PY) -m cdcml_lib.workflow.params stamp $(CONFIG) .make

$(DATASET_NB): $(STAMP)-01_dataset.json $(call content,notebooks/01_dataset.ipynb $(DATA_SRC)) $(if $(call missing,$(DATA)/stats.json),FORCE) | $(ENV_OK)
	$(NBRUN) notebooks/01_dataset.ipynb --config $(CONFIG) --out $@

# Training: one execution of notebooks/02_train per variant trains all its seeds in one kernel
# (one run folder per seed); the executed copy is the variant's record. A finished run older than
# the last change of any of its inputs (the dataset and train parameters, the library, the variant
# file: their stamps) is moved aside to $(RUNS)/.superseded/ (runs are never overwritten); an
# unfinished one resumes. The dataset notebook is order-only: re-running it for its figures alone
# retrains nothing.
# LAUNCH prefixes each training step, e.g. LAUNCH="srun --gres=gpu:1 --ntasks=1" with JOBS=9
# (reproduce runs make -j$(REPRODUCE_JOBS): an outer make -j N counts as JOBS=N).
LAUNCH ?=
# Each run sets its own threads (num_threads of the train section: the determinism policy); the
# environment only keeps the libraries that run does not set from starting a pool per core.
TRAIN_ENV := OMP_NUM_THREADS=1
TRAIN_INPUTS := $(STAMP)-dataset.json $(STAMP)-train.json $(call content,$(TRAIN_SRC))
variant_runs = $(foreach s,$(SEEDS),$(RUNS)/$(1)-s$(s)/metrics.json)
TRAIN_NBS   := $(foreach v,$(VARIANTS),$(NBOUT)/02_train-$(v).ipynb)
RUN_METRICS := $(foreach v,$(VARIANTS),$(call variant_runs,$(v)))

$(NBOUT)/02_train-%.ipynb: $(call content,notebooks/02_train.ipynb) $(TRAIN_INPUTS) $(STAMP)-02_train.json \
    $$(if $$(call missing,$$(call variant_runs,$$*)),FORCE) | $(DATASET_NB) $(ENV_OK)
	@for s in $(SEEDS); do d=$(RUNS)/$*-s$$s; \
	  if [ -f $$d/metrics.json ] && [ -n "$$(find $(TRAIN_INPUTS) $(call content,params/variants/$*.yaml) -newer $$d/metrics.json | head -n1)" ]; then \
	    mkdir -p $(RUNS)/.superseded && mv $$d $(RUNS)/.superseded/$*-s$$s-$$(date +%Y%m%d-%H%M%S) \
	    && echo "moved the earlier $*-s$$s run to $(RUNS)/.superseded/ (its inputs changed)"; fi; done
	$(TRAIN_ENV) $(LAUNCH) $(NBRUN) notebooks/02_train.ipynb --config $(CONFIG) --variant $* --seeds $(SEEDS) --out $@

train: | $(ENV_OK) ## Train MODEL on CONFIG for SEEDS (default: the study's) through notebooks/02_train
	$(TRAIN_ENV) $(LAUNCH) $(NBRUN) notebooks/02_train.ipynb --config $(CONFIG) --variant $(MODEL) \
	  --seeds $(SEEDS) --out $(NBOUT)/02_train-$(MODEL).ipynb

train-ddp: | $(ENV_OK) ## Train MODEL (seed SEED) on NPROC processes with torchrun (DDP; gloo on CPU, nccl on GPUs)
	$(LAUNCH) $(VENV)/bin/torchrun --standalone --nproc_per_node=$(NPROC) -m cdcml_lib.runs.train \
	  --config $(CONFIG) --variant $(MODEL) --seed $(SEED) $(if $(RUN_DIR),--run-dir $(RUN_DIR))

TABLES_NB := $(NBOUT)/03_tables.ipynb
tables: $(TABLES_NB) ## Tables 3 and 4, the claims checklist and their plots

$(TABLES_NB): $(call content,notebooks/03_tables.ipynb $(TABLE_SRC)) $(STAMP)-03_tables.json $(TRAIN_NBS) | $(ENV_OK)
	$(NBRUN) notebooks/03_tables.ipynb --config $(CONFIG) --out $@

EMB_NB := $(NBOUT)/04_embeddings.ipynb
embeddings: $(EMB_NB) ## UMAP of the shared space, the matching gallery and the interactive map

$(EMB_NB): $(call content,notebooks/04_embeddings.ipynb $(EMB_SRC)) $(STAMP)-04_embeddings.json $(NBOUT)/02_train-cdcml.ipynb $(NBOUT)/02_train-sim.ipynb | $(ENV_OK)
	$(NBRUN) notebooks/04_embeddings.ipynb --config $(CONFIG) --out $@

ACP_NB := $(NBOUT)/05_acp_net.ipynb
acp: $(ACP_NB) ## ACP-Net's own study: three-class correspondence, its baselines, the emotion probe

# It reads the dataset folder and the CDCML and contrastive runs (compared on ACP-Net's task).
$(ACP_NB): $(call content,notebooks/05_acp_net.ipynb $(TRAIN_SRC) $(TABLE_SRC)) $(STAMP)-05_acp_net.json $(STAMP)-dataset.json \
    $(NBOUT)/02_train-cdcml.ipynb $(NBOUT)/02_train-contrastive.ipynb | $(DATASET_NB) $(ENV_OK)
	$(TRAIN_ENV) $(NBRUN) notebooks/05_acp_net.ipynb --config $(CONFIG) --out $@

# The last word: the fresh tables and verdicts against the committed reference (reports/reference.json).
REF_CMP := $(REPORTS)/reference_comparison.md
$(REF_CMP): $(TABLES_NB) $(call content,cdcml_lib/results/reference.py) $(wildcard $(REPORTS)/reference.json) | $(ENV_OK)
	$(PY) -m cdcml_lib.results.reference compare --config $(CONFIG)

reference: | $(ENV_OK) ## Make CONFIG's current results the reference later reproductions are compared with
	$(PY) -m cdcml_lib.results.reference write --config $(CONFIG)

REPORT := $(REPORTS)/REPORT.md
report: $(REPORT) ## Write REPORT.md (reports/, or reports/<CONFIG>/) from the finished steps

$(REPORT): $(TRAIN_NBS) $(TABLES_NB) $(EMB_NB) $(ACP_NB) $(REF_CMP) $(call content,$(TABLE_SRC)) | $(ENV_OK)
	$(PY) -m cdcml_lib.results.report --config $(CONFIG)

# The README's generated results block, from the committed reports of both studies. For
# maintainers after a reproduction they mean to commit: `make reproduce` writes nothing outside reports/.
readme: | $(ENV_OK) ## Rewrite README.md's results block from reports/ and reports/decisive/
	$(PY) -m cdcml_lib.results.report --readme

# `make -j N reproduce` runs N steps at a time, as `make reproduce JOBS=N` does (JOBS wins when both
# are given; a bare -j keeps JOBS). Recursive: MAKEFLAGS holds -jN only while recipes run.
REPRODUCE_JOBS = $(if $(filter file,$(origin JOBS)),$(or $(patsubst -j%,%,$(filter -j%,$(filter-out -j,$(MAKEFLAGS)))),$(JOBS)),$(JOBS))

# One study per CONFIG at a time: a second `make reproduce` (a test, another shell) waits for the first.
reproduce: | $(ENV_OK) ## Run the whole study on CONFIG: dataset, every run, tables, embeddings, report
	@$(PY) -m cdcml_lib.workflow.params check $(CONFIG)
	@mkdir -p .make; start=$$(date +%s); \
	flock .make/reproduce-$(CONFIG).lock $(MAKE) --no-print-directory -j$(REPRODUCE_JOBS) $(REPORT) CONFIG=$(CONFIG) && \
	echo "reproduce ($(CONFIG)) done in $$(( $$(date +%s) - start )) s: see $(REPORT)" && \
	$(PY) -m cdcml_lib.results.reference headline --config $(CONFIG)

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

clean: ## Remove CONFIG's generated data, runs and (uncommitted) reports
	rm -rf $(DATA) $(RUNS) $(STUDY_MK) $(STAMP)-*.json $(if $(filter $(COMMITTED_REPORTS),$(CONFIG)),$(REPORTS)/notebooks $(REPORTS)/timings,$(REPORTS))

clean-all: ## Remove every generated folder and the environment
	rm -rf data runs .make $(VENV) reports/notebooks reports/timings reports/decisive/notebooks reports/decisive/timings reports/smoke reports/paper reports/imemnet reports/standin
