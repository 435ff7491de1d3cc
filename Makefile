# Two commands do all the set-up on a fresh machine:
#   make demo   -- creates .venv, installs, runs the demo on embedded defaults
#   make test   -- creates .venv, installs, runs the test suite
# (.venv gets the dev and speech extras; `pip install ad-assets` alone stays lean)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test dev bench clean browser

# tests/plugin_example is a method package of its own, installed the way its users would install theirs:
# the plug-in tests prove its methods run in the pipeline (the suite pins AD_ASSETS_METHODS=builtin otherwise).
$(STAMP): pyproject.toml tests/plugin_example/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev,speech]' -e tests/plugin_example
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ad-assets demo

# The browser tests drive Debian's Chromium (never a downloaded one): installed here when missing and root.
browser:
	@test -x $(CHROMIUM) || command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Chromium for the browser tests (apt-get install chromium)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
	  else \
	    echo "Chromium is missing and cannot be installed here (not root, or no apt-get): the browser tests will be skipped; install the chromium package to run them"; \
	  fi; }

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

dev: $(STAMP)
	$(BIN)/ad-assets dev

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .ad_assets
