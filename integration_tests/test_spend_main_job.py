"""The main job with a Spend & Expense token: ``BILL_SPEND_API_TOKEN`` makes scripts/sync_to_duckdb.py sync the
spend_* streams too (here against the bundled emulator, which takes the given token), and the token never shows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from integration_tests.bill_emulator import BillEmulator
from integration_tests.test_main_job import _require_pyairbyte
from source_bill.children import CHILD_STREAM_CLASSES
from source_bill.more_streams import MORE_STREAM_CLASSES
from source_bill.streams import STREAM_CLASSES

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "sync_to_duckdb.py"
TOKEN = "main-job-spend-token-93b1"

pytestmark = pytest.mark.slow


def test_given_bill_spend_api_token_when_the_main_job_runs_then_every_spend_stream_lands_in_duckdb(
    tmp_path: Path,
) -> None:
    _require_pyairbyte()
    spend = BillEmulator(seed=1).spend  # not started: the data the script's emulator serves
    expected = {
        "spend_transactions": len(spend.records("transactions")),
        "spend_cards": len(spend.records("cards")),
        "spend_budgets": len(spend.records("budgets")),
        "spend_budget_members": sum(len(rows) for rows in spend.members.values()),
        "spend_users": len(spend.records("users")),
        "spend_reimbursements": len(spend.records("reimbursements")),
        "spend_custom_fields": len(spend.records("custom-fields")),
        "spend_custom_field_values": sum(len(rows) for rows in spend.values.values()),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILL_")}
    env["BILL_SPEND_API_TOKEN"] = TOKEN
    summary = tmp_path / "summary.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--emulator",
            "--duckdb",
            str(tmp_path / "b.duckdb"),
            "--json-summary",
            str(summary),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    rows = json.loads(summary.read_text())
    assert {name: rows[name]["rows"] for name in expected} == expected
    assert len(rows) == len([*STREAM_CLASSES, *MORE_STREAM_CLASSES, *CHILD_STREAM_CLASSES]) + len(expected)
    assert TOKEN not in proc.stdout and TOKEN not in proc.stderr
    assert "spend_api_token=****" in proc.stdout
