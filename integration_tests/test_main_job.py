"""The main job end to end: ``scripts/sync_to_duckdb.py`` syncs every stream into DuckDB through PyAirbyte.

Runs the script twice with the current interpreter against the bundled BILL emulator (seed 1) into a
temporary DuckDB file and checks that

* both runs exit 0;
* each of the 22 streams has a table whose rows are exactly the emulator's records (count and primary
  keys; PyAirbyte de-duplicates on the primary key);
* the second run is incremental: it reads far fewer records than the first and the tables keep the
  same rows.

Needs PyAirbyte (``pip install airbyte``) in the test interpreter, e.g. ``.venv/bin/python -m pytest
integration_tests/test_main_job.py`` after ``bash scripts/sync.sh``; skipped otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import pytest

from integration_tests.bill_emulator import PRIMARY_KEYS, STREAMS, BillEmulator
from tests_support import INCREMENTAL_STREAMS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "sync_to_duckdb.py"

pytestmark = pytest.mark.slow


def _require_pyairbyte() -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # google-api-core's Python-version FutureWarnings
            import airbyte  # noqa: F401
            import duckdb  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install
        pytest.skip(
            f"PyAirbyte is not importable in this interpreter ({sys.executable}): {exc!r}; "
            "run `bash scripts/sync.sh` once and use .venv/bin/python -m pytest"
        )


def _run(db: Path, summary: Path) -> Tuple[subprocess.CompletedProcess, Dict[str, Dict[str, Any]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILL_")}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--emulator", "--duckdb", str(db), "--json-summary", str(summary)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    )
    return proc, json.loads(summary.read_text())


def _table_keys(db: Path) -> Dict[str, Set[Tuple[Any, ...]]]:
    import duckdb

    out: Dict[str, Set[Tuple[Any, ...]]] = {}
    with duckdb.connect(str(db), read_only=True) as con:
        tables = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'main'"
            ).fetchall()
        }
        for stream in STREAMS:
            if stream not in tables:
                continue
            cols = ", ".join(f'"{k.lower()}"' for k in PRIMARY_KEYS[stream])
            rows: List[Tuple[Any, ...]] = con.execute(f'select {cols} from main."{stream}"').fetchall()
            assert len(rows) == len(set(rows)), f"{stream}: duplicate primary keys in the DuckDB table"
            out[stream] = set(rows)
    return out


def test_sync_to_duckdb_twice_full_then_incremental(tmp_path: Path) -> None:
    _require_pyairbyte()
    emu = BillEmulator(seed=1)  # not started: only its data, the same the script's emulator serves
    expected = {s: {tuple(r[k] for k in PRIMARY_KEYS[s]) for r in emu.records(s)} for s in STREAMS}
    assert len(expected) == 22

    db = tmp_path / "bill.duckdb"
    proc1, first = _run(db, tmp_path / "first.json")
    assert "USING THE BUNDLED BILL EMULATOR" in proc1.stdout
    assert set(STREAMS) <= set(first)  # and the streams beyond the 22 (integration_tests/test_more_e2e.py)
    tables = _table_keys(db)
    for stream, keys in expected.items():
        assert stream in tables, f"no DuckDB table for {stream}"
        assert len(tables[stream]) == len(keys), f"{stream}: {len(tables[stream])} rows, emulator has {len(keys)}"
        assert tables[stream] == keys, f"{stream}: primary keys differ from the emulator's records"
        assert first[stream]["rows"] == len(keys)
        assert first[stream]["read"] >= len(keys), f"{stream}: first run read {first[stream]['read']}"

    proc2, second = _run(db, tmp_path / "second.json")
    read1 = sum(v["read"] for v in first.values())
    read2 = sum(v["read"] for v in second.values())
    assert read2 < read1, f"second run read {read2} records, first {read1}: not incremental"
    assert read2 <= read1 // 10, f"second run read {read2} of {read1} records; expected only those at the cursor"
    assert "incremental sync" in proc2.stdout
    assert _table_keys(db) == tables, "the incremental run changed which rows are in the tables"
    for stream, keys in expected.items():
        assert second[stream]["rows"] == len(keys)
    for stream in INCREMENTAL_STREAMS:
        assert second[stream]["read"] < len(expected[stream]) or len(expected[stream]) <= 1, (
            f"{stream}: incremental run re-read all {second[stream]['read']} records"
        )

    # secrets never reach the output
    for proc in (proc1, proc2):
        for secret in (emu.credentials["password"], emu.credentials["dev_key"]):
            assert secret not in proc.stdout and secret not in proc.stderr
