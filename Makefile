# Two entry points: `make demo` (the main job) and `make test` (lint, types, tests).
# Both create .venv and install the project into it on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SHARED_PHOTOS := ../shared/data/fashion_products_small/images
DEMO_IMAGES ?= $(wildcard $(SHARED_PHOTOS))

.PHONY: install demo test lint browser clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev,serve,bench,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lookalike demo --out demo-out $(if $(DEMO_IMAGES),--images $(DEMO_IMAGES))

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# The review page's end-to-end test drives Debian's Chromium through Playwright (no browser
# download). Installed here when missing and apt-get can (root); otherwise that test skips.
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

test: lint browser
	$(BIN)/pytest

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache
