"""How a sliced read turns its slices' progress into a resumable state (the pure parts, without HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Iterator, List, Optional

from source_bill.core import Page, PassLog, Reader, Span, Window, covered, cursor_and_rest, gaps, served_last
from source_bill.fanin import side_by_side


def at(day: int) -> datetime:
    return datetime(2024, 1, day, tzinfo=UTC)


def test_given_slices_progress_when_covered_then_finished_ranges_whole_unfinished_up_to_what_was_emitted() -> None:
    spans = [
        Span(at(1), at(10), emitted=at(4)),  # first slice, unfinished
        Span(at(10), at(20), emitted=at(19), finished=True),  # finished: its whole range
        Span(at(20), None, emitted=at(25), finished=True),  # open-ended: up to what it emitted
    ]
    read = covered(spans, [])
    assert read == [(at(1), at(4)), (at(10), at(25))]
    assert cursor_and_rest(at(1), read) == (at(4), [(at(10), at(25))])


def test_given_nothing_emitted_above_the_lower_bound_when_cursor_then_the_lower_bound() -> None:
    spans = [Span(at(1), at(10), emitted=at(1)), Span(at(10), None, emitted=at(12))]
    assert cursor_and_rest(at(1), covered(spans, [])) == (at(1), [(at(10), at(12))])


def test_given_carried_ranges_when_gaps_then_what_is_left_with_the_last_open() -> None:
    carried: List[Window] = [(at(5), at(8)), (at(12), at(15))]
    assert gaps(at(2), carried) == [(at(2), at(5)), (at(8), at(12)), (at(15), None)]
    # a gap read up to a carried range merges with it: the cursor jumps over it
    spans = [Span(at(2), at(5), finished=True), Span(at(8), at(12), emitted=at(9)), Span(at(15), None)]
    assert cursor_and_rest(at(2), covered(spans, carried)) == (at(9), [(at(12), at(15))])


def test_given_a_slice_fetched_ahead_of_what_was_emitted_when_states_are_made_then_they_follow_emitted_pages() -> None:
    """A slice's worker fetches (and its log observes) pages before the reading thread emits them; a state must
    count only emitted records, or a kill would lose the queued page. Each page carries its own snapshot."""
    logs = [PassLog(lower=at(1), upper=at(10)), PassLog(lower=at(10))]
    logs[0].high = at(9)  # the worker is ahead: it has fetched up to day 9
    logs[1].high = at(30)

    def pages(highs: List[Optional[datetime]]) -> Iterator[Page]:
        for high in highs:
            yield Page(records=[], high=high)

    logs[0].last_served, logs[1].last_served = at(1), at(2)  # the open slice was served last: no tail read
    spans = [Span(at(1), at(10)), Span(at(10), None)]
    reader = Reader("vendors", fetch=unused_fetch, fan_in=side_by_side, slots=2)
    out = list(reader._read_slices([pages([at(3)]), pages([at(12)])], spans, [], logs))
    assert len(out) == 2
    for _, read, _ in out:
        assert {high for _, high in read} <= {at(3), at(12)}, read  # never the logs' day 9 or day 30


def unused_fetch(*args: Any) -> Any:
    raise AssertionError("no request is expected")


def test_given_the_open_slice_sent_its_last_request_after_the_others_answered_then_it_wasserved_last() -> None:
    """Cause and effect on the local clock settles what BILL's one-second Date cannot; else Date decides."""
    first, middle, tail = PassLog(lower=at(1)), PassLog(lower=at(5)), PassLog(lower=at(9))
    for log in (first, middle, tail):
        log.last_served = at(20)  # one Date second for all: BILL's clock cannot tell
    first.last_sent, first.last_answered = 10.0, 10.2
    middle.last_sent, middle.last_answered = 10.1, 10.3
    tail.last_sent, tail.last_answered = 10.31, 10.5
    assert served_last([first, middle, tail])
    tail.last_sent = 10.25  # sent before the middle slice's answer came back: it may have been served first
    assert not served_last([first, middle, tail])
    tail.last_served = at(20) + timedelta(seconds=1)  # BILL's clock says a second later: served last
    assert served_last([first, middle, tail])
