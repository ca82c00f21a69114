"""The main job (``scripts/sync_to_duckdb.py``) as a new user meets it, run as a process with no terminal.

* The demo syncs into its own file (``.cache/bill/emulator.duckdb``), and the file remembers which BILL filled
  it: a sync from another BILL into it stops with exit 2 and a message naming ``--duckdb`` and
  ``--full-refresh``, and changes nothing; with ``--full-refresh`` the other BILL's tables and state are
  replaced, so no demo row survives.
* The query one-liner it prints runs when pasted into a shell.
* Progress without a terminal: one line per stream as it starts and ends, with its count, and periodic lines
  with the records so far and the rate; where PyAirbyte writes its logs is said once.
* ``--streams`` syncs only those streams; an unknown name is one line listing the streams. An unchanged re-run
  says why it still reads records.
* A missing, non-JSON or incomplete ``--config`` is one line with what to do, exit 2, no traceback.

Needs PyAirbyte in the test interpreter (``bash scripts/test.sh`` installs it); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import pytest

from integration_tests.bill_emulator import BillEmulator

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "sync_to_duckdb.py"
STREAMS = ["vendors", "roles", "card_account_users"]

pytestmark = pytest.mark.slow


def _require_pyairbyte() -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import airbyte  # noqa: F401
            import duckdb  # noqa: F401
    except Exception as exc:
        pytest.skip(f"PyAirbyte is not importable in {sys.executable}: {exc!r}")


def _env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILL_")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def sync(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def table_keys(db: Path) -> Dict[str, Set[Tuple[Any, ...]]]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        names = [r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()]
        return {
            name: set(con.execute(f'select id from main."{name}"').fetchall())
            for name in names
            if name in ("vendors", "roles")
        } | {name: set() for name in names if name == "card_account_users"}


def origin(db: Path) -> List[Tuple[Any, ...]]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("select environment, organization_id, base_url from main._source_bill_origin").fetchall()


def progress_lines(stdout: str, stream: str) -> Tuple[int, List[int]]:
    started = len(re.findall(rf"^\[\d\d:\d\d:\d\d\] {stream}: started$", stdout, re.M))
    done = [
        int(n.replace(",", "")) for n in re.findall(rf"^\[[\d:]+\] {stream}: done, ([\d,]+) records? in ", stdout, re.M)
    ]
    return started, done


def test_given_demo_file_when_another_bill_syncs_then_it_stops_unless_full_refresh(tmp_path: Path) -> None:
    _require_pyairbyte()
    demo_db = tmp_path / ".cache" / "bill" / "emulator.duckdb"
    demo = BillEmulator(seed=1)  # not started: the data the script's own emulator serves
    demo_ids = {s: {(r["id"],) for r in demo.records(s)} for s in ("vendors", "roles")}

    # 1. The demo, as `bash scripts/sync.sh --streams ...` runs it from a fresh clone: its own file.
    first = sync(tmp_path, "--streams", ",".join(STREAMS), "--json-summary", "first.json")
    out = ok(first)
    assert demo_db.is_file() and not (tmp_path / ".cache" / "bill" / "bill.duckdb").exists()
    assert origin(demo_db) == [("emulator", "00801EMULATOR0001", "bundled BILL emulator, seed 1")]
    summary = json.loads((tmp_path / "first.json").read_text())
    assert sorted(summary) == sorted(STREAMS)  # --streams: these and no other
    assert set(table_keys(demo_db)) == set(STREAMS)
    for stream in STREAMS:
        started, done = progress_lines(out, stream)
        assert (started, done) == (1, [summary[stream]["read"]]), (stream, started, done)
    # where the logs are: said once, by the script, and PyAirbyte's own notices are not repeated
    log_lines = [line for line in (first.stdout + first.stderr).splitlines() if ".log" in line]
    assert len(log_lines) == 1 and log_lines[0].startswith("==> logs: "), log_lines
    for path in re.findall(r"(/\S+\.log)", log_lines[0]):
        assert Path(path).is_file(), path

    # 2. The query one-liner works when pasted into a shell.
    lines = out.splitlines()
    one_liner = lines[lines.index("Query it (paste into a shell):") + 1].strip()
    pasted = subprocess.run(["bash", "-c", one_liner], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert pasted.returncode == 0, pasted.stderr
    assert "updatedtime" in pasted.stdout
    assert sum(1 for (vendor_id,) in demo_ids["vendors"] if vendor_id in pasted.stdout) == 5

    # 3. An unchanged re-run reads only the boundary records, and says why.
    again = ok(sync(tmp_path, "--streams", ",".join(STREAMS), "--json-summary", "again.json"))
    summary = json.loads((tmp_path / "again.json").read_text())
    boundary = summary["vendors"]["read"] + summary["roles"]["read"]
    assert 2 <= boundary <= 4 and summary["card_account_users"]["read"] == 12
    assert (
        f"so the records at the cursor itself are read again rather than risk missing one edited in that same "
        f"millisecond ({boundary:,} records over 2 streams; DuckDB keeps one row per primary key); "
        "card_account_users is full refresh only (no updatedTime) and read in full every run (12 records)."
    ) in again

    # 4. "A real account" (another BILL, here a second emulator) into the demo's file: stops, nothing changes.
    with BillEmulator(seed=2) as other:
        other.settings.latency_s = 0.3  # slow answers: the read lasts long enough for periodic progress lines
        config = tmp_path / "real.json"
        config.write_text(json.dumps(other.config()))
        before = table_keys(demo_db)

        refused = sync(tmp_path, "--config", str(config), "--duckdb", str(demo_db), "--streams", "vendors,roles")

        assert refused.returncode == 2
        error = refused.stderr.strip().splitlines()
        assert len(error) == 1 and error[0].startswith(f"error: {demo_db} holds data synced from emulator BILL"), error
        assert f"this run reads production BILL, organization 00801EMULATOR0001, {other.base_url}" in error[0]
        assert "Use another file (--duckdb PATH), or --full-refresh" in error[0]
        assert "Traceback" not in refused.stdout + refused.stderr
        assert table_keys(demo_db) == before and table_keys(demo_db)["vendors"] == demo_ids["vendors"]

        unknown = sync(tmp_path, "--config", str(config), "--duckdb", "other.duckdb", "--streams", "vendors,nope")
        assert unknown.returncode == 2
        assert (
            unknown.stderr.strip()
            .splitlines()[-1]
            .startswith(
                "error: --streams: no stream named nope. The streams are: accounting_classes, ap_cards, "
                "bank_account_users,"
            )
        )

        # 5. --full-refresh takes the file over: the other BILL's rows only, the demo's tables and state gone.
        taken = sync(
            tmp_path, "--config", str(config), "--duckdb", str(demo_db), "--streams", "vendors,roles",
            "--full-refresh", "--progress-every", "0.25",
        )  # fmt: skip
        out = ok(taken)
        expected = {s: {(r["id"],) for r in other.records(s)} for s in ("vendors", "roles")}
    assert table_keys(demo_db) == expected  # card_account_users (demo only) dropped, no demo row left
    assert origin(demo_db) == [("production", "00801EMULATOR0001", other.base_url)]
    periodic = re.findall(r"^\[[\d:]+\] ([\d,]+) records so far, ([\d,]+) records/s; reading vendors", out, re.M)
    assert periodic, out
    so_far = [int(n.replace(",", "")) for n, _ in periodic]
    total = sum(len(ids) for ids in expected.values())
    assert any(0 < n < total for n in so_far) and all(n < total for n in so_far), out  # during the read


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "error: --config {path}: no such file. Give the path of your connector config JSON."),
        ("username: someone", "error: --config {path} is not valid JSON (Expecting value: line 1 column 1 (char 0))"),
        ("[1, 2]", "error: --config {path} must hold a JSON object of connector settings, not list."),
        (
            '{"username": "u", "password": "p", "organization_id": "00801ABC"}',
            "error: the config from config file {path} is not valid: credentials.dev_key (Developer Key) is missing. "
            "Your BILL developer key, from BILL's developer program (Settings > Sync & Integrations",
        ),
        (
            '{"username": "u", "password": "p", "organization_id": "123", "dev_key": "k"}',
            "error: the config from config file {path} is not valid: organization_id (Organization ID) must look "
            "like 008... (e.g. 00801ABCDEFGHIJKLMNO), not '123'. Your BILL organization ID",
        ),
    ],
)
def test_given_bad_config_file_when_main_job_then_one_line_and_exit_2(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "config.json"
    if content is not None:
        path.write_text(content)

    proc = sync(tmp_path, "--config", str(path))

    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(expected.format(path=path)), proc.stderr
    assert not (tmp_path / ".cache").exists()
