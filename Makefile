# The two commands: `make demo` and `make test`. Both set the workspace up first (idempotent).
SHELL := /bin/bash
.DEFAULT_GOAL := help
RUN := bash scripts/run.sh
PYTEST_ARGS ?=

.PHONY: help setup build test demo bench clean distclean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup:  ## create .venv, install pinned deps, fix ROS wheel paths, apt libs if missing, colcon build
	@bash scripts/setup.sh

build: setup  ## colcon build again (after adding packages, entry points or data files)
	@bash scripts/build.sh

test: setup  ## run the whole test suite (unit, real-process ROS, simulation)
	@$(RUN) python -m pytest $(PYTEST_ARGS)

demo: setup  ## run the main end-to-end job and print its summary
	@$(RUN) aha-wam demo

bench: setup  ## run the benchmarks (JSON on stdout)
	@for b in bench/*.py; do echo "== $$b"; $(RUN) python $$b || exit 1; done

clean:  ## remove colcon build products (keeps .venv)
	rm -rf build install log .venv/.build.sha256

distclean: clean  ## also remove the virtual environment
	rm -rf .venv
