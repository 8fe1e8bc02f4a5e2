# Two commands on a fresh machine with Python 3.11 and pip:
#   make reproduce   -- run every experiment (quick configs) and write the HTML report
#   make test        -- run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0

.PHONY: install bench-install bench bench-scale reproduce reproduce-full test lint format clean \
	docs-install gallery docs docs-serve report-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

install: $(STAMP)

bench-install: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/pip install --quiet --no-deps curvlinops-for-pytorch

bench: bench-install
	$(BIN)/python benchmarks/curvature.py
	$(BIN)/python benchmarks/optimizers.py
	$(BIN)/python benchmarks/runner.py

# issue 12: 300k/1M-parameter CNN and a transformer vs PyHessian, curvlinops, eigenthings
# (about an hour on 2 cores); benchmarks/gpu.sh runs it on a CUDA device
bench-scale: bench-install
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/scale.py --ranks 2 --models cnn
	$(BIN)/python benchmarks/floors.py

# The documentation site (mkdocs.yml; docs/README.md). The gallery comes from a real
# `reproduce --quick` run into $(GALLERY_RUN) (resumable: a second `make docs` only
# re-analyzes; GALLERY_ONLY=a,b limits it to some experiments, the others then show as
# not run); `make docs` builds with --strict, so any warning, broken link or missing API
# entry fails it.
DOCS_STAMP   := $(VENV)/.docs-installed
GALLERY_RUN  ?= build/docs-run
GALLERY_ONLY ?=
export NO_MKDOCS_2_WARNING := 1

$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

docs-install: $(DOCS_STAMP)

gallery: $(DOCS_STAMP)
	$(BIN)/saddlescape reproduce --quick --no-progress --out $(GALLERY_RUN) \
		$(if $(GALLERY_ONLY),--only $(GALLERY_ONLY))
	$(BIN)/python docs/gen_gallery.py $(GALLERY_RUN) docs/gallery

docs: gallery
	$(BIN)/mkdocs build --strict

docs-serve: gallery
	$(BIN)/mkdocs serve

# A real-browser check of the report (issue 14): a small report from two quick experiments,
# rendered in Debian's headless chromium at 1280 px (scripts/report_check.py); fails if an
# element overflows sideways or an image does not load; screenshots in
# $(REPORT_CHECK_RUN)/screenshots. REPORT_CHECK_ONLY=a,b picks the experiments.
REPORT_CHECK_RUN  ?= build/report-check-run
REPORT_CHECK_ONLY ?= stable-manifold,step-size

report-check: $(STAMP)
	$(BIN)/saddlescape reproduce --quick --no-progress --out $(REPORT_CHECK_RUN) \
		--only $(REPORT_CHECK_ONLY)
	$(BIN)/python scripts/report_check.py $(REPORT_CHECK_RUN)/index.html \
		--shots $(REPORT_CHECK_RUN)/screenshots

reproduce: $(STAMP)
	$(BIN)/saddlescape reproduce --quick --out results

reproduce-full: $(STAMP)
	$(BIN)/saddlescape reproduce --out results-full

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples scripts $(wildcard docs/*.py)
	$(BIN)/ruff format --check src tests benchmarks examples scripts $(wildcard docs/*.py)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --timeout=900

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples scripts $(wildcard docs/*.py)
	$(BIN)/ruff format --check src tests benchmarks examples scripts $(wildcard docs/*.py)

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks examples scripts $(wildcard docs/*.py)
	$(BIN)/ruff check --fix src tests benchmarks examples scripts $(wildcard docs/*.py)

clean:
	rm -rf $(VENV) results results-full .pytest_cache site docs/gallery build/docs-run \
		$(REPORT_CHECK_RUN)
