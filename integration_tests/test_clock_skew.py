"""BILL's Date header 5 minutes off the clock that stamps updatedTime, either way: edits made mid-read lose nothing."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.entrypoint_wrapper import read

from integration_tests.bill_emulator import BillEmulator, parse_instant_ms
from integration_tests.test_robustness import assert_latest, by_stream, catalog, fast_source, stream_states
from integration_tests.test_slicing import _edit_before_request

INCREMENTAL = SyncMode.incremental
SKEWS = [-300.0, 300.0]


@pytest.mark.parametrize("skew", SKEWS)
def test_given_date_skew_switch_when_requested_then_the_date_header_runs_that_far_off(skew: float) -> None:
    with BillEmulator(seed=3, sizes={"vendors": 5}) as emu:
        emu.settings.date_skew_s = skew
        answer = requests.get(f"{emu.base_url}/v3/vendors", timeout=10)
        served = email.utils.parsedate_to_datetime(answer.headers["Date"]).timestamp()
        assert abs(served - (time.time() + skew)) < 5


@pytest.mark.slow
@pytest.mark.parametrize("sliced", [False, True])
@pytest.mark.parametrize("skew", SKEWS)
def test_given_date_five_minutes_off_when_rows_already_read_are_edited_mid_read_then_two_syncs_lose_nothing(
    skew: float, sliced: bool
) -> None:
    """Rows the read has passed are edited between two pages: rows behind them shift past a page boundary. With the
    Date ahead, the edits look older than the read's first page; behind, later pages look served before the edits."""
    with BillEmulator(seed=21, sizes={"vendors": 3000}) as emu:
        emu.settings.date_skew_s = skew
        if sliced:
            emu.settings.latency_s = 0.015  # slicing needs BILL slower than SLICE_MIN_ROUND_TRIP_S
        rows = sorted(emu.records("vendors"), key=lambda r: (parse_instant_ms(r["updatedTime"]), r["id"]))
        targets = [rows[i]["id"] for i in (3, 40, 150, 1010, 1020, 2005)]
        edited = _edit_before_request(emu, "vendors", 12, targets)
        config = emu.config(max_concurrent_requests=3 if sliced else 1)
        first = read(fast_source(), config, catalog(["vendors"], INCREMENTAL))
        emu.remove_before_list()
        assert not first.errors and edited
        assert first.is_in_logs("catch-up pass 1")
        second = read(fast_source(), config, catalog(["vendors"], INCREMENTAL), [stream_states(first, "vendors")[-1]])
        assert not second.errors
        assert_latest(emu, "vendors", [by_stream(first)["vendors"], by_stream(second)["vendors"]])
