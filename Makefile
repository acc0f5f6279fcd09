# The two commands: `make demo` and `make test`. Both set the workspace up first (idempotent).
SHELL := /bin/bash
.DEFAULT_GOAL := help
RUN := bash scripts/run.sh
PYTEST_ARGS ?=

.PHONY: help setup build test test-py310 demo bench clean distclean train

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

setup:  ## create .venv, install pinned deps, fix ROS wheel paths, apt libs if missing, colcon build
	@bash scripts/setup.sh

build: setup  ## colcon build again (after adding packages, entry points or data files)
	@bash scripts/build.sh

test: setup  ## run the whole test suite (unit, real-process ROS, simulation)
	@$(RUN) python -m pytest $(PYTEST_ARGS)

test-py310:  ## the ROS-free test subset on Python 3.10 (Humble's Python) in .venv310; skips without python3.10
	@bash scripts/test_py310.sh $(PYTEST_ARGS)

demo: setup  ## run the main end-to-end job and print its summary
	@$(RUN) aha-wam demo

bench: setup  ## run the benchmarks (JSON on stdout)
	@for b in bench/*.py; do echo "== $$b"; $(RUN) python $$b || exit 1; done

clean:  ## remove colcon build products (keeps .venv)
	rm -rf build install log .venv/.build.sha256

distclean: clean  ## also remove the virtual environments
	rm -rf .venv .venv310

train: setup  ## reproduce checkpoints/cpu(+_flash): expert demos -> cache -> train-ae -> train -> distill (fixed seeds)
	@$(RUN) aha-wam record --tasks lift_box --out runs/cpu/demos --episodes 150 --first-seed 1000
	@$(RUN) aha-wam record --tasks place_cube_in_bowl handover_cube --out runs/cpu/demos --episodes 80 --first-seed 1000
	@$(RUN) aha-wam record --tasks lift_box place_cube_in_bowl --out runs/cpu/demos --episodes 100 --first-seed 2000 --perturb-std 0.08
	@$(RUN) aha-wam record --tasks handover_cube --out runs/cpu/demos --episodes 160 --first-seed 2000 --perturb-std 0.08
	@$(RUN) aha-wam train-ae --config config/train/cpu.yaml --data runs/cpu/demos --steps 800
	@$(RUN) aha-wam train --config config/train/cpu.yaml --data runs/cpu/demos
	@$(RUN) aha-wam distill --config config/train/cpu_distill.yaml --teacher runs/cpu/train/checkpoint
	rm -rf checkpoints/cpu checkpoints/cpu_flash
	mkdir -p checkpoints && cp -r runs/cpu/train/checkpoint checkpoints/cpu && cp -r runs/cpu/flash/checkpoint checkpoints/cpu_flash
