"""How a sliced read turns its slices' progress into a resumable state (the pure parts, without HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Dict, Iterator, List, Optional

from source_bill.streams import Page, PassTracker, Span, Vendors, Window, _covered, _cursor_and_rest, _gaps
from unit_tests.builders import config, source


def at(day: int) -> datetime:
    return datetime(2024, 1, day, tzinfo=UTC)


def test_given_slices_progress_when_covered_then_finished_ranges_whole_unfinished_up_to_what_was_emitted() -> None:
    spans = [
        Span(at(1), at(10), emitted=at(4)),  # first slice, unfinished
        Span(at(10), at(20), emitted=at(19), finished=True),  # finished: its whole range
        Span(at(20), None, emitted=at(25), finished=True),  # open-ended: up to what it emitted
    ]
    covered = _covered(spans, [])
    assert covered == [(at(1), at(4)), (at(10), at(25))]
    assert _cursor_and_rest(at(1), covered) == (at(4), [(at(10), at(25))])


def test_given_nothing_emitted_above_the_lower_bound_when_cursor_then_the_lower_bound() -> None:
    spans = [Span(at(1), at(10), emitted=at(1)), Span(at(10), None, emitted=at(12))]
    assert _cursor_and_rest(at(1), _covered(spans, [])) == (at(1), [(at(10), at(12))])


def test_given_carried_ranges_when_gaps_then_what_is_left_with_the_last_open() -> None:
    carried: List[Window] = [(at(5), at(8)), (at(12), at(15))]
    assert _gaps(at(2), carried) == [(at(2), at(5)), (at(8), at(12)), (at(15), None)]
    # a gap read up to a carried range merges with it: the cursor jumps over it
    spans = [Span(at(2), at(5), finished=True), Span(at(8), at(12), emitted=at(9)), Span(at(15), None)]
    assert _cursor_and_rest(at(2), _covered(spans, carried)) == (at(9), [(at(12), at(15))])


def test_given_a_slice_fetched_ahead_of_what_was_emitted_when_states_are_made_then_they_follow_emitted_pages() -> None:
    """A slice's worker fetches (and its tracker observes) pages before the reading thread emits them; a state must
    count only emitted records, or a kill would lose the queued page. Each page carries its own snapshot."""
    stream = next(s for s in source().streams(config_dict()) if isinstance(s, Vendors))
    trackers = [PassTracker(lower=at(1), upper=at(10)), PassTracker(lower=at(10))]
    trackers[0].high = at(9)  # the worker is ahead: it has fetched up to day 9
    trackers[1].high = at(30)

    def pages(highs: List[Optional[datetime]]) -> Iterator[Page]:
        for high in highs:
            yield Page(records=[], high=high)

    trackers[0].last_served, trackers[1].last_served = at(1), at(2)  # the open slice was served last: no tail read
    spans = [Span(at(1), at(10)), Span(at(10), None)]
    slices = [(trackers[0], pages([at(3)])), (trackers[1], pages([at(12)]))]
    out = list(stream._read_slices(slices, spans, [], trackers))
    assert len(out) == 2
    for _, covered in out:
        assert {high for _, high in covered} <= {at(3), at(12)}, covered  # never the trackers' day 9 or day 30


def config_dict() -> Dict[str, Any]:
    return config()


def test_given_the_open_slice_sent_its_last_request_after_the_others_answered_then_it_was_served_last() -> None:
    """Cause and effect on the local clock settles what BILL's one-second Date cannot; else Date decides."""
    from source_bill.streams import _served_last

    first, middle, tail = PassTracker(lower=at(1)), PassTracker(lower=at(5)), PassTracker(lower=at(9))
    for tracker in (first, middle, tail):
        tracker.last_served = at(20)  # one Date second for all: BILL's clock cannot tell
    first.last_sent_local, first.last_answered_local = 10.0, 10.2
    middle.last_sent_local, middle.last_answered_local = 10.1, 10.3
    tail.last_sent_local, tail.last_answered_local = 10.31, 10.5
    assert _served_last([first, middle, tail])
    tail.last_sent_local = 10.25  # sent before the middle slice's answer came back: it may have been served first
    assert not _served_last([first, middle, tail])
    tail.last_served = at(20) + timedelta(seconds=1)  # BILL's clock says a second later: served last
    assert _served_last([first, middle, tail])
