"""One large stream cut into updatedTime slices read side by side: faster, and still nothing lost."""

from __future__ import annotations

from typing import Any, Dict, List

from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.entrypoint_wrapper import read

from integration_tests.bill_emulator import BillEmulator, parse_instant_ms
from integration_tests.test_robustness import assert_latest, by_stream, catalog, fast_source, state_dict, stream_states

INCREMENTAL = SyncMode.incremental


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


def test_given_one_request_slot_when_large_stream_read_then_not_sliced() -> None:
    with BillEmulator(seed=5, sizes={"vendors": 3000}) as emu:
        output = read(fast_source(), emu.config(max_concurrent_requests=1), catalog(["vendors"]))
        assert len(output.records) == 3000
        assert emu.stats.max_in_flight == 1
        assert emu.stats.total_requests == 31
        assert not output.is_in_logs("slices of updatedTime")


def test_given_records_edited_while_slices_are_read_when_two_incremental_syncs_then_latest_versions_arrive() -> None:
    """Edits of rows already read in the first and middle slices shift rows inside those closed slices; the
    edited rows show up only in the open-ended last slice. Breaks if slices only check their own edits."""
    with BillEmulator(seed=8, sizes={"vendors": 4000}) as emu:
        emu.settings.latency_s = 0.005
        rows = sorted(emu.records("vendors"), key=lambda r: (parse_instant_ms(r["updatedTime"]), r["id"]))
        targets = [rows[i]["id"] for i in (5, 50, 1500, 1550, 2800)]
        edited: Dict[str, int] = {}

        def hook(emu_: BillEmulator, name: str, index: int) -> None:
            if name == "vendors" and index == 12 and not edited:
                for rid in targets:
                    emu_.update_record("vendors", rid, {"name": "edited while sliced"})
                    edited[rid] = 1

        emu.before_list(hook)
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
