# Two entry points; each sets itself up and does nothing twice.
SHELL := /bin/bash
VENV := .venv/bin
export CUSTODY_HOME ?= $(HOME)/.custody

.PHONY: setup demo test lint bench stack-up stack-down clean

setup:
	@scripts/bootstrap.sh

demo: setup
	@scripts/demo.sh

test: setup
	@scripts/test.sh

lint: setup
	$(VENV)/ruff check .

bench: setup
	@for b in bench/*.py; do $(VENV)/python $$b --quick || exit 1; done
