# Two commands do everything on a fresh machine:
#   make test   install into .venv and run the test suite
#   make book   install, run the whole study on the default (synthetic, cpu profile), build HTML
# (make evidence: the same with five seeds of every ablation's two key rows, about 50 minutes)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU build of torch by default; on a GPU box set TORCH_SPEC (see README).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install test book evidence lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>/dev/null || true
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[book,dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check gaitlib tests bench
	$(PY) -m pytest -q

book: $(STAMP)
	$(VENV)/bin/gaitlib reproduce

# The book with five seeds of each ablation's reference row and full model (about 50 minutes on
# 2 cores): the ablation pages add seed SDs and verdicts on the papers' claimed deltas.
evidence: $(STAMP)
	$(VENV)/bin/gaitlib reproduce --extra-seeds 1,2,3,4

lint: $(STAMP)
	$(PY) -m ruff check gaitlib tests bench

bench: $(STAMP)
	$(PY) bench/loader.py
	$(PY) bench/evaluation.py

clean:
	rm -rf book/_build .pytest_cache
