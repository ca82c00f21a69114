"""Logs that read well, through the command line: the sync starts and finishes once, whatever the number of
streams read side by side, and ``python -m source_bill.errors`` prints the errors table and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from integration_tests.bill_emulator import STREAMS, BillEmulator
from source_bill.errors import markdown_table

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a real process
def test_when_errors_module_is_run_then_the_table_and_no_warning() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "source_bill.errors"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )

    assert proc.returncode == 0
    assert proc.stderr == ""  # was: RuntimeWarning: 'source_bill.errors' found in sys.modules ...
    assert proc.stdout == markdown_table() + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("in_flight", [1, 3])
def test_given_all_streams_when_read_then_finished_syncing_logged_once(tmp_path: Path, in_flight: int) -> None:
    emulator = BillEmulator(seed=1).start()
    try:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({**emulator.config(), "max_concurrent_requests": in_flight}))
        catalog = tmp_path / "catalog.json"
        catalog.write_text(
            json.dumps(
                {
                    "streams": [
                        {
                            "stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
                            "sync_mode": "full_refresh",
                            "destination_sync_mode": "overwrite",
                        }
                        for name in STREAMS
                    ]
                }
            )
        )
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        proc = subprocess.run(
            [sys.executable, str(ROOT / "main.py"), "read", "--config", str(config), "--catalog", str(catalog)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        emulator.stop()

    assert proc.returncode == 0, proc.stderr[-3000:]
    messages: List[Dict[str, Any]] = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    logs = [m["log"]["message"] for m in messages if m["type"] == "LOG"]
    assert logs.count("Starting syncing SourceBill") == 1
    assert logs.count("Finished syncing SourceBill") == 1
    assert logs.index("Finished syncing SourceBill") > max(logs.index(f"Finished syncing {s}") for s in STREAMS)
    for stream in STREAMS:
        assert logs.count(f"Finished syncing {stream}") == 1, stream
    assert sum(1 for m in messages if m["type"] == "RECORD") == sum(len(emulator.records(s)) for s in STREAMS)
