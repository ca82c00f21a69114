#!/usr/bin/env bash
# Sets up everything on a fresh machine (Python 3.11 + pip) and runs the whole test suite:
# lint (ruff), types (mypy), Dockerfile lint (hadolint), unit, end-to-end and standard tests.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-test"
if [ ! -f "$stamp" ]; then
  echo "==> installing source-bill with its test and sync extras into $VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e ".[dev,sync]"
  touch "$stamp"
fi
export PATH="$PWD/$VENV/bin:$PATH"

echo "==> ruff"
ruff check .
ruff format --check .
echo "==> mypy"
mypy
echo "==> hadolint"
hadolint Dockerfile
echo "==> pytest"
python -m pytest "$@"
