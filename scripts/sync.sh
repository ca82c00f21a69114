#!/usr/bin/env bash
# Main job: set up .venv (connector + PyAirbyte) and sync BILL streams into a local DuckDB file.
#
#   bash scripts/sync.sh                      # no credentials -> bundled BILL emulator, ./.cache/bill/emulator.duckdb
#   bash scripts/sync.sh --config secrets/config.json          # -> ./.cache/bill/bill.duckdb
#   bash scripts/sync.sh --config secrets/config.json --streams vendors,bills --duckdb other.duckdb
#   BILL_USERNAME=... BILL_PASSWORD=... BILL_ORGANIZATION_ID=... BILL_DEV_KEY=... bash scripts/sync.sh
#
# Needs only python3 (3.11 to 3.13, as pyproject.toml's requires-python) and pip/PyPI on the first run.
# Later runs skip the install unless pyproject.toml changed (stamp file .venv/.sync-stamp) or SYNC_REINSTALL=1.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

PYTHON="${PYTHON:-python3}"
VENV="$REPO/.venv"
STAMP="$VENV/.sync-stamp"
AIRBYTE_SPEC="${AIRBYTE_SPEC:-airbyte>=0.71,<0.72}"

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "==> creating virtualenv $VENV ($("$PYTHON" --version 2>&1))"
    "$PYTHON" -m venv "$VENV"
fi

want="$("$VENV/bin/python" - "$AIRBYTE_SPEC" <<'PY'
import hashlib, sys
h = hashlib.sha256(open("pyproject.toml", "rb").read())
h.update(sys.argv[1].encode()); h.update(sys.version.encode())
print(h.hexdigest())
PY
)"
have="$(cat "$STAMP" 2>/dev/null || true)"

if [[ "$want" != "$have" || "${SYNC_REINSTALL:-0}" == "1" || ! -x "$VENV/bin/source-bill" ]]; then
    echo "==> installing source-bill (editable) + PyAirbyte into .venv (first run: a minute or two)"
    start=$SECONDS
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -qq --disable-pip-version-check -e . "$AIRBYTE_SPEC"
    echo "$want" > "$STAMP"
    echo "==> install done in $((SECONDS - start)) s"
else
    echo "==> .venv is up to date (pyproject.toml unchanged), skipping pip"
fi

exec "$VENV/bin/python" "$REPO/scripts/sync_to_duckdb.py" "$@"
