"""One large stream cut into updatedTime slices read side by side: faster, and still nothing lost."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.entrypoint_wrapper import read

from integration_tests.bill_emulator import BillEmulator, format_ms, parse_instant_ms
from tests_support import assert_latest, by_stream, catalog, fast_source, state_dict, stream_states

INCREMENTAL = SyncMode.incremental


def _edit_before_request(emu: BillEmulator, stream: str, request: int, ids: List[str]) -> List[str]:
    """Edit the records ``ids`` once, just before list request ``request`` (0-based) of ``stream``; returns the ids
    edited so far (empty until then)."""
    edited: List[str] = []

    def hook(emu_: BillEmulator, name: str, index: int) -> None:
        if name == stream and index == request and not edited:
            for rid in ids:
                emu_.update_record(stream, rid, {"name": "edited while sliced"})
                edited.append(rid)

    emu.before_list(hook)
    return edited


@pytest.mark.slow
def test_given_one_large_stream_when_read_then_three_pages_in_flight_every_record_once_and_few_extra_requests() -> None:
    with BillEmulator(seed=5, sizes={"vendors": 9000}) as emu:
        emu.settings.latency_s = 0.02
        output = read(fast_source(), emu.config(), catalog(["vendors"], INCREMENTAL))

        assert not output.errors
        got = [r["id"] for r in by_stream(output)["vendors"]]
        assert sorted(got) == sorted(r["id"] for r in emu.records("vendors"))  # each once, none missing
        assert emu.stats.max_in_flight == 3  # a single stream used all three slots
        minimum = 90 + 1  # pages + login
        assert emu.stats.total_requests <= minimum * 1.02 + 1 + 1  # + the partial pages of the slices
        assert output.is_in_logs("slices of updatedTime side by side")
        final = state_dict(stream_states(output, "vendors")[-1])
        newest = max(parse_instant_ms(r["updatedTime"]) for r in emu.records("vendors"))
        assert parse_instant_ms(final["updatedTime"]) == newest


@pytest.mark.slow
def test_given_three_streams_read_side_by_side_when_read_then_none_slices_into_slots_the_others_hold() -> None:
    """Three streams hold the three slots: slicing one would only add requests (a partial page per slice) and
    contend for slots. Breaks if a stream slices itself while the others run (more than the plain page count)."""
    with BillEmulator(seed=5, sizes={"vendors": 3000, "bills": 3000, "invoices": 3000}) as emu:
        emu.settings.latency_s = 0.015  # slow enough that a stream read alone would slice
        output = read(fast_source(), emu.config(), catalog(["vendors", "bills", "invoices"], INCREMENTAL))
        assert not output.errors
        assert len(output.records) == 9000
        assert emu.stats.total_requests == 1 + 3 * 30  # login, and 30 pages a stream: no slice
        assert not output.is_in_logs("slices of updatedTime")


def test_given_one_request_slot_when_large_stream_read_then_not_sliced() -> None:
    with BillEmulator(seed=5, sizes={"vendors": 3000}) as emu:
        output = read(fast_source(), emu.config(max_concurrent_requests=1), catalog(["vendors"]))
        assert len(output.records) == 3000
        assert emu.stats.max_in_flight == 1
        assert emu.stats.total_requests == 31
        assert not output.is_in_logs("slices of updatedTime")


@pytest.mark.slow
def test_given_bill_answering_faster_than_the_connector_uses_pages_when_large_stream_read_then_not_sliced() -> None:
    """With no latency the connector's CPU bounds the read: slices would only add CPU (and measured slower)."""
    with BillEmulator(seed=5, sizes={"vendors": 9000}) as emu:
        output = read(fast_source(), emu.config(), catalog(["vendors"], INCREMENTAL))
        assert len(output.records) == 9000
        assert emu.stats.max_in_flight == 1
        assert emu.stats.total_requests == 91
        assert not output.is_in_logs("slices of updatedTime")

        emu.settings.latency_s = 0.015  # the same stream, BILL now slower than the threshold: sliced
        emu.reset_stats()
        sliced = read(fast_source(), emu.config(), catalog(["vendors"], INCREMENTAL))
        assert len({r.record.data["id"] for r in sliced.records}) == 9000
        assert sliced.is_in_logs("slices of updatedTime side by side")
        assert emu.stats.max_in_flight == 3


@pytest.mark.slow
def test_given_records_edited_while_slices_are_read_when_two_incremental_syncs_then_latest_versions_arrive() -> None:
    """Edits of rows already read in the first and middle slices shift rows inside those closed slices; the
    edited rows show up only in the open-ended last slice. Breaks if slices only check their own edits."""
    with BillEmulator(seed=8, sizes={"vendors": 4000}) as emu:
        emu.settings.latency_s = 0.015  # slicing needs BILL slower than SLICE_MIN_ROUND_TRIP_S
        rows = sorted(emu.records("vendors"), key=lambda r: (parse_instant_ms(r["updatedTime"]), r["id"]))
        targets = [rows[i]["id"] for i in (5, 50, 1500, 1550, 2800)]
        edited = _edit_before_request(emu, "vendors", 12, targets)
        first = read(fast_source(), emu.config(), catalog(["vendors"], INCREMENTAL))
        emu.remove_before_list()
        assert not first.errors and edited
        assert first.is_in_logs("slices of updatedTime side by side")
        second = read(
            fast_source(), emu.config(), catalog(["vendors"], INCREMENTAL), [stream_states(first, "vendors")[-1]]
        )
        assert not second.errors
        assert_latest(emu, "vendors", [by_stream(first)["vendors"], by_stream(second)["vendors"]])


def test_given_sliced_read_interrupted_when_resumed_from_a_mid_read_state_then_nothing_missing() -> None:
    with BillEmulator(seed=9, sizes={"bills": 4000}) as emu:
        full = read(fast_source(), emu.config(), catalog(["bills"], INCREMENTAL))
        states: List[Any] = stream_states(full, "bills")
        assert len(states) > 10
        emitted_before: List[str] = []
        # Replay: records emitted before the 10th STATE, then resume from that STATE.
        count = 0
        for message in full.records_and_state_messages:
            if message.type.value == "STATE":
                count += 1
                if count == 10:
                    break
            else:
                emitted_before.append(message.record.data["id"])
        resumed = read(fast_source(), emu.config(), catalog(["bills"], INCREMENTAL), [states[9]])
        assert not resumed.errors
        union = set(emitted_before) | {r["id"] for r in by_stream(resumed)["bills"]}
        assert union == {r["id"] for r in emu.records("bills")}
        assert len(by_stream(resumed)["bills"]) < 4000  # it did not start over


def _replay_until(output: Any, stream: str, nth_state: int) -> List[Dict[str, Any]]:
    """The records a sync had emitted before its nth STATE message (what a destination holds after a kill)."""
    emitted: List[Dict[str, Any]] = []
    count = 0
    for message in output.records_and_state_messages:
        if message.type.value == "STATE":
            count += 1
            if count == nth_state:
                break
        elif message.record.stream == stream:
            emitted.append(message.record.data)
    return emitted


@pytest.mark.slow
def test_given_sliced_read_interrupted_when_resumed_then_ranges_the_slices_had_read_are_not_read_again() -> None:
    """Mid-read states name, besides the cursor, the updatedTime ranges the other slices had read in full. A resume
    re-emits nothing inside them: the only records emitted twice sit exactly at a range's end (gte, for ties)."""
    with BillEmulator(seed=11, sizes={"bills": 6000}) as emu:
        emu.settings.latency_s = 0.015
        # Nothing stamped within CLOCK_MARGIN (5 minutes) before the read: a resumed read cannot tell such a record
        # from one edited while the interrupted read ran (BILL's clocks may disagree that much), and re-checks then.
        _age_recent(emu, "bills", minutes=6)
        full = read(fast_source(), emu.config(), catalog(["bills"], INCREMENTAL))
        assert not full.errors
        states = stream_states(full, "bills")
        mid = [(i, state_dict(s)) for i, s in enumerate(states) if "read" in state_dict(s).get("pass", {})]
        assert len(mid) > 5, "a sliced read should save the other slices' progress"
        index, state = mid[len(mid) // 2]
        cursor = parse_instant_ms(state["updatedTime"])
        ranges = [(parse_instant_ms(a), parse_instant_ms(b)) for a, b in state["pass"]["read"]]
        emitted_before = _replay_until(full, "bills", index + 1)
        in_ranges = [r for r in emitted_before if any(a <= parse_instant_ms(r["updatedTime"]) < b for a, b in ranges)]
        assert len(in_ranges) > 500  # the state is mid-read, with much already read above its cursor

        before = emu.stats.total_requests
        resumed = read(fast_source(), emu.config(), catalog(["bills"], INCREMENTAL), [states[index]])
        assert not resumed.errors
        got = by_stream(resumed)["bills"]
        assert {r["id"] for r in emitted_before} | {r["id"] for r in got} == {r["id"] for r in emu.records("bills")}
        again = {r["id"] for r in emitted_before} & {r["id"] for r in got}
        ends = {cursor, *(b for _, b in ranges)}
        assert all(parse_instant_ms(r["updatedTime"]) in ends for r in got if r["id"] in again)
        assert not any(a <= parse_instant_ms(r["updatedTime"]) < b for r in got for a, b in ranges)
        remaining = 6000 - len(emitted_before)
        assert emu.stats.total_requests - before <= remaining / 100 + 3 + 2  # pages of what was left, per range
        assert resumed.is_in_logs("were read in full")


def _age_recent(emu: BillEmulator, stream: str, minutes: int) -> None:
    """Move every record stamped in the last ``minutes`` back to just before them."""
    floor = parse_instant_ms(emu.now_iso()) - minutes * 60_000
    for n, rec in enumerate(emu.records(stream)):
        if parse_instant_ms(rec["updatedTime"]) > floor:
            emu.set_updated_time(stream, rec["id"], format_ms(floor - 1_000 - n))


def _layout_for_a_short_open_slice(emu: BillEmulator) -> List[str]:
    """4,000 vendors laid out so the slicer cuts [1,500 rows | 2,000 rows | 500 rows]: the open-ended slice finishes
    early, while the two others still have many pages to go. Returns the ids in updatedTime order."""
    day, minute = 86_400_000, 60_000
    t0 = parse_instant_ms(emu.now_iso()) - 9 * day
    ids = [r["id"] for r in emu.records("vendors")]
    for i, rid in enumerate(ids):
        if i < 1500:
            at = t0 + 2 * i * minute
        elif i < 3500:
            at = t0 + int(3.2 * day) + int(1.5 * (i - 1500) * minute)
        else:
            at = t0 + int(6.5 * day) + 2 * (i - 3500) * minute
        emu.set_updated_time("vendors", rid, format_ms(at))
    return ids


@pytest.mark.slow
def test_given_rows_shifted_in_ranges_a_mid_read_state_keeps_when_resumed_then_latest_versions_arrive() -> None:
    """Rows already read in the first two slices are edited while the slices run: rows behind them shift, and the
    next page of those slices skips some. The short open slice shows the edited rows and finishes, and the states
    that follow keep the second slice's range as read (with pass.edit). The resume skips that range but, an edit
    having been seen, re-reads everything the interrupted pass covered. Breaks if a resume trusts finished ranges
    despite the edit: the skipped rows of the second slice would never arrive."""
    with BillEmulator(seed=8, sizes={"vendors": 4000}) as emu:
        emu.settings.latency_s = 0.015  # slicing needs BILL slower than SLICE_MIN_ROUND_TRIP_S
        ids = _layout_for_a_short_open_slice(emu)
        targets = [ids[i] for i in (5, 50, 1505, 1550)]  # on the first pages of the first and second slices
        edited = _edit_before_request(emu, "vendors", 6, targets)
        first = read(fast_source(), emu.config(), catalog(["vendors"], INCREMENTAL))
        emu.remove_before_list()
        assert not first.errors and edited
        assert first.is_in_logs("reading 3 slices of updatedTime side by side")
        states = stream_states(first, "vendors")
        candidates = [i for i, s in enumerate(states) if {"edit", "read"} <= set(state_dict(s).get("pass", {}))]
        assert candidates, "after the open slice finished with the edited rows, states keep its range and the edit"
        index = candidates[0]  # the lowest cursor: the second slice's shifted rows lie in a range it keeps as read
        emitted_before = _replay_until(first, "vendors", index + 1)
        resumed = read(fast_source(), emu.config(), catalog(["vendors"], INCREMENTAL), [states[index]])
        assert not resumed.errors
        assert resumed.is_in_logs("were read in full")
        assert resumed.is_in_logs("catch-up pass")
        after = read(
            fast_source(), emu.config(), catalog(["vendors"], INCREMENTAL), [stream_states(resumed, "vendors")[-1]]
        )
        assert_latest(emu, "vendors", [emitted_before, by_stream(resumed)["vendors"], by_stream(after)["vendors"]])
