"""Against the emulator (a real HTTP server): a child stream synced with its parent stream reads no parent list of its
own; each parent list is read once, in both sync modes, one stream at a time or side by side; an interrupted sync
resumed from the states it saved loses no document and reads none twice, with the parents read in slices."""

from __future__ import annotations

import math
import time
from typing import Any, Dict, List, Tuple

import pytest
from airbyte_cdk.models import AirbyteStateMessage, SyncMode
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.state_builder import StateBuilder

from integration_tests.bill_emulator import BillEmulator
from source_bill.streams import Bills
from tests_support import by_stream, catalog, fast_source

FULL = SyncMode.full_refresh
INCREMENTAL = SyncMode.incremental
PARENTS = {
    "bill_documents": "bills",
    "vendor_attachments": "vendors",
    "customer_attachments": "customers",
    "invoice_attachments": "invoices",
}
SIZES = {"bills": 250, "vendors": 120, "customers": 30, "invoices": 150}
PAGE = 100


def pages(n: int, size: int = PAGE) -> int:
    return max(1, math.ceil(n / size))


def children_of(emu: BillEmulator, child: str, parents: List[Dict[str, Any]]) -> List[str]:
    return sorted(row["id"] for p in parents for row in emu.more.children(PARENTS[child], p["id"]))


def last_states(output: EntrypointOutput) -> List[AirbyteStateMessage]:
    states: Dict[str, AirbyteStateMessage] = {}
    for message in output.state_messages:
        states[message.state.stream.stream_descriptor.name] = message.state
    return list(states.values())


@pytest.mark.parametrize("slots", [1, 3], ids=["sequential", "parallel"])
@pytest.mark.parametrize("mode", [FULL, INCREMENTAL], ids=["full_refresh", "incremental"])
def test_given_every_child_stream_with_its_parent_when_read_then_each_parent_list_is_read_once(
    mode: SyncMode, slots: int
) -> None:
    with BillEmulator(seed=31, sizes=SIZES) as emu:
        names = [*PARENTS, *PARENTS.values()]  # children first: the connector reads each parent before its child
        output = read(fast_source(), emu.config(max_concurrent_requests=slots), catalog(names, mode))

        assert not output.errors
        got = by_stream(output)
        for child, parent in PARENTS.items():
            rows = emu.records(parent)
            assert emu.stats.list_requests_by_stream[parent] == pages(len(rows)), parent
            assert sorted(r["id"] for r in got[child]) == children_of(emu, child, rows), child
            assert output.is_in_logs(f"{child}: takes the {parent} from the {parent} stream of this sync")
        if mode == FULL:
            return

        # 5 % of every parent list changes (a document added moves the parent's updatedTime); the next sync from
        # the states of the first reads each parent list once, its changed rows only, and their children only
        changed: Dict[str, List[Dict[str, Any]]] = {}
        for child, parent in PARENTS.items():
            for row in emu.records(parent)[::20]:
                emu.more.add_child(parent, row["id"])
            ids = {r["id"] for r in emu.records(parent)[::20]}
            changed[child] = [r for r in emu.records(parent) if r["id"] in ids]
        emu.reset_stats()
        second = read(
            fast_source(), emu.config(max_concurrent_requests=slots), catalog(names, mode), last_states(output)
        )

        assert not second.errors
        got = by_stream(second)
        for child, parent in PARENTS.items():
            assert emu.stats.list_requests_by_stream[parent] == pages(len(changed[child])), parent
            assert sorted(r["id"] for r in got[child]) == children_of(emu, child, changed[child]), child
            assert second.is_in_logs(f"{child}: takes the {parent} from the {parent} stream of this sync")


# --- a kill anywhere, the parents read in slices ------------------------------------------------------------------


def _ordered(output: EntrypointOutput) -> List[Tuple[str, str, Any]]:
    out: List[Tuple[str, str, Any]] = []
    for message in output._messages:
        if message.type == MessageType.RECORD:
            out.append(("record", message.record.stream, message.record.data["id"]))  # type: ignore[union-attr]
        elif message.type == MessageType.STATE:
            stream = message.state.stream  # type: ignore[union-attr]
            out.append(("state", stream.stream_descriptor.name, stream.stream_state.__dict__))  # type: ignore[union-attr]
    return out


def _saved(full: List[Tuple[str, str, Any]], n: int) -> Dict[str, Any]:
    """The states a destination holds when the sync is killed after message ``n``: each stream's last one."""
    saved: Dict[str, Any] = {}
    for kind, stream, value in full[: n + 1]:
        if kind == "state":
            saved[stream] = value
    return saved


def _as_messages(saved: Dict[str, Any]) -> List[AirbyteStateMessage]:
    builder = StateBuilder()
    for stream, value in saved.items():
        builder = builder.with_stream_state(stream, value)
    return builder.build()


def _same_sliced_place(saved: Dict[str, Any]) -> bool:
    """The child's parents are where the bills stream is, in the middle of a read of bills in slices."""
    parents = saved["bill_documents"]["parents"]
    return parents == saved.get("bills") and "read" in parents.get("pass", {})


@pytest.mark.slow  # about 30 syncs of 300 bills, each page of bills answered after 0.2 s
def test_given_a_kill_after_any_state_when_resumed_then_no_document_lost_or_read_twice_with_bills_in_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Bills, "page_size", 20)  # 15 pages of bills: enough to cut into slices
    monkeypatch.setattr(Bills, "slice_min_round_trip_s", 0.0)  # slices however fast the emulator answers
    with BillEmulator(seed=32, sizes={"bills": 300}) as emu:
        # a page of bills takes longer than its documents: the child keeps up with the bills stream, so kills land
        # both where the two states are at the same page (the resumed child shares again) and where not
        emu.before_list(lambda emu_, stream, index: time.sleep(0.2) if stream == "bills" else None)
        cfg = emu.config(max_concurrent_requests=3)
        both = catalog(["bills", "bill_documents"], INCREMENTAL)
        expected = children_of(emu, "bill_documents", emu.records("bills"))

        first = read(fast_source(), cfg, both)
        # two slices: the third request slot is the bill_documents stream's, read side by side
        assert first.is_in_logs("bills: reading 2 slices of updatedTime side by side")
        assert first.is_in_logs("bill_documents: takes the bills from the bills stream of this sync")
        assert emu.stats.list_requests_by_stream["bills"] < 2 * pages(300, 20)  # one read, slices' extra pages
        full = _ordered(first)
        assert sorted(i for kind, s, i in full if kind == "record" and s == "bill_documents") == expected

        child_states = [n for n, (kind, stream, _) in enumerate(full) if kind == "state" and stream == "bill_documents"]
        # kills where the saved states of both are at the same place in the sliced read of bills (the resumed child
        # shares that read again), and others (the resumed child reads the bills itself)
        same = [n for n in child_states if _same_sliced_place(_saved(full, n))]
        kills = sorted({*child_states[::30], *same[::6]})
        ways = {"shared": 0, "own": 0}
        for n in kills:
            delivered = [i for kind, s, i in full[: n + 1] if kind == "record" and s == "bill_documents"]
            resumed = read(fast_source(), cfg, both, _as_messages(_saved(full, n)))
            assert not resumed.errors
            again = [i for kind, s, i in _ordered(resumed) if kind == "record" and s == "bill_documents"]
            assert sorted(delivered + again) == expected, f"kill after message {n}"
            ways["shared" if resumed.is_in_logs("bill_documents: takes the bills") else "own"] += 1
        assert len(kills) >= 15 and ways["shared"] >= 3 and ways["own"] >= 3, ways
