#!/usr/bin/env bash
# Create .venv/ at the repository root and install mdxfer with everything it needs.
# Idempotent: a second run only re-checks. torch is pinned to the CPU build first so that
# pip never pulls a multi-GB CUDA wheel on a laptop (override with MDXFER_TORCH=...).
# Every other package is installed at the version the tests last passed with
# (constraints.txt); MDXFER_CONSTRAINTS=none installs the newest allowed by pyproject.toml
# instead. `scripts/setup.sh --relock` rewrites constraints.txt from what .venv/ holds now
# (after an upgrade that passed the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "${1:-}" = "--relock" ]; then
  {
    sed -n '1,3p' constraints.txt
    .venv/bin/python -m pip freeze --exclude-editable \
      | grep -v -i -E '^(torch==|pip==|setuptools==|wheel==)' | sort -f
  } > constraints.txt.new
  mv constraints.txt.new constraints.txt
  echo "constraints.txt rewritten from .venv/"
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
CONSTRAINTS=(-c constraints.txt)
if [ "${MDXFER_CONSTRAINTS:-}" = "none" ]; then
  CONSTRAINTS=()
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==${MDXFER_TORCH:-2.13.0}"
.venv/bin/python -m pip install -q "${CONSTRAINTS[@]}" -e ".[test]"
.venv/bin/mdxfer --version
