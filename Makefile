# Two commands do all the set-up on a fresh machine:
#   make demo   -- creates .venv, installs, runs the demo on embedded defaults
#   make test   -- creates .venv, installs, runs the test suite
# (.venv gets the dev and speech extras; `pip install ad-assets` alone stays lean)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test dev bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev,speech]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ad-assets demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

dev: $(STAMP)
	$(BIN)/ad-assets dev

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .ad_assets
