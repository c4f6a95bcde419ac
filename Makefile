# Two commands from a fresh machine (see README):
#   make demo   set up .venv/ and run the main job on embedded defaults
#   make test   set up .venv/ and run the tests
#   make lint   ruff: lint and formatting check (configured in pyproject.toml)
.PHONY: setup demo test bench lint

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/mdxfer interaction CCO --protocol demo --out runs/demo

test: setup
	.venv/bin/python -m pytest -q -ra

bench: setup
	.venv/bin/python benchmarks/bench_lammps.py

RUFF ?= $(if $(wildcard .venv/bin/ruff),.venv/bin/ruff,ruff)

lint:
	$(RUFF) check . && $(RUFF) format --check .
