"""Spend & Expense through the entrypoint against the bundled emulator (a real HTTP server on 127.0.0.1).

Each read runs on a fake clock shared by the connector (its pacing and backoff sleeps advance it) and the
emulator (its 60-a-minute window and the updatedTime of edits), so a read of hundreds of S&E requests costs
no wall time and the minute limit is checked on the same clock the connector paces by.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Dict, List, Set

import pytest
from airbyte_cdk.models import AirbyteStateMessage, Status, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, _run_command, discover, read

from integration_tests.bill_emulator import BillEmulator, parse_instant_ms
from source_bill import SourceBill
from source_bill.children import CHILD_STREAM_CLASSES
from source_bill.more_streams import MORE_STREAM_CLASSES
from source_bill.streams import STREAM_CLASSES

SPEND = [
    "spend_transactions",
    "spend_cards",
    "spend_budgets",
    "spend_budget_members",
    "spend_users",
    "spend_reimbursements",
    "spend_custom_fields",
    "spend_custom_field_values",
]
START = 1_790_000_000.0  # the fake clock's epoch seconds (2026-09)


class FakeTime:
    """One clock for the connector and the emulator; only sleeps move it."""

    def __init__(self) -> None:
        self.now = START
        self.slept: List[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += max(0.0, seconds)

    def wall(self) -> datetime:
        return datetime.fromtimestamp(self(), UTC)


def source(time: FakeTime) -> SourceBill:
    return SourceBill(clock=time, sleep=time.sleep, wall_clock=time.wall)


def catalog(names: List[str], mode: SyncMode = SyncMode.full_refresh) -> Any:
    builder = CatalogBuilder()
    for name in names:
        builder.with_stream(name, mode)
    return builder.build()


def records(output: EntrypointOutput, stream: str) -> List[Dict[str, Any]]:
    return [m.record.data for m in output.records if m.record.stream == stream]


def last_state(output: EntrypointOutput, stream: str) -> List[AirbyteStateMessage]:
    states = [m.state for m in output.state_messages if m.state.stream.stream_descriptor.name == stream]
    return states[-1:]


def spend_requests(emu: BillEmulator) -> List[tuple]:
    return [entry for entry in emu.request_log if entry[1].startswith("/v3/spend/")]


def most_in_any_minute(times: List[float]) -> int:
    times = sorted(times)
    best, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - 60:
            first += 1
        best = max(best, last - first + 1)
    return best


def check(src: SourceBill, config: Dict[str, Any], tmp_path: Path) -> EntrypointOutput:
    """``check`` through the entrypoint (the CDK's test wrapper has discover and read helpers only)."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return _run_command(src, ["check", "--config", str(path)])


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def emu(time: FakeTime) -> Any:
    with BillEmulator(seed=4, clock=time, sizes={"vendors": 5}) as emulator:
        yield emulator


# --- discover and check ------------------------------------------------------------------------------------
def test_given_no_spend_token_when_discover_then_no_spend_stream(emu: BillEmulator, time: FakeTime) -> None:
    names = [s.name for s in discover(source(time), emu.config()).catalog.catalog.streams]
    every_ap_ar = [*STREAM_CLASSES, *MORE_STREAM_CLASSES, *CHILD_STREAM_CLASSES]
    assert len(names) == len(every_ap_ar) and not [n for n in names if n.startswith("spend_")]


def test_given_a_spend_token_when_discover_then_the_eight_spend_streams_with_keys_and_modes(
    emu: BillEmulator, time: FakeTime
) -> None:
    streams = {
        s.name: s for s in discover(source(time), emu.config(spend_api_token=emu.spend.token)).catalog.catalog.streams
    }
    assert [n for n in streams if n.startswith("spend_")] == SPEND
    assert streams["spend_transactions"].default_cursor_field == ["updatedTime"]
    assert SyncMode.incremental in streams["spend_transactions"].supported_sync_modes
    assert streams["spend_budget_members"].source_defined_primary_key == [["budgetId"], ["userId"]]
    for name in SPEND[1:]:
        assert streams[name].supported_sync_modes == [SyncMode.full_refresh], name
    assert spend_requests(emu) == []  # discover sends nothing to S&E


def test_given_a_good_token_when_check_then_it_asks_s_and_e_for_the_current_user(
    emu: BillEmulator, time: FakeTime, tmp_path: Path
) -> None:
    output = check(source(time), emu.config(spend_api_token=emu.spend.token), tmp_path)
    assert output.connection_status_messages[0].connectionStatus.status == Status.SUCCEEDED
    assert [(m, p) for m, p, _, _ in spend_requests(emu)] == [("GET", "/v3/spend/users/current")]


def test_given_a_refused_token_when_check_then_it_fails_saying_which_token_and_what_to_do(
    emu: BillEmulator, time: FakeTime, tmp_path: Path
) -> None:
    output = check(source(time), emu.config(spend_api_token="not-the-token"), tmp_path)
    status = output.connection_status_messages[0].connectionStatus
    assert status.status == Status.FAILED
    assert "spend_api_token" in status.message and "S&E administrator" in status.message
    assert "sandbox and production tokens differ" in status.message
    assert "not-the-token" not in str(output._messages)


# --- full refresh -----------------------------------------------------------------------------------------
def test_given_a_token_when_every_spend_stream_is_read_then_each_equals_what_s_and_e_holds(
    emu: BillEmulator, time: FakeTime
) -> None:
    emu.spend.add_transactions(70, "2026-03-01T10:00:00.123Z")  # one millisecond with more than a page
    output = read(source(time), emu.config(spend_api_token=emu.spend.token), catalog(SPEND))
    assert not output.errors
    spend = emu.spend
    assert sorted(r["id"] for r in records(output, "spend_transactions")) == sorted(
        t["id"] for t in spend.records("transactions")
    )
    for stream, kind in [
        ("spend_cards", "cards"),
        ("spend_users", "users"),
        ("spend_reimbursements", "reimbursements"),
        ("spend_custom_fields", "custom-fields"),
    ]:
        assert records(output, stream) == spend.records(kind), stream
    # the budgets list omits two budgets that cards reference, and one each that only a transaction, only a
    # reimbursement and only a custom field references: they are fetched by id, once each
    hidden = spend.hidden_budget_ids()
    assert len(hidden) == 5 and hidden[2:] == spend.elsewhere_budget_ids
    assert sorted(b["id"] for b in records(output, "spend_budgets")) == sorted(
        b["id"] for b in spend.records("budgets")
    )
    fetched = [p for _, p, _, _ in spend_requests(emu) if p.count("/") == 4 and p.startswith("/v3/spend/budgets/")]
    assert sorted(fetched) == sorted(f"/v3/spend/budgets/{b}" for b in hidden)
    members = {(m["budgetId"], m["userId"]) for m in records(output, "spend_budget_members")}
    assert members == {(b, m["userId"]) for b, rows in spend.members.items() for m in rows}
    values = records(output, "spend_custom_field_values")
    assert sorted((v["customFieldId"], v["id"]) for v in values) == sorted(
        (f, v["id"]) for f, rows in spend.values.items() for v in rows
    )
    # S&E's rules: apiToken only on S&E calls, nextPage and never page, max within S&E's limits
    for _, path, query, headers in emu.request_log:
        is_spend = path.startswith("/v3/spend/")
        assert ("apiToken" in headers) == is_spend, path
        assert not is_spend or ("sessionId" not in headers and "devKey" not in headers)
        assert "page" not in query
        assert int(query.get("max", 0)) <= (50 if path == "/v3/spend/transactions" else 100)
    assert any("nextPage" in q for _, p, q, _ in spend_requests(emu) if p.endswith("/values"))
    assert spend.rejected_429 == 0


def test_given_a_card_whose_budget_was_deleted_when_budgets_are_read_then_the_rest_are_complete(
    emu: BillEmulator, time: FakeTime
) -> None:
    hidden = emu.spend.hidden_budget_ids()
    emu.spend.settings.hidden_budgets = 1  # the list still omits one budget, and the other is gone for good
    emu.spend.settings.hide_elsewhere_budgets = False  # (budgets only transactions reference: test_spend_completeness)
    emu.spend.delete("budgets", hidden[0])
    output = read(source(time), emu.config(spend_api_token=emu.spend.token), catalog(["spend_budgets"]))
    assert not output.errors
    assert sorted(b["id"] for b in records(output, "spend_budgets")) == sorted(
        b["id"] for b in emu.spend.records("budgets")
    )
    assert hidden[0] not in {b["id"] for b in records(output, "spend_budgets")}
    assert hidden[1] in {b["id"] for b in records(output, "spend_budgets")}


def test_given_a_hard_delete_when_read_again_then_the_row_is_gone(emu: BillEmulator, time: FakeTime) -> None:
    config = emu.config(spend_api_token=emu.spend.token)
    first = records(read(source(time), config, catalog(["spend_cards"])), "spend_cards")
    emu.spend.delete("cards", first[3]["id"])
    second = records(read(source(time), config, catalog(["spend_cards"])), "spend_cards")
    assert [c["id"] for c in second] == [c["id"] for c in first if c["id"] != first[3]["id"]]


# --- transactions: incremental, edits during the read, kill and resume ------------------------------------
def _edit_during_read(emu: BillEmulator, share: float, seed: int) -> Set[str]:
    """Between transaction pages, edit ``share`` of the transactions (each once); returns the ids edited."""
    rng = random.Random(seed)
    ids = [t["id"] for t in emu.spend.records("transactions")]
    todo = rng.sample(ids, int(len(ids) * share))
    edited: Set[str] = set()

    def edit(spend: Any, kind: str, index: int) -> None:
        if kind == "transactions" and todo:
            for _ in range(2):
                if todo:
                    row_id = todo.pop()
                    spend.edit("transactions", row_id)
                    edited.add(row_id)

    emu.spend.before_serve(edit)
    return edited


def test_given_five_percent_edited_during_an_incremental_read_then_no_transaction_is_lost(
    time: FakeTime,
) -> None:
    with BillEmulator(seed=9, clock=time, spend_sizes={"transactions": 3000}) as emu:
        before = {t["id"]: t for t in emu.spend.records("transactions")}
        edited = _edit_during_read(emu, 0.05, seed=1)
        config = emu.config(spend_api_token=emu.spend.token)
        output = read(source(time), config, catalog(["spend_transactions"], SyncMode.incremental))
        assert not output.errors
        got = Counter(r["id"] for r in records(output, "spend_transactions"))
        assert len(edited) == 150
        assert set(before) - edited <= set(got)  # every row that stayed put
        assert max(got.values()) == 1
        state = last_state(output, "spend_transactions")
        # the next sync reads the edited rows (their updatedTime is after this read's last window)
        emu.spend._callbacks.clear()
        time.sleep(600)
        again = read(source(time), config, catalog(["spend_transactions"], SyncMode.incremental), state)
        assert {r["id"] for r in records(again, "spend_transactions")} == edited
        assert emu.spend.rejected_429 == 0
        assert most_in_any_minute(emu.spend.accepted_at) <= 60


def test_given_a_read_killed_mid_way_when_resumed_from_its_state_then_nothing_lost_and_no_window_read_again(
    time: FakeTime,
) -> None:
    with BillEmulator(seed=11, clock=time, spend_sizes={"transactions": 1500}) as emu:
        config = emu.config(spend_api_token=emu.spend.token)
        all_ids = {t["id"] for t in emu.spend.records("transactions")}

        def die_after_ten(spend: Any, kind: str, index: int) -> None:
            if kind == "transactions" and index >= 10:
                raise RuntimeError("the emulator answers 500 from here on")

        emu.spend.before_serve(die_after_ten)
        first = read(source(time), config, catalog(["spend_transactions"], SyncMode.incremental))
        assert first.errors
        state = last_state(first, "spend_transactions")
        assert state, "a window completed before the failure, so there is a state"
        cursor = parse_instant_ms(state[0].stream.stream_state.updatedTime)
        emu.spend._callbacks.clear()
        emu.request_log.clear()
        second = read(source(time), config, catalog(["spend_transactions"], SyncMode.incremental), state)
        assert not second.errors
        got = {r["id"] for r in records(first, "spend_transactions")} | {
            r["id"] for r in records(second, "spend_transactions")
        }
        assert got == all_ids
        lowers = [
            parse_instant_ms(q["filters"].split('gte:"')[1].split('"')[0])
            for _, p, q, _ in spend_requests(emu)
            if p == "/v3/spend/transactions"
        ]
        assert min(lowers) == cursor + 1


def test_given_a_start_date_when_incremental_then_only_transactions_updated_since(
    emu: BillEmulator, time: FakeTime
) -> None:
    start = "2026-06-01T00:00:00Z"
    config = emu.config(spend_api_token=emu.spend.token, start_date=start)
    output = read(source(time), config, catalog(["spend_transactions"], SyncMode.incremental))
    bound = parse_instant_ms(start)
    expected = sorted(t["id"] for t in emu.spend.records("transactions") if parse_instant_ms(t["updatedTime"]) >= bound)
    assert sorted(r["id"] for r in records(output, "spend_transactions")) == expected
    assert 0 < len(expected) < len(emu.spend.records("transactions"))


def test_given_a_state_that_is_not_a_date_when_read_then_config_error(emu: BillEmulator, time: FakeTime) -> None:
    from airbyte_cdk.test.state_builder import StateBuilder

    state = StateBuilder().with_stream_state("spend_transactions", {"updatedTime": "yesterday"}).build()
    config = emu.config(spend_api_token=emu.spend.token)
    output = read(source(time), config, catalog(["spend_transactions"], SyncMode.incremental), state)
    assert output.errors and "not a date-time" in output.errors[0].trace.error.message
    assert output.errors[0].trace.error.failure_type.value == "config_error"


# --- the minute limit --------------------------------------------------------------------------------------
def test_given_more_than_60_requests_when_read_then_the_connector_paces_itself_and_logs_it(
    time: FakeTime,
) -> None:
    with BillEmulator(seed=5, clock=time, spend_sizes={"transactions": 4000}) as emu:
        output = read(
            source(time), emu.config(spend_api_token=emu.spend.token), catalog(["spend_transactions", "spend_cards"])
        )
        assert not output.errors
        assert len(emu.spend.accepted_at) > 120
        assert emu.spend.rejected_429 == 0
        assert most_in_any_minute(emu.spend.accepted_at) == 60
        assert any("Pacing Spend & Expense" in m.log.message for m in output.logs)


def test_given_s_and_e_answers_429_when_read_then_it_waits_as_retry_after_says_and_loses_nothing(
    emu: BillEmulator, time: FakeTime
) -> None:
    emu.spend.settings.per_minute = 1  # another app uses up the token's minute
    emu.spend.settings.retry_after = 17
    names = ["spend_users", "spend_cards", "spend_custom_fields"]
    output = read(source(time), emu.config(spend_api_token=emu.spend.token), catalog(names))
    assert not output.errors
    assert emu.spend.rejected_429 > 0
    assert time.slept.count(17.0) == emu.spend.rejected_429
    assert records(output, "spend_cards") == emu.spend.records("cards")


def test_given_a_token_refused_during_a_read_then_config_error_naming_the_token(
    emu: BillEmulator, time: FakeTime
) -> None:
    output = read(source(time), emu.config(spend_api_token="revoked"), catalog(["spend_users"]))
    assert output.errors
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error" and "spend_api_token" in error.message
    assert len(spend_requests(emu)) == 1  # a refused token is not retried


def test_given_a_bearer_token_in_the_emulator_when_sent_then_it_is_accepted(emu: BillEmulator) -> None:
    import requests

    emu.spend.bearer_tokens.add("oauth-access-token")
    url = f"{emu.base_url}/v3/spend/users/current"
    assert requests.get(url, headers={"Authorization": "Bearer oauth-access-token"}, timeout=10).status_code == 200
    assert requests.get(url, headers={"Authorization": "Bearer other"}, timeout=10).status_code == 401
    first = requests.get(f"{emu.base_url}/v3/spend/users", headers={"apiToken": emu.spend.token}, params={"max": 2})
    again = requests.get(
        f"{emu.base_url}/v3/spend/users",
        headers={"apiToken": emu.spend.token},
        params={"max": 2, "page": first.json()["nextPage"]},
    )
    assert again.json()["results"] == first.json()["results"]  # `page` is ignored: the first page again
    sort = requests.get(
        f"{emu.base_url}/v3/spend/transactions",
        headers={"apiToken": emu.spend.token},
        params={"sort": "updatedTime:asc"},
    )
    assert sort.status_code == 400
    too_many = requests.get(
        f"{emu.base_url}/v3/spend/transactions", headers={"apiToken": emu.spend.token}, params={"max": 51}
    )
    assert too_many.status_code == 400 and "less than or equal to 50" in too_many.text
