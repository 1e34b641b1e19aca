# Two commands (README, Quickstart):
#   make report   set up .venv if needed, then run the main job (the report on defaults)
#   make check    set up .venv if needed, then lint, build the docs strictly and run the
#                 whole test suite
#   make docs     set up .venv (with the docs extra) if needed, then build the site into
#                 docs/_build/html (git-ignored), nitpicky, warnings as errors
# Only Python 3.11+ is needed; everything else is installed into local virtual envs.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
SITE   := docs/_build/html

.PHONY: report check lint test test-py312 docs parity-env notebooks clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ntkspec needs Python 3.11+"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[docs]'
	@touch $(DOCS_STAMP)

report: $(STAMP)
	$(VENV)/bin/ntkspec report

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: $(DOCS_STAMP)
	$(PY) -m pytest

# The site, from scratch (-E: every page re-read, so no warning hides in a cached page),
# nitpicky (-n: every cross-reference must resolve), warnings as errors (-W).
docs: $(DOCS_STAMP)
	$(PY) -m sphinx -b html -W -n -E -q docs $(SITE)
	@echo "docs: $(SITE)/index.html"

# The suite's site test reuses the site that `docs` has just built.
check: lint docs
	NTKSPEC_DOCS_HTML=$(CURDIR)/$(SITE) $(PY) -m pytest
	@$(MAKE) --no-print-directory test-py312

# A quick pass on the newest Python (3.12+) and the newest JAX the registry serves for it,
# when such an interpreter is on this machine (pyenv included); skipped with a message
# otherwise.
test-py312:
	@bash tests/newest_python.sh

# Re-execute the walkthrough notebooks at full size in a Jupyter kernel and save the
# .ipynb files with their outputs (the .py files are the sources; see execute.py).
notebooks: $(STAMP)
	$(PY) analysis/notebooks/execute.py

# The neural-tangents 0.6.5 reference environment (also built on first use by the tests).
parity-env:
	$(PY) tests/parity/nt_env.py --build

clean:
	rm -rf $(VENV) .venv-nt .venv-py3* .pytest_cache .ruff_cache docs/_build docs/api/generated
