# The course's commands. A fresh machine needs only Python 3.11 and make:
#   make lab    open the course in JupyterLab (creates .venv on first use)
#   make test   run every test: library, grading, environment, and every notebook under nbval
# Everything else here is for authors and maintainers (`make help`).

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Same environment for the course, its tests and CI: CPU-only JAX, a persistent compile cache.
export JAX_PLATFORMS := cpu
export JAX_COMPILATION_CACHE_DIR := $(CURDIR)/.cache/jax
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS := 0
export PYTHONHASHSEED := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export TF_CPP_MIN_LOG_LEVEL := 3

NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: help venv lab test test-lib test-notebooks test-portable test-seeds test-browser notebooks exercises docs diagrams bench book grade lock clean

help:
	@echo "make lab             open the course in JupyterLab (NBGRADER=1: with nbgrader's extensions)"
	@echo "make test            run every test (what CI runs)"
	@echo "make test-lib        only the library/grading tests (fast)"
	@echo "make test-notebooks  only nbval over notebooks/"
	@echo "make test-portable   nbval over notebooks/ with XLA's YNNPACK fusions off (a stand-in for another CPU)"
	@echo "make test-seeds      re-execute every notebook and solution with SEED = 1, 2, 3 (claims must hold)"
	@echo "make test-browser    only the widgets in real JupyterLab + headless Chromium (two at a time)"
	@echo "make notebooks       re-execute notebooks in place (NB=notebooks/03_*.ipynb for one)"
	@echo "make exercises       regenerate exercises/ from solutions/"
	@echo "make docs            regenerate README's chapter map and docs/errata.md from the notebooks"
	@echo "make diagrams        redraw notebooks/figures/*.svg and put each diagram in its chapter"
	@echo "make bench           run the benchmarks and print their tables"
	@echo "make book            build the static HTML book in build/book (offline pages)"
	@echo "make grade A=<assignment> S=<submissions dir>  grade student submissions"

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || \
	  { echo "error: the course needs Python 3.11; $(PYTHON) is $$($(PYTHON) --version). Run: make PYTHON=/path/to/python3.11 ..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Students get a plain JupyterLab: jupyter-student/ switches off nbgrader's lab and server extensions
# and the news toast. An instructor who grades with nbgrader runs `make lab NBGRADER=1`.
LAB_CONFIG := $(if $(NBGRADER),,JUPYTER_CONFIG_PATH=$(CURDIR)/jupyter-student$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH),))
lab: $(STAMP)
	$(LAB_CONFIG) $(BIN)/jupyter lab --notebook-dir=$(CURDIR) $(ROOT_FLAG) --KernelManager.transport=ipc

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile tests notebooks $(NBVAL)
	$(MAKE) --no-print-directory test-portable

test-lib: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile tests

test-notebooks: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile notebooks $(NBVAL)

# Each xdist worker starts its own JupyterLab (module-scoped fixture), so --dist load runs two
# notebooks at a time: one executes while the other's controls are being moved.
test-browser: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist load tests/browser

# Another CPU rounds the last bits differently (XLA picks its YNNPACK kernels per processor). Turning
# the YNN fusions off is a stand-in for such a machine: the stored outputs must pass strict nbval
# with and without them. Own compile cache, so the two kinds of kernels never mix.
NO_YNN := XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= JAX_COMPILATION_CACHE_DIR=$(CURDIR)/.cache/jax-noynn
test-portable: $(STAMP)
	$(NO_YNN) $(BIN)/python -m pytest -n 2 --dist loadfile notebooks $(NBVAL) -p no:cacheprovider

# A claim that survives other seeds survives other CPUs: every notebook and solution notebook is
# re-executed with SEED = 1, 2, 3 (tools/check_seeds.py) and every assertion must still hold.
SEEDS ?= 1 2 3
test-seeds: $(STAMP)
	$(BIN)/python tools/check_seeds.py $(NB_SEEDS) --seeds $(SEEDS)

NB ?= notebooks/*.ipynb
notebooks: $(STAMP)
	$(BIN)/python tools/run_notebooks.py $(NB)

exercises: $(STAMP)
	$(BIN)/python tools/make_exercises.py

docs: $(STAMP)
	$(BIN)/python tools/update_readme.py
	$(BIN)/python tools/build_errata.py
	$(BIN)/python tools/build_glossary.py

# Diagrams are drawn by tools/diagrams/ (numbers from course_lib) into notebooks/figures/*.svg; each
# chapter gets a Markdown cell fig-<name> after the cell it follows (no other cell is touched).
diagrams: $(STAMP)
	$(BIN)/python tools/build_diagrams.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

book: $(STAMP)
	$(BIN)/python tools/build_book.py

grade: $(STAMP)
	$(BIN)/python -m grader $(A) $(S)

lock: $(STAMP)
	{ grep '^#' requirements.lock; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) .cache
