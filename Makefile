# Two commands from a fresh machine (see README):
#   make demo   set up .venv/ and run the main job on embedded defaults
#   make test   set up .venv/ and run the tests
.PHONY: setup demo test bench

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/mdxfer interaction CCO --protocol demo --out runs/demo

test: setup
	.venv/bin/python -m pytest -q -ra

bench: setup
	.venv/bin/python benchmarks/bench_lammps.py
