"""The S&E transactions window reader (source_bill/spend_core.py) against a model of S&E paging.

The model holds rows (id, updatedTime, list position), answers a window with offset cursors over the rows
currently in it (as S&E does: no sort by updatedTime, offsets that go stale), and between any two answers
applies the next of a random list of edits (updatedTime moves to now, after every window), hard deletes and
inserts. The properties: every row that stayed put is emitted, none twice, checkpoints only move forward and
end at the read's upper end; a read killed after any checkpoint and resumed from it loses nothing either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from source_bill.spend_core import MAX_PASSES, SHRINK, WindowReader, WindowUnstable, next_width

PAGE = 5  # a small page makes splits and paged milliseconds frequent
END = 1_000


@dataclass
class Model:
    rows: Dict[str, Tuple[int, int]]  # id -> (updatedTime, list position)
    events: List[Tuple[str, int]]  # (kind, which row), applied one per answer
    now: int = END + 1
    served: int = 0
    touched: Set[str] = field(default_factory=set)  # rows edited or deleted during the read

    def answer(self, lower: int, upper: int, token: Optional[str]) -> Tuple[List[str], Optional[str]]:
        in_window = sorted((pos, rid) for rid, (upd, pos) in self.rows.items() if lower <= upd <= upper)
        offset = int(token) if token else 0
        page = [rid for _, rid in in_window[offset : offset + PAGE]]
        more = offset + PAGE < len(in_window)
        self._change()
        return page, str(offset + PAGE) if more else None

    def _change(self) -> None:
        self.served += 1
        if not self.events:
            return
        kind, which = self.events.pop(0)
        self.now += 1
        ids = sorted(self.rows)
        if kind == "insert":
            self.rows[f"new{self.now}"] = (self.now, which)
        elif ids:
            rid = ids[which % len(ids)]
            self.touched.add(rid)
            if kind == "edit":
                self.rows[rid] = (self.now, self.rows[rid][1])
            else:
                del self.rows[rid]


rows_strategy = st.lists(
    st.tuples(st.one_of(st.integers(0, END), st.sampled_from([7, 500, 999])), st.integers(0, 10_000)),
    max_size=120,
)
events_strategy = st.lists(
    st.tuples(st.sampled_from(["edit", "delete", "insert"]), st.integers(0, 1_000)),
    max_size=30,
)


def read(model: Model, reader: WindowReader, stop_after: Optional[int] = None) -> Tuple[List[str], List[int]]:
    """Drive the reader like the stream does; stop after ``stop_after`` checkpoints (a kill)."""
    emitted: List[str] = []
    checkpoints: List[int] = []
    request = reader.next_request()
    while request is not None:
        ids, token = model.answer(request.window.lower, request.window.upper, request.token)
        outcome = reader.receive(ids, token)
        emitted.extend(ids[i] for i in outcome.emit)
        if outcome.checkpoint is not None:
            checkpoints.append(outcome.checkpoint)
            if stop_after is not None and len(checkpoints) >= stop_after:
                break
        request = reader.next_request()
    return emitted, checkpoints


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows_strategy, events=events_strategy, start=st.integers(0, 20), width=st.none() | st.integers(1, 400))
def test_given_edits_deletes_and_inserts_between_pages_when_reading_windows_then_no_row_is_lost_or_repeated(
    rows: List[Tuple[int, int]], events: List[Tuple[str, int]], start: int, width: Optional[int]
) -> None:
    model = Model(rows={f"r{i}": row for i, row in enumerate(rows)}, events=list(events))
    expected = {rid for rid, (upd, _) in model.rows.items() if start <= upd <= END}
    reader = WindowReader(start=start, end=END, width=width, target=PAGE - 1)
    try:
        emitted, checkpoints = read(model, reader)
    except WindowUnstable:
        assert len(events) >= MAX_PASSES - 1  # only when rows left a paged millisecond in (almost) every pass
        return
    assert len(emitted) == len(set(emitted))
    assert expected - model.touched <= set(emitted)
    assert set(emitted) <= expected  # nothing from outside [start, END]: edited rows are read by the next sync
    assert checkpoints == sorted(set(checkpoints))
    assert (checkpoints[-1] if checkpoints else None) == (END if start <= END else None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows_strategy, events=events_strategy, kill_after=st.integers(1, 6))
def test_given_a_read_killed_after_a_checkpoint_when_resumed_from_it_then_no_row_is_lost(
    rows: List[Tuple[int, int]], events: List[Tuple[str, int]], kill_after: int
) -> None:
    model = Model(rows={f"r{i}": row for i, row in enumerate(rows)}, events=list(events))
    expected = {rid for rid, (upd, _) in model.rows.items() if upd <= END}
    first = WindowReader(start=0, end=END, target=PAGE - 1)
    try:
        emitted, checkpoints = read(model, first, stop_after=kill_after)
        resumed = WindowReader(start=0, end=END, cursor=first.cursor, width=first.width, target=PAGE - 1)
        more, _ = read(model, resumed)
    except WindowUnstable:
        assert len(events) >= MAX_PASSES - 1
        return
    assert expected - model.touched <= set(emitted) | set(more)
    assert not set(emitted) & set(more) or checkpoints  # repeats only of the window the kill interrupted
    assert resumed.cursor == END


def test_given_a_window_that_did_not_fit_when_the_answer_has_a_next_page_then_it_is_read_again_narrower() -> None:
    reader = WindowReader(start=0, end=799, target=40)
    first = reader.next_request()
    assert first is not None and (first.window.lower, first.window.upper, first.token) == (0, 799, None)
    outcome = reader.receive([f"t{i}" for i in range(50)], "next")
    assert outcome.emit == [] and outcome.checkpoint is None
    second = reader.next_request()
    narrower = 800 // SHRINK
    assert second is not None and (second.window.lower, second.window.upper, second.token) == (0, narrower - 1, None)
    done = reader.receive(["a", "b"], None)
    assert done.emit == [0, 1] and done.checkpoint == narrower - 1
    third = reader.next_request()
    assert third is not None and third.window.lower == narrower


def test_given_one_millisecond_with_more_than_a_page_when_read_then_it_is_paged_until_two_passes_agree() -> None:
    reader = WindowReader(start=5, end=5)
    answers = [(["a", "b"], "p2"), (["c"], None), (["a", "b"], "p2"), (["c"], None)]
    outcomes = []
    for ids, token in answers:
        request = reader.next_request()
        assert request is not None and request.window.width == 1
        outcomes.append(reader.receive(ids, token))
    assert [o.emit for o in outcomes] == [[0, 1], [0], [], []]
    assert [o.checkpoint for o in outcomes] == [None, None, None, 5]
    assert reader.next_request() is None


def test_next_width_aims_at_the_target_within_bounds() -> None:
    assert next_width(100, None) == 800
    assert next_width(100, 0.0) == 800
    assert next_width(100, 0.8, target=40) == 50
    assert next_width(100, 4.0, target=40) == 25
    assert next_width(100, 0.1, target=40) == 400
    assert next_width(1, 50.0, target=40) == 1
