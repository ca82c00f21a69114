#!/usr/bin/env bash
# Sets up everything on a fresh machine (Python 3.11 + pip), then lints (ruff), type-checks (mypy), lints the
# Dockerfile (hadolint) and runs pytest.
#
#   bash scripts/test.sh [PYTEST ARGS]        the fast tier: every test without the `slow` or `emulator`
#                                            marker (unit, in-process and property tests; about a minute)
#   bash scripts/test.sh --all [PYTEST ARGS]  every test (what CI runs: .ci/run)
#
# The fast tier is kept honest by the root conftest.py: a test that starts a process or sleeps fails unless it
# is marked `slow`. pytest's exit code 5 (no test collected) is a failure here, never a silent pass.
set -euo pipefail
cd "$(dirname "$0")/.."

tier="fast"
if [ "${1:-}" = "--all" ]; then
  tier="all"
  shift
fi

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

if [ "$tier" = "all" ]; then
  select="not image_tests"
else
  select="not image_tests and not slow and not emulator"
fi
echo "==> pytest ($tier tier: -m \"$select\")"
status=0
python -m pytest -m "$select" "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no test for -m \"$select\" $*: that is a failure, not a pass" >&2
fi
exit "$status"
