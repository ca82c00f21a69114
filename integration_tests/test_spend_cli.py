"""Spend & Expense end to end through the ``source-bill`` CLI (a subprocess) against the emulator on 127.0.0.1.

spec shows the secret ``spend_api_token``; check and discover with it; a full refresh of S&E streams equals what
the emulator holds; an incremental transactions read with ``--state`` from the first read's last STATE message
returns exactly the transactions edited in between; ``--debug`` output never holds the token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest

from integration_tests.bill_emulator import BillEmulator, format_ms, parse_instant_ms
from integration_tests.test_cli_e2e import ok, run_cli, write_json

pytestmark = pytest.mark.slow
TOKEN = "cli-spend-token-5c2e7d"


def _catalog(streams: Dict[str, str]) -> Dict[str, Any]:
    entries: List[Dict[str, Any]] = []
    for name, mode in streams.items():
        entries.append(
            {
                "stream": {
                    "name": name,
                    "json_schema": {},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                },
                "sync_mode": mode,
                "destination_sync_mode": "overwrite" if mode == "full_refresh" else "append",
                **({"cursor_field": ["updatedTime"]} if mode == "incremental" else {}),
            }
        )
    return {"streams": entries}


def test_given_a_spend_token_when_the_cli_runs_spec_check_discover_and_reads_then_s_and_e_is_synced(
    tmp_path: Path,
) -> None:
    spec = ok(run_cli("spec")).of_type("SPEC")[0]["spec"]["connectionSpecification"]["properties"]
    assert spec["spend_api_token"]["airbyte_secret"] is True and "spend_api_token" not in spec.get("required", [])
    with BillEmulator(seed=6, spend_sizes={"transactions": 300}) as emu:
        emu.spend.token = TOKEN
        config = write_json(tmp_path / "config.json", emu.config(spend_api_token=TOKEN))
        status = ok(run_cli("check", "--config", str(config))).of_type("CONNECTION_STATUS")[0]["connectionStatus"]
        assert status["status"] == "SUCCEEDED"
        names = [
            s["name"]
            for s in ok(run_cli("discover", "--config", str(config))).of_type("CATALOG")[0]["catalog"]["streams"]
        ]
        assert len([n for n in names if n.startswith("spend_")]) == 8

        catalog = write_json(
            tmp_path / "catalog.json",
            _catalog(
                {"spend_transactions": "incremental", "spend_cards": "full_refresh", "spend_users": "full_refresh"}
            ),
        )
        first = ok(run_cli("read", "--config", str(config), "--catalog", str(catalog), "--debug"))
        records = first.records()
        assert sorted(r["id"] for r in records["spend_transactions"]) == sorted(
            t["id"] for t in emu.spend.records("transactions")
        )
        assert records["spend_cards"] == emu.spend.records("cards")
        assert records["spend_users"] == emu.spend.records("users")
        assert TOKEN not in first.stdout and TOKEN not in first.stderr

        last = first.last_states()["spend_transactions"]
        state = write_json(tmp_path / "state.json", [last])
        cursor = parse_instant_ms(last["stream"]["stream_state"]["updatedTime"])
        # edits made just after the first read's last window (a real edit now would wait out the 2-minute margin)
        edited = {t["id"] for t in emu.spend.records("transactions")[:7]}
        for row_id in edited:
            emu.spend.set_updated_time("transactions", row_id, format_ms(cursor + 1_000))
        only_transactions = write_json(tmp_path / "c2.json", _catalog({"spend_transactions": "incremental"}))
        second = ok(
            run_cli("read", "--config", str(config), "--catalog", str(only_transactions), "--state", str(state))
        )
        assert {r["id"] for r in second.records()["spend_transactions"]} == edited
