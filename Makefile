# nordpipe: `make demo` sets everything up and runs the demo pipeline on generated sample data;
# `make test` sets everything up and runs all tests (starting a local Slurm cluster when root).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NORDPIPE := $(BIN)/nordpipe
DEMO ?= demo-output

.PHONY: setup demo test lint system-deps bench sample ingest urls quality lines minhash pii tokenize report clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(NORDPIPE) run pipelines/demo.yaml --root $(DEMO)
	$(NORDPIPE) report $(DEMO) --html $(DEMO)/report.html

# System packages the tests use: a real single-node Slurm cluster and Chromium (report test).
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  if ! command -v chromium >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; fi; \
	  scripts/slurm-local.sh start; \
	else echo "not root with apt-get: the Slurm and Chromium tests skip unless those are installed"; fi

test: setup system-deps
	$(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; rc=0; fi; exit $$rc

lint: setup
	$(BIN)/ruff check src tests benchmarks

# One target per stage of the demo chain, named as the stage (`nordpipe stages`); each runs the
# pipeline up to that stage and reruns only what is missing.
sample: setup
	$(NORDPIPE) sample $(DEMO)/sample
ingest: sample
	$(NORDPIPE) run pipelines/demo.yaml --root $(DEMO) --until ingest
urls quality lines minhash pii tokenize: setup
	$(NORDPIPE) run pipelines/demo.yaml --root $(DEMO) --until $@
report: setup
	$(NORDPIPE) report $(DEMO) --html $(DEMO)/report.html

clean:
	rm -rf $(DEMO)
