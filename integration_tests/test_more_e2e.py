"""End to end through the console script against the emulator: the streams beyond the 22 lists.

* full refresh of the six streams of other shapes and of the four child streams: exactly what the emulator
  holds (children with their parent's id);
* incremental child streams: a second read asks only for the children of the parents changed in between
  (children added, which moves the parent's updatedTime) and returns exactly the new documents;
* a non-administrator skips organization and billing statements with a warning; a sync token skips
  bills_pending_approval (BDC_1302) with a warning; the rest of the sync goes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from integration_tests.bill_emulator import BillEmulator
from integration_tests.test_cli_e2e import ok, run_cli, write_json
from source_bill.declarations import child_streams, shape_stream_names

pytestmark = pytest.mark.slow

SHAPES = list(shape_stream_names())
CHILDREN = child_streams()
KEYS = {"bills_pending_approval": "billId"}
SIZES = {"bills": 60, "vendors": 25, "customers": 20, "invoices": 30}


def catalog(names: List[str], mode: str = "full_refresh") -> Dict[str, Any]:
    streams = []
    for name in names:
        key = KEYS.get(name, "id")
        configured: Dict[str, Any] = {
            "stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
            "sync_mode": mode if name in CHILDREN else "full_refresh",
            "destination_sync_mode": "append",
            "primary_key": [[key]],
        }
        streams.append(configured)
    return {"streams": streams}


def records(run: Any) -> Dict[str, List[Dict[str, Any]]]:
    out: Dict[str, List[Dict[str, Any]]] = {}
    for message in run.of_type("RECORD"):
        out.setdefault(message["record"]["stream"], []).append(message["record"]["data"])
    return out


def expected_children(emu: BillEmulator, stream: str) -> List[Dict[str, Any]]:
    parents, key = CHILDREN[stream]
    return [
        {**row, key: parent["id"]}
        for parent in emu.records(parents)
        for row in emu.more.children(parents, parent["id"])
    ]


def without_links(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "downloadLink"} for row in rows]


def by_id(rows: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    out = {row["id"]: row for row in rows}
    assert len(out) == len(rows), "a record was read twice"
    return out


def test_full_refresh_of_the_new_streams_returns_exactly_the_emulators_objects(tmp_path: Path) -> None:
    with BillEmulator(seed=21, sizes=SIZES) as emu:
        config = write_json(tmp_path / "config.json", emu.config())
        cat = write_json(tmp_path / "catalog.json", catalog([*SHAPES, *CHILDREN]))
        got = records(ok(run_cli("read", "--config", str(config), "--catalog", str(cat))))
        more = emu.more
        assert got["organization"] == [more.organization()]
        assert got["billing_statements"] == more.statements
        assert by_id(got["card_accounts"]) == by_id(more.cards["VERIFIED"] + more.cards["NOMINATED"])
        assert got["ap_cards"] == more.ap_cards
        assert got["bill_approval_policies"] == more.policies
        assert got["bills_pending_approval"] == more.pending_approvals()
        for stream in CHILDREN:
            expected = expected_children(emu, stream)
            assert expected, f"{stream}: the emulator should hold some children"
            assert by_id(without_links(got.get(stream, []))) == by_id(expected), stream
            assert all(row["downloadLink"].startswith(emu.base_url) for row in got[stream])


def test_incremental_children_ask_only_for_changed_parents(tmp_path: Path) -> None:
    with BillEmulator(seed=22, sizes=SIZES) as emu:
        config = write_json(tmp_path / "config.json", emu.config())
        cat = write_json(tmp_path / "catalog.json", catalog(list(CHILDREN), mode="incremental"))
        first = ok(run_cli("read", "--config", str(config), "--catalog", str(cat)))
        states = {}
        for message in first.of_type("STATE"):
            states[message["state"]["stream"]["stream_descriptor"]["name"]] = message["state"]
        assert set(states) == set(CHILDREN)
        added = {}
        for stream, (parents, _) in CHILDREN.items():
            parent = emu.records(parents)[3]
            added[stream] = (parent["id"], emu.more.add_child(parents, parent["id"]))
        state = write_json(tmp_path / "state.json", list(states.values()))
        emu.reset_stats()
        second = ok(run_cli("read", "--config", str(config), "--catalog", str(cat), "--state", str(state)))
        got = records(second)
        for stream, (parent_id, row) in added.items():
            parents, key = CHILDREN[stream]
            # the whole list of each changed parent, the new child included, and nothing of the other parents
            expected = [{**r, key: parent_id} for r in emu.more.children(parents, parent_id)]
            assert row["id"] in {r["id"] for r in expected}
            assert without_links(got.get(stream, [])) == expected, stream
        child_paths = [p for _, p, _, _ in emu.request_log if p.startswith(("/v3/documents/", "/v3/attachments/"))]
        assert len(child_paths) == len(CHILDREN), child_paths  # one list per changed parent, nothing else


def test_given_the_child_streams_with_their_parents_when_read_through_the_cli_then_each_parent_list_is_read_once(
    tmp_path: Path,
) -> None:
    with BillEmulator(seed=24, sizes=SIZES) as emu:
        names = [*CHILDREN, *(parents for parents, _ in CHILDREN.values())]
        incremental = {
            "streams": [
                {**c, "sync_mode": "incremental", "cursor_field": ["updatedTime"]} for c in catalog(names)["streams"]
            ]
        }
        config = write_json(tmp_path / "config.json", emu.config())
        cat = write_json(tmp_path / "catalog.json", incremental)
        run = ok(run_cli("read", "--config", str(config), "--catalog", str(cat)))
        got = records(run)
        for stream, (parents, _) in CHILDREN.items():
            assert emu.stats.list_requests_by_stream[parents] == -(-len(emu.records(parents)) // 100), parents
            assert by_id(without_links(got[stream])) == by_id(expected_children(emu, stream)), stream
            assert f"{stream}: takes the {parents} from the {parents} stream of this sync" in run.stdout


def test_skip_rules_warn_and_the_rest_goes_on(tmp_path: Path) -> None:
    with BillEmulator(seed=23, sizes=SIZES) as emu:
        emu.more.admin = False
        emu.more.sync_tokens["ap-ar-sync"] = "sync-token-value"
        config = write_json(tmp_path / "config.json", emu.config(username="ap-ar-sync", password="sync-token-value"))
        cat = write_json(tmp_path / "catalog.json", catalog(SHAPES))
        run = ok(run_cli("read", "--config", str(config), "--catalog", str(cat)))
        got = records(run)
        assert set(got) == {"card_accounts", "ap_cards", "bill_approval_policies"}
        warnings = [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] == "WARN"]
        for name in ("organization", "billing_statements", "bills_pending_approval"):
            assert len([w for w in warnings if f"Skipping stream {name}:" in w]) == 1, (name, warnings)
        assert "sync-token-value" not in run.stdout + run.stderr
        assert json.dumps(got).count("syu") == 0


def test_given_quick_mode_when_more_bench_runs_then_requests_within_bounds_and_file_bytes_identical(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    report = tmp_path / "more_bench.json"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "more_bench.py"), "--quick", "--json", str(report)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(report.read_text())
    assert results["problems"] == []
    assert results["requests"]["full_requests"] <= results["requests"]["full_bound"]
    assert results["requests"]["incremental_requests"] <= results["requests"]["incremental_bound"]
    assert results["rss"]["large"]["sha256_equal"] is True
