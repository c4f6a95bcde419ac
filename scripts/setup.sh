#!/usr/bin/env bash
# Create .venv/ at the repository root and install mdxfer with everything it needs.
# Idempotent: a second run only re-checks. torch is pinned to the CPU build first so that
# pip never pulls a multi-GB CUDA wheel on a laptop (override with MDXFER_TORCH=...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==${MDXFER_TORCH:-2.13.0}"
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/mdxfer --version
