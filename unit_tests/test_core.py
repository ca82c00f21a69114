"""The reading core's parts, without HTTP: the state codec, the slice plan and split, re-read detection, the fan-in."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Iterator, List, Optional, Tuple

import pytest
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_bill import core
from source_bill.core import Answer, PassLog, Span
from source_bill.fanin import side_by_side


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=UTC)


def iso(day: int) -> str:
    return at(day).isoformat()


def test_given_a_state_from_an_older_version_when_parsed_and_formatted_then_it_reads_unchanged() -> None:
    saved = {
        "updatedTime": "2024-02-01T00:00:00.000Z",
        "pass": {
            "started": "2024-06-01T00:00:00.000Z",
            "lower": "2024-01-01T00:00:00.000Z",
            "read": [["2024-03-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"]],
            "edit": "2024-06-01T00:05:00.000Z",
        },
    }
    start = core.parse_state(saved, "vendors", None, now=at(30) + timedelta(days=200))
    assert start.resumed is not None and start.warning is None
    resumed = start.resumed
    again = core.format_state(
        start.lower, lower=resumed.lower, started=resumed.started, read=resumed.read, edit=resumed.edit, mid_pass=True
    )
    assert again == saved
    assert core.parse_state({"updatedTime": "2024-02-01T00:00:00.000Z"}, "vendors", None, at(30)).resumed is None


def test_given_a_cursor_in_the_future_when_parsed_then_start_date_and_a_warning() -> None:
    start = core.parse_state({"updatedTime": "2999-01-01T00:00:00Z"}, "bills", at(1), now=at(2))
    assert start.lower == at(1) and start.resumed is None
    assert start.warning is not None and "in the future" in start.warning


def observed(log: PassLog, served: datetime, *records: Tuple[str, int]) -> None:
    log.observe(Answer([], None, served), [{"id": rid, "updatedTime": iso(day)} for rid, day in records])


def test_given_a_record_read_twice_at_two_versions_when_checked_then_its_latest_edit_else_none() -> None:
    served = at(20)
    first, tail = PassLog(lower=None), PassLog(lower=None, late_floor=served)
    observed(first, served, ("a", 1), ("b", 2))
    observed(tail, served, ("c", 19))  # stamped a day before the read began: a late record, not read before
    assert core.edited_again([first, tail]) is None
    observed(tail, served, ("a", 21))  # "a" again, edited: it was read at day 1
    assert core.edited_again([first, tail]) == at(21)


def test_given_pages_served_before_an_edit_when_windows_then_one_window_per_such_boundary() -> None:
    log = PassLog(lower=None)
    for n, served in enumerate((at(20), at(20, 1), at(29))):
        observed(log, served, (f"r{n}a", 2 * n + 1), (f"r{n}b", 2 * n + 2))
    # the edit at day 20, 2 o'clock: boundary 1 (page 0 served at 0:00) and boundary 2 (page 1 at 1:00) are suspect
    windows = core.catch_up_windows(log, edited=at(20, 2))
    assert windows == [(at(2), at(3)), (at(4), at(5))]
    assert core.catch_up_windows(log, edited=None) == []


def test_given_a_dense_page_when_planned_then_the_range_left_is_cut_below_the_date_less_the_margin() -> None:
    log = PassLog(lower=None)
    served = at(31)
    log.observe(
        Answer([], "t", served),
        [{"id": str(i), "updatedTime": iso(1)} for i in range(99)]
        + [{"id": "last", "updatedTime": at(1, 1).isoformat()}],
    )
    bounds = core.plan_slices(log, slots=3)
    end = served - core.CLOCK_MARGIN
    step = (end - at(1, 1)) / 3
    assert bounds == [at(1, 1) + step, at(1, 1) + 2 * step]
    assert core.plan_slices(log, slots=1) == []


def test_given_slices_with_pages_left_when_a_slot_frees_then_the_one_with_most_left_is_split_in_its_middle() -> None:
    short, long_ = PassLog(lower=at(1), stop_before=at(3)), PassLog(lower=at(3), stop_before=at(27))
    observed(short, at(28), ("a", 1), ("b", 2))
    observed(long_, at(28), ("c", 3), ("d", 4))  # a day a page, 23 days left
    point = core.split_point([Span(at(1), at(3)), Span(at(3), at(27))], [short, long_])
    assert point == (1, at(4) + (at(27) - at(4)) / 2)


def day(n: int) -> datetime:
    return at(1) + timedelta(days=n - 1)


def growing_log(days: List[int], served: datetime, stop_before: Optional[datetime] = None) -> PassLog:
    """A log of pages that each begin on the given days and end where the next begins (the last, a day later)."""
    log = PassLog(lower=day(days[0]), stop_before=stop_before)
    for first, end in zip(days, [*days[1:], days[-1] + 1], strict=True):
        log.observe(
            Answer([], "t", served),
            [
                {"id": f"p{first}", "updatedTime": day(first).isoformat()},
                {"id": f"q{first}", "updatedTime": day(end).isoformat()},
            ],
        )
    return log


def test_given_denser_pages_when_a_slot_frees_then_the_split_is_above_the_middle_where_half_the_pages_lie() -> None:
    """Pages spanning 8, 4, 2, 1 days: the density grows, so more pages lie high in the range left than low in it.
    Breaks if the estimate ignores the trend (the even spread: cut in the middle, fewer pages counted)."""
    log = growing_log([1, 9, 13, 15], served=day(60), stop_before=day(40))
    point = core.split_point([Span(day(1), day(40))], [log])
    assert point is not None
    index, middle = point
    assert index == 0 and day(16) + (day(40) - day(16)) / 2 < middle < day(40)
    trend = core.Trend.of(log, day(40))
    assert trend is not None and trend.pages > 24  # 24 days left at the latest page's day a page, more as it grows
    x = (middle - day(16)).total_seconds()
    assert trend.latest * x + trend.slope * x * x / 2 == pytest.approx(trend.pages / 2, rel=1e-6)  # half below


def test_given_a_dense_late_stream_when_planned_then_the_cuts_hold_equal_pages_not_equal_times() -> None:
    log = growing_log([1, 9, 13, 15], served=day(60) + core.CLOCK_MARGIN)
    bounds = core.plan_slices(log, slots=3)
    assert len(bounds) == 2
    first, second = ((b - day(16)).total_seconds() for b in bounds)
    total = (day(60) - day(16)).total_seconds()
    assert total / 3 < first < second and second - first < first  # the later parts are narrower: denser
    trend = core.Trend.of(log, day(60))
    assert trend is not None
    for share, x in zip((1 / 3, 2 / 3), (first, second), strict=True):
        assert trend.latest * x + trend.slope * x * x / 2 == pytest.approx(share * trend.pages, rel=1e-6)


def test_given_iterators_when_fanned_in_then_every_item_in_order_new_ones_picked_up_and_a_limit_kept() -> None:
    running, peak = 0, 0
    lock = threading.Lock()

    def items(name: str, count: int) -> Iterator[str]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            for i in range(count):
                yield f"{name}{i}"
        finally:
            with lock:
                running -= 1

    iterators: List[Iterator[str]] = [items("a", 30), items("b", 30), items("c", 30)]
    seen: List[Tuple[int, Optional[str]]] = []
    for index, item in side_by_side(iterators, limit=2):
        seen.append((index, item))
        if item is None and len(iterators) == 3:
            iterators.append(items("d", 5))  # a split slice: picked up while running
    assert [i for _, i in seen if i is not None and i.startswith("a")] == [f"a{i}" for i in range(30)]
    assert sorted(index for index, item in seen if item is None) == [0, 1, 2, 3]
    assert len([i for _, i in seen if i is not None]) == 95
    assert peak <= 2


def test_given_a_failing_iterator_when_fanned_in_then_the_error_is_raised_in_the_reader() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise AirbyteTracedException(message="boom")

    with pytest.raises(AirbyteTracedException, match="boom"):
        list(side_by_side([broken(), iter(range(3))]))
