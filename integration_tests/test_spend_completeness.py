"""Spend & Expense completeness through the entrypoint against the bundled emulator: spend_budgets holds every
budget that cards, reimbursements and transactions reference (the budgets list omits some), and no row of a
full-refresh list is skipped when rows are hard-deleted while it is paged through.
"""

from __future__ import annotations

from collections import Counter
from time import monotonic, sleep
from typing import Any, List

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.state_builder import StateBuilder

from integration_tests.bill_emulator import BillEmulator
from integration_tests.test_spend import FakeTime, catalog, last_state, records, source, spend_requests

BUDGET_LISTS = ["/v3/spend/budgets", "/v3/spend/cards", "/v3/spend/custom-fields", "/v3/spend/reimbursements"]


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def emu(time: FakeTime) -> Any:
    with BillEmulator(seed=4, clock=time, sizes={"vendors": 5}) as emulator:
        yield emulator


def by_id_requests(emu: BillEmulator) -> List[str]:
    return sorted(p.rsplit("/", 1)[1] for _, p, _, _ in spend_requests(emu) if p.count("/") == 4 and "/budgets/" in p)


def budget_ids(output: Any) -> List[str]:
    return sorted(b["id"] for b in records(output, "spend_budgets"))


def all_budgets(emu: BillEmulator, *, but: str = "") -> List[str]:
    return sorted(b["id"] for b in emu.spend.records("budgets") if b["id"] != but)


# --- spend_budgets: every referenced budget ---------------------------------------------------------------
def test_given_no_transactions_state_when_budgets_alone_are_read_then_card_reimbursement_and_field_budgets_by_id(
    emu: BillEmulator, time: FakeTime
) -> None:
    only_transactions, only_reimbursements, only_custom_field = emu.spend.elsewhere_budget_ids
    output = read(source(time), emu.config(spend_api_token=emu.spend.token), catalog(["spend_budgets"]))
    assert not output.errors
    # a budget only transactions reference cannot be known without them: the one gap, said in the docs
    assert budget_ids(output) == all_budgets(emu, but=only_transactions)
    hidden = emu.spend.hidden_budget_ids()
    assert by_id_requests(emu) == sorted([*hidden[:2], only_reimbursements, only_custom_field])
    assert sorted(p for _, p, _, _ in spend_requests(emu) if p.count("/") == 3) == BUDGET_LISTS  # one page each
    assert len(spend_requests(emu)) == 4 + 4


def test_given_the_transactions_state_of_an_earlier_sync_when_budgets_alone_are_read_then_their_budgets_too(
    emu: BillEmulator, time: FakeTime
) -> None:
    config = emu.config(spend_api_token=emu.spend.token)
    first = read(source(time), config, catalog(["spend_transactions"], SyncMode.incremental))
    state = last_state(first, "spend_transactions")
    kept = state[0].stream.stream_state.budgetIds
    assert kept == sorted({t["budgetId"] for t in emu.spend.records("transactions")})
    assert emu.spend.elsewhere_budget_ids[0] in kept
    emu.request_log.clear()
    output = read(source(time), config, catalog(["spend_budgets"]), state)
    assert not output.errors
    assert budget_ids(output) == all_budgets(emu)
    assert by_id_requests(emu) == sorted(emu.spend.hidden_budget_ids())
    assert len(spend_requests(emu)) == 4 + 5  # the lists, then the 5 budgets they omit


def test_given_a_transactions_state_without_budget_ids_when_read_then_it_is_valid_and_the_next_state_has_them(
    emu: BillEmulator, time: FakeTime
) -> None:
    config = emu.config(spend_api_token=emu.spend.token)
    all_at_once = read(source(time), config, catalog(["spend_transactions"], SyncMode.incremental))
    old = {k: v for k, v in last_state(all_at_once, "spend_transactions")[0].stream.stream_state.__dict__.items()}
    old.pop("budgetIds")
    state = StateBuilder().with_stream_state("spend_transactions", old).build()
    emu.request_log.clear()
    budgets = read(source(time), config, catalog(["spend_budgets"]), state)
    assert not budgets.errors
    assert budget_ids(budgets) == all_budgets(emu, but=emu.spend.elsewhere_budget_ids[0])
    emu.spend.edit("transactions", emu.spend.records("transactions")[5]["id"])
    time.sleep(600)
    again = read(source(time), config, catalog(["spend_transactions"], SyncMode.incremental), state)
    assert not again.errors and len(records(again, "spend_transactions")) == 1
    assert last_state(again, "spend_transactions")[0].stream.stream_state.budgetIds == [
        emu.spend.records("transactions")[5]["budgetId"]
    ]


@pytest.mark.parametrize("workers", [1, 3])
def test_given_budgets_before_transactions_in_the_catalog_when_read_then_transactions_first_and_budgets_complete(
    emu: BillEmulator, time: FakeTime, workers: int
) -> None:
    config = emu.config(spend_api_token=emu.spend.token, max_concurrent_requests=workers)
    names = ["spend_budget_members", "spend_budgets", "spend_cards", "spend_transactions"]
    output = read(source(time), config, catalog(names))
    assert not output.errors
    assert budget_ids(output) == all_budgets(emu)
    members = {m["budgetId"] for m in records(output, "spend_budget_members")}
    assert members == set(all_budgets(emu))
    assert by_id_requests(emu) == sorted(emu.spend.hidden_budget_ids())
    started = [m.trace.stream_status.stream_descriptor.name for m in output.trace_messages if m.trace.stream_status]
    if workers == 1:  # one at a time, the budget streams moved to the end: the budgets list after the transactions
        paths = [p for _, p, _, _ in spend_requests(emu)]
        assert paths.index("/v3/spend/budgets") > max(i for i, p in enumerate(paths) if p == "/v3/spend/transactions")
        assert list(dict.fromkeys(started)) == [
            "spend_cards",
            "spend_transactions",
            "spend_budget_members",
            "spend_budgets",
        ]


@pytest.mark.slow  # holds the transactions read up to 3 s of real time
def test_given_budgets_beside_a_slow_transactions_read_when_read_in_parallel_then_budgets_wait_for_its_budget_ids(
    emu: BillEmulator, time: FakeTime
) -> None:
    """The first transactions answer is held back until the budgets stream has fetched budgets by id, or 3 s:
    budgets that do not wait for the transactions read fetch their budgets first and miss the transactions' one."""
    waited: List[bool] = []

    def hold(spend: Any, kind: str, index: int) -> None:
        if kind == "transactions" and index == 0:
            until = monotonic() + 3.0
            while not by_id_requests(emu) and monotonic() < until:
                sleep(0.02)
            waited.append(not by_id_requests(emu))

    emu.spend.before_serve(hold)
    config = emu.config(spend_api_token=emu.spend.token, max_concurrent_requests=3)
    output = read(source(time), config, catalog(["spend_budgets", "spend_transactions"]))
    assert not output.errors
    assert waited == [True]  # no budget was fetched by id while the transactions read was under way
    assert budget_ids(output) == all_budgets(emu)


@pytest.mark.parametrize("workers", [1, 3])
def test_given_the_transactions_read_fails_when_budgets_are_read_with_it_then_budgets_end_without_its_ids(
    emu: BillEmulator, time: FakeTime, workers: int
) -> None:
    def fail(spend: Any, kind: str, index: int) -> None:
        if kind == "transactions":
            raise RuntimeError("the emulator answers 500")

    emu.spend.before_serve(fail)
    config = emu.config(spend_api_token=emu.spend.token, max_concurrent_requests=workers)
    output = read(source(time), config, catalog(["spend_budgets", "spend_transactions"]))
    assert [e.trace.error.stream_descriptor.name for e in output.errors if e.trace.error.stream_descriptor] == [
        "spend_transactions"
    ]
    assert budget_ids(output) == all_budgets(emu, but=emu.spend.elsewhere_budget_ids[0])


# --- full-refresh lists: hard deletes during the read ---------------------------------------------------------
def test_given_two_read_cards_deleted_while_the_list_is_paged_when_read_then_no_card_is_skipped(
    time: FakeTime,
) -> None:
    with BillEmulator(seed=4, clock=time, sizes={"vendors": 1}, spend_sizes={"cards": 250}) as emu:
        before = [c["id"] for c in emu.spend.records("cards")]
        emu.spend.settings.delete_while_paging = {"cards": 2}
        output = read(source(time), emu.config(spend_api_token=emu.spend.token), catalog(["spend_cards"]))
        assert not output.errors
        assert len(emu.spend.deleted_while_paging) == 2
        got = Counter(c["id"] for c in records(output, "spend_cards"))
        assert set(got) == set(before) and max(got.values()) == 1  # the deleted ones were read before they went
        # offsets 0, 99 (a read card gone: none of page one there), back to 0, 99 (again), 0, 99, 198: seven
        offsets = [q.get("nextPage") for _, p, q, _ in spend_requests(emu) if p == "/v3/spend/cards"]
        assert len(offsets) == 7 and offsets.count(None) == 3
        assert any("stepped back 2 times" in m.log.message for m in output.logs)


def test_given_cards_that_do_not_change_when_read_then_one_row_of_overlap_costs_one_request_more(
    time: FakeTime,
) -> None:
    with BillEmulator(seed=4, clock=time, sizes={"vendors": 1}, spend_sizes={"cards": 250}) as emu:
        output = read(source(time), emu.config(spend_api_token=emu.spend.token), catalog(["spend_cards"]))
        assert records(output, "spend_cards") == emu.spend.records("cards")
        pages = [q.get("nextPage") for _, p, q, _ in spend_requests(emu) if p == "/v3/spend/cards"]
        assert pages == [None, "YXJyYXljb25uZWN0aW9uOjk5", "YXJyYXljb25uZWN0aW9uOjE5OA=="]  # offsets 0, 99, 198


def test_given_a_read_value_deleted_while_a_custom_fields_values_are_paged_when_read_then_none_is_skipped(
    emu: BillEmulator, time: FakeTime
) -> None:
    before = {(f, v["id"]) for f, rows in emu.spend.values.items() for v in rows}
    emu.spend.settings.delete_while_paging = {"values": 1}
    output = read(source(time), emu.config(spend_api_token=emu.spend.token), catalog(["spend_custom_field_values"]))
    assert not output.errors
    got = Counter((v["customFieldId"], v["id"]) for v in records(output, "spend_custom_field_values"))
    assert set(got) == before and max(got.values()) == 1
    # fields of 3 and 63 values: one page each; 123 values: 0, 99 (moved back), 0, 99
    assert len([p for _, p, _, _ in spend_requests(emu) if p.endswith("/values")]) == 1 + 1 + 4


def test_given_opaque_cursors_when_a_list_is_read_then_it_is_read_twice_and_a_shifted_card_is_not_lost(
    time: FakeTime,
) -> None:
    with BillEmulator(seed=4, clock=time, sizes={"vendors": 1}, spend_sizes={"cards": 250}) as emu:
        before = [c["id"] for c in emu.spend.records("cards")]
        emu.spend.settings.opaque_cursors = True
        emu.spend.settings.delete_while_paging = {"cards": 1}
        output = read(source(time), emu.config(spend_api_token=emu.spend.token), catalog(["spend_cards"]))
        assert not output.errors
        got = Counter(c["id"] for c in records(output, "spend_cards"))
        assert set(got) == set(before) and max(got.values()) == 1
        assert len([p for _, p, _, _ in spend_requests(emu) if p == "/v3/spend/cards"]) == 3 + 3
        assert sum("not an offset cursor" in m.log.message for m in output.logs) == 1


def test_given_an_omitted_budget_whose_parent_is_omitted_too_when_budgets_are_read_then_the_parent_is_fetched(
    emu: BillEmulator, time: FakeTime
) -> None:
    only_transactions = emu.spend.elsewhere_budget_ids[0]  # no transactions read nor state: known only as a parent
    emu.spend.edit("budgets", emu.spend.hidden_budget_ids()[0], {"parentBudgetId": only_transactions})
    output = read(source(time), emu.config(spend_api_token=emu.spend.token), catalog(["spend_budgets"]))
    assert not output.errors
    assert budget_ids(output) == all_budgets(emu)
    assert by_id_requests(emu) == sorted(emu.spend.hidden_budget_ids())
    assert len(spend_requests(emu)) == 4 + 5
