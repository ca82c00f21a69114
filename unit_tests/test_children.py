"""Child lists (documents, attachments): one list per parent, parent ids, incremental state and resume."""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

import pytest
from airbyte_cdk.models import AirbyteStateMessage, SyncMode
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpMocker
from airbyte_cdk.test.state_builder import StateBuilder

from integration_tests.bill_emulator import BillEmulator
from source_bill import SourceBill
from source_bill.children import DoneParents
from source_bill.core import CLOCK_MARGIN
from unit_tests.builders import (
    catalog,
    config,
    list_request,
    login_request,
    login_response,
    page_response,
    record,
    source,
)

INCREMENTAL = SyncMode.incremental
T1 = "2024-01-01T00:00:01.000+00:00"
T2 = "2024-01-02T00:00:00.000+00:00"
T3 = "2024-01-03T00:00:00.000+00:00"


def doc(n: int) -> Dict[str, Any]:
    return {"id": f"00h{n:05d}", "name": f"d{n}.pdf", "createdTime": T1, "downloadLink": f"https://x/{n}"}


def docs_request(bill: str, page: Optional[str] = None) -> Any:
    return list_request(f"documents/bills/{bill}", sort=None, page=page)


def states(output: EntrypointOutput) -> List[Dict[str, Any]]:
    return [m.state.stream.stream_state.__dict__ for m in output.state_messages]


def child_state(value: Dict[str, Any]) -> List[AirbyteStateMessage]:
    return StateBuilder().with_stream_state("bill_documents", value).build()


def test_given_bills_when_full_refresh_then_every_bills_documents_across_pages_with_bill_id(
    http_mocker: HttpMocker,
) -> None:
    bills = [record(1, T1), record(2, T2)]
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills"), page_response(bills))
    http_mocker.get(docs_request(bills[0]["id"]), page_response([doc(1), doc(2)], "p2"))
    http_mocker.get(docs_request(bills[0]["id"], page="p2"), page_response([doc(3)]))
    http_mocker.get(docs_request(bills[1]["id"]), page_response([]))

    output = read(source(), config(), catalog("bill_documents"))

    assert [(r.record.data["id"], r.record.data["billId"]) for r in output.records] == [
        (doc(1)["id"], bills[0]["id"]),
        (doc(2)["id"], bills[0]["id"]),
        (doc(3)["id"], bills[0]["id"]),
    ]
    assert not output.errors


def test_given_a_saved_state_when_incremental_then_only_changed_parents_are_asked_and_state_follows_parents(
    http_mocker: HttpMocker,
) -> None:
    changed = [record(5, T3)]
    http_mocker.post(login_request(), login_response())
    http_mocker.get(
        list_request("bills", filters='updatedTime:gte:"2024-01-02T00:00:00.000Z"'),
        page_response(changed, date="Wed, 03 Jan 2024 00:00:05 GMT"),
    )
    http_mocker.get(docs_request(changed[0]["id"]), page_response([doc(7)]))

    state = child_state({"parents": {"updatedTime": "2024-01-02T00:00:00.000Z"}})
    output = read(source(), config(max_concurrent_requests=1), catalog("bill_documents", mode=INCREMENTAL), state)

    assert [r.record.data["id"] for r in output.records] == [doc(7)["id"]]
    final = states(output)[-1]
    assert final["parents"]["updatedTime"] == "2024-01-03T00:00:00.000Z"
    assert final["done"] == [[changed[0]["id"], T3]]  # at the cursor: the next sync does not ask again


def test_given_a_state_saved_mid_page_when_resumed_then_starts_at_the_next_parent(http_mocker: HttpMocker) -> None:
    bills = [record(1, T2), record(2, T2), record(3, T3)]
    http_mocker.post(login_request(), login_response())
    http_mocker.get(
        list_request("bills", filters='updatedTime:gte:"2024-01-01T00:00:00.000Z"'),
        page_response(bills, date="Wed, 03 Jan 2024 00:00:05 GMT"),
    )
    http_mocker.get(docs_request(bills[1]["id"]), page_response([doc(2)]))
    http_mocker.get(docs_request(bills[2]["id"]), page_response([doc(3)]))

    saved = {"parents": {"updatedTime": "2024-01-01T00:00:00.000Z"}, "done": [[bills[0]["id"], T2]]}
    output = read(
        source(), config(max_concurrent_requests=1), catalog("bill_documents", mode=INCREMENTAL), child_state(saved)
    )

    assert [r.record.data["id"] for r in output.records] == [doc(2)["id"], doc(3)["id"]]


def test_given_a_done_parent_that_changed_since_when_resumed_then_its_children_are_asked_again(
    http_mocker: HttpMocker,
) -> None:
    bills = [record(1, T3)]  # done at T2, edited since
    http_mocker.post(login_request(), login_response())
    http_mocker.get(
        list_request("bills", filters='updatedTime:gte:"2024-01-01T00:00:00.000Z"'),
        page_response(bills, date="Wed, 03 Jan 2024 00:00:05 GMT"),
    )
    http_mocker.get(docs_request(bills[0]["id"]), page_response([doc(1)]))

    saved = {"parents": {"updatedTime": "2024-01-01T00:00:00.000Z"}, "done": [[bills[0]["id"], T2]]}
    output = read(
        source(), config(max_concurrent_requests=1), catalog("bill_documents", mode=INCREMENTAL), child_state(saved)
    )

    assert [r.record.data["id"] for r in output.records] == [doc(1)["id"]]


def test_given_a_broken_state_when_read_then_config_error() -> None:
    with HttpMocker() as http_mocker:
        http_mocker.post(login_request(), login_response())
        state = child_state({"parents": {}, "done": [["00n1", "not a time"]]})
        output = read(source(), config(), catalog("bill_documents", mode=INCREMENTAL), state, expecting_exception=True)
    failures = {e.trace.error.failure_type.value for e in output.errors}  # type: ignore[union-attr]
    assert failures == {"config_error"} and "not a date-time" in output.errors[0].trace.error.message  # type: ignore[union-attr,operator]


# --- resume at every kill point, against the emulator (a real HTTP server) ------------------------------------


def _ordered(output: EntrypointOutput) -> List[Tuple[str, Any]]:
    out: List[Tuple[str, Any]] = []
    for message in output._messages:
        if message.type == MessageType.RECORD:
            out.append(("record", message.record.data["id"]))  # type: ignore[union-attr]
        elif message.type == MessageType.STATE:
            out.append(("state", message.state.stream.stream_state.__dict__))  # type: ignore[union-attr]
    return out


def _kill_points(full: List[Tuple[str, Any]]) -> List[int]:
    """Every parent-page boundary (a state with at most one parent done) and every 9th state besides."""
    states = [n for n, (kind, _) in enumerate(full) if kind == "state"]
    return [n for i, n in enumerate(states) if i % 9 == 0 or len(full[n][1].get("done", [])) <= 1]


def _resume_everywhere(emu: BillEmulator, *, exact: bool) -> int:
    expected = sorted(d["id"] for b in emu.records("bills") for d in emu.more.children("bills", b["id"]))
    cfg = emu.config(max_concurrent_requests=3)
    incremental = catalog("bill_documents", mode=INCREMENTAL)
    full = _ordered(read(SourceBill(), cfg, incremental))
    assert sorted(i for kind, i in full if kind == "record") == expected
    kills = _kill_points(full)
    for n in kills:
        delivered = [i for kind, i in full[: n + 1] if kind == "record"]
        resumed = [
            i for kind, i in _ordered(read(SourceBill(), cfg, incremental, child_state(full[n][1]))) if kind == "record"
        ]
        if exact:
            assert sorted(delivered + resumed) == expected, f"kill after message {n}"
        else:
            assert set(delivered + resumed) == set(expected), f"kill after message {n}"
    return len(kills)


@pytest.mark.slow  # about 30 syncs of 230 parents against the emulator
def test_given_a_kill_after_any_state_when_resumed_then_nothing_lost_and_no_document_twice() -> None:
    behind = [0.0]  # how far the emulator's updatedTime clock runs behind this machine's
    with BillEmulator(seed=9, sizes={"bills": 230}, clock=lambda: time.time() - behind[0]) as emu:
        # the edits are older than the sync by more than the reader's clock margin (BILL's Date may be that far off
        # the updatedTime clock): no pass of the parents can take them for edits made while it ran
        behind[0] = CLOCK_MARGIN.total_seconds() + 10
        for bill in emu.records("bills")[:3]:
            emu.more.add_child("bills", bill["id"])
        behind[0] = 0.0
        assert _resume_everywhere(emu, exact=True) >= 25


def test_given_parents_edited_as_the_sync_starts_when_resumed_anywhere_then_nothing_lost() -> None:
    """Edits in the second the sync starts make the parents' engine read some ranges again (catch-up); a
    resumed sync then may ask again for those parents' documents, but loses none."""
    with BillEmulator(seed=10, sizes={"bills": 150}) as emu:
        for bill in emu.records("bills")[:3]:
            emu.more.add_child("bills", bill["id"])
        assert _resume_everywhere(emu, exact=False) >= 10


# --- which parents the state lists as done (pure) ------------------------------------------------------------


def test_given_the_parents_cursor_moves_back_when_saving_then_parents_above_it_are_listed_done_again() -> None:
    done = DoneParents([], None)
    for key in [("a", T1), ("b", T2), ("c", T3)]:
        done.add(key)
    done.cursor_moved("2024-01-03T00:00:00.000Z")
    assert done.pending == [("c", T3)]  # a resumed read starts at T3 (gte): only c is met again
    done.cursor_moved("2024-01-02T00:00:00.000Z")  # a catch-up read moved the cursor back
    assert done.pending == [("b", T2), ("c", T3)]
    done.cursor_moved(None)  # back to the beginning: every parent is met again
    assert done.pending == [("a", T1), ("b", T2), ("c", T3)]
    assert ("a", T1) in done and ("a", T2) not in done  # the same parent edited since is not done
