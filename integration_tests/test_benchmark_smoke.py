"""Smoke test of benchmarks/bench.py: ``--quick`` runs end to end and prints its table.

Run with ``--cdk-concurrent``, so the CDK-concurrent variant stays runnable. Targets are not asserted: at quick
sizes the figures are dominated by interpreter start-up and mean nothing. What holds at any size is asserted:
every run returned the right records, no more than 3 requests were ever in flight at the emulator, the emulator
rejected none with BDC_1322, and the connector lost no record to the edits made during its read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_given_quick_mode_when_the_benchmark_runs_then_it_prints_the_table_and_keeps_the_limits(
    tmp_path: Path,
) -> None:
    report = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--cdk-concurrent", "--json", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    )
    assert "source-bill benchmark" in proc.stdout
    assert "| #  | figure" in proc.stdout
    assert "machine: nproc=" in proc.stdout

    results = json.loads(report.read_text())
    assert results["problems"] == []
    runs = [r for r in results["runs"] if "plain" not in r["label"]]
    assert runs, "no connector run was recorded"
    for run in runs:
        assert run["rc"] == 0, run
        assert run["expected_records"] is None or run["records"] == run["expected_records"], run
        assert run["max_in_flight"] <= 3, run
        assert run["rejected_1322"] == 0, run
    assert results["max_in_flight"] <= 3
    assert results["rejected_1322"] == 0
    assert results["cdk_variant_max_in_flight"] <= 3
    assert any(r["label"].startswith("mutation cdk variant") for r in runs), "the CDK-concurrent variant did not run"
    # Correct at any size: edits made during the read lose no record (the edits did happen: problems is empty)
    lost = [v for figure, v in results["figures"].items() if figure.startswith("records lost")]
    assert lost and lost[0]["value"] == 0, lost
