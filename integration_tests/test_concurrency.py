"""Requests in flight and the hourly budget: the limits hold for every request the connector makes."""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, List

import pytest
from airbyte_cdk.test.entrypoint_wrapper import read

from integration_tests.bill_emulator import STREAMS, BillEmulator
from source_bill import SourceBill
from source_bill.auth import BillSessionAuthenticator
from source_bill.client import RequestLimiter
from tests_support import FakeClock, catalog, ids

FAST = {"sleep": lambda seconds: None}


full_catalog = catalog  # full refresh unless told otherwise


@pytest.mark.slow
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_given_faults_and_expiring_sessions_when_all_streams_read_then_never_more_than_the_limit_in_flight(
    limit: int,
) -> None:
    with BillEmulator(seed=3) as emu:
        emu.settings.latency_s = 0.01
        emu.settings.max_concurrent = None  # count, don't reject: the connector alone must keep the limit
        emu.settings.fault_rate = 0.1
        emu.settings.fault_seed = limit
        emu.settings.fault_kinds = ("500_json", "503_empty", "drop", "expire")
        emu.settings.session_max_requests = 7

        output = read(SourceBill(**FAST), emu.config(max_concurrent_requests=limit), full_catalog(list(STREAMS)))

        assert not output.errors
        assert emu.stats.max_in_flight <= limit
        if limit == 1:
            assert emu.stats.max_in_flight == 1
        else:
            assert emu.stats.max_in_flight == limit  # the streams really ran side by side
        assert sum(emu.stats.faults_injected.values()) > 0
        got = ids(output)
        for stream in STREAMS:
            expected = [r.get("id") or (r.get("cardAccountId"), r.get("userId")) for r in emu.records(stream)]
            assert sorted(got.get(stream, []), key=str) == sorted(expected, key=str), stream


@pytest.mark.slow
def test_given_max_concurrent_requests_1_when_read_then_streams_run_one_after_another() -> None:
    with BillEmulator(seed=1) as emu:
        emu.settings.latency_s = 0.005
        output = read(SourceBill(**FAST), emu.config(max_concurrent_requests=1), full_catalog(["vendors", "bills"]))
        streams_in_order = [m.record.stream for m in output.records]
        assert emu.stats.max_in_flight == 1
        # strictly sequential: every vendors record before every bills record (catalog order)
        assert streams_in_order == sorted(streams_in_order, key=["vendors", "bills"].index)


def test_given_three_workers_with_the_same_expired_session_when_they_renew_then_one_login() -> None:
    logins: List[int] = []
    barrier = threading.Barrier(3)

    def login(credentials: Any) -> Dict[str, str]:
        logins.append(1)
        return {"sessionId": f"session-{len(logins)}"}

    auth = BillSessionAuthenticator(username="u", password="p", organization_id="008x", dev_key="k", login=login)
    expired = auth.session_id()

    def worker() -> None:
        barrier.wait()
        auth.invalidate(expired)  # each saw BILL reject the same session
        auth.session_id()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(logins) == 2  # the first login, then one renewal for all three
    assert auth.session_id() == "session-2"


@pytest.mark.slow
def test_given_sessions_expiring_under_parallel_streams_when_read_then_logins_stay_few() -> None:
    with BillEmulator(seed=2) as emu:
        emu.settings.latency_s = 0.01
        emu.settings.session_max_requests = 10
        output = read(SourceBill(**FAST), emu.config(), full_catalog(list(STREAMS)))
        assert not output.errors
        requests = emu.stats.total_requests
        # one login per ten requests at most, plus a few from workers racing at an expiry: never one per request
        assert emu.stats.login_count <= requests // 10 + 4


def test_given_small_hourly_budget_when_many_requests_then_paced_over_the_window() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(3, per_hour=5, logger=logging.getLogger("test"), clock=clock, sleep=clock.sleep)
    sent_at = []
    for _ in range(12):
        limiter.acquire()
        sent_at.append(clock.now)
        clock.now += 10  # each request takes 10 s
        limiter.release()

    # never more than 5 in any moving hour
    for i, start in enumerate(sent_at):
        assert len([t for t in sent_at[i:] if t < start + 3600]) <= 5
    assert sent_at[5] == pytest.approx(3600.0)  # the 6th waits for the 1st to leave the window
    assert sent_at[10] == pytest.approx(7200.0)
    assert limiter.paced_seconds == pytest.approx(sum(clock.slept))


def test_given_hourly_budget_when_read_then_pacing_is_logged_and_bill_never_says_1144() -> None:
    clock = FakeClock()
    with BillEmulator(seed=1, sizes={"vendors": 450}) as emu:
        source = SourceBill(sleep=clock.sleep, clock=clock)
        output = read(source, emu.config(requests_per_hour=3), full_catalog(["vendors"]))
        assert len(output.records) == 450
        assert emu.stats.rejected_1144 == 0
        assert output.is_in_logs("Pacing: 3 requests were sent in the last hour")
        assert clock.slept  # 1 login + 5 pages with a budget of 3 an hour: it had to wait
