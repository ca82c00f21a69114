"""The S&E full-refresh list reader (source_bill/spend_core.ListReader) against a model of S&E's offset paging.

The model holds a list of ids and answers a cursor with the rows at its offset, as S&E does (the cursor is base64
of ``arrayconnection:<offset>``, or an opaque string); between any two answers it applies the next of a random list
of hard deletes and inserts at random places. The property: every row present from the start to the end of the
read is emitted exactly once, and nothing that never was in the list is emitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Set, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from source_bill.spend_core import ListReader, ListUnstable, cursor_at, cursor_offset

PAGE = 5


@dataclass
class Model:
    rows: List[str]
    events: List[Tuple[str, int, int]]  # (delete | insert, where, how many), applied one per answer after the first
    opaque: bool = False
    page: int = PAGE
    served: int = 0
    ever: Set[str] = field(default_factory=set)
    log: List[int] = field(default_factory=list)  # the offset of every answer

    def __post_init__(self) -> None:
        self.initial = list(self.rows)
        self.ever = set(self.rows)

    def answer(self, token: Optional[str]) -> Tuple[List[str], Optional[str]]:
        if self.served and self.events:
            self._change(*self.events.pop(0))
        self.served += 1
        offset = 0 if token is None else (int(token[1:], 16) if self.opaque else cursor_offset(token))
        assert offset is not None, f"the reader sent a cursor S&E never wrote: {token!r}"
        self.log.append(offset)
        page = self.rows[offset : offset + self.page]
        nxt = offset + self.page
        if nxt >= len(self.rows):
            return page, None
        return page, (f"o{nxt:x}" if self.opaque else cursor_at(nxt))

    def _change(self, kind: str, where: int, count: int) -> None:
        for _ in range(count):
            if kind == "delete" and self.rows:
                del self.rows[where % len(self.rows)]
            elif kind == "insert":
                new = f"new{len(self.ever)}"
                self.ever.add(new)
                self.rows.insert(where % (len(self.rows) + 1), new)

    def persistent(self) -> Set[str]:
        return set(self.initial) & set(self.rows)


def read_all(model: Model) -> Tuple[List[str], ListReader]:
    reader = ListReader(page_size=model.page)
    emitted: List[str] = []
    while not reader.done:
        keys, token = model.answer(reader.next_request())
        emitted += [keys[i] for i in reader.receive(keys, token)]
        assert model.served < 10_000, "the read does not end"
    return emitted, reader


events = st.lists(
    st.tuples(st.sampled_from(["delete", "insert"]), st.integers(0, 1_000), st.integers(1, 2 * PAGE + 1)),
    max_size=30,
)


@settings(max_examples=400, deadline=None)
@given(size=st.integers(0, 8 * PAGE + 2), changes=events)
def test_given_deletes_and_inserts_between_pages_when_a_list_is_read_then_every_lasting_row_once(
    size: int, changes: List[Tuple[str, int, int]]
) -> None:
    model = Model([f"r{i}" for i in range(size)], list(changes))
    emitted, _ = read_all(model)
    assert len(emitted) == len(set(emitted))  # nothing twice
    assert model.persistent() <= set(emitted)  # nothing lasting skipped
    assert set(emitted) <= model.ever


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(0, 8 * PAGE + 2),
    change=st.tuples(st.sampled_from(["delete", "insert"]), st.integers(0, 1_000), st.integers(1, 3)),
)
def test_given_opaque_cursors_and_one_change_when_a_list_is_read_then_every_lasting_row_once(
    size: int, change: Tuple[str, int, int]
) -> None:
    model = Model([f"r{i}" for i in range(size)], [change], opaque=True)
    emitted, reader = read_all(model)
    assert reader.opaque == (size > PAGE)
    assert len(emitted) == len(set(emitted))
    assert model.persistent() <= set(emitted)


@pytest.mark.parametrize("size", [0, 1, PAGE, PAGE + 1, 2 * PAGE - 1, 2 * PAGE, 2 * PAGE + 1, 10 * PAGE])
def test_given_a_list_that_does_not_change_when_read_then_one_row_of_overlap_a_page(size: int) -> None:
    model = Model([f"r{i}" for i in range(size)], [])
    emitted, reader = read_all(model)
    assert emitted == model.initial
    # the first page, then size - 1 new rows a page
    assert reader.requests == model.served == (1 if size <= PAGE else 1 + -(-(size - PAGE) // (PAGE - 1)))
    assert model.log[:3] == [0, PAGE - 1, 2 * PAGE - 2][: len(model.log)]
    assert reader.step_backs == 0


def test_given_a_read_row_deleted_before_the_second_page_when_read_then_one_step_back_and_nothing_skipped() -> None:
    model = Model([f"r{i}" for i in range(12)], [("delete", 1, 1)])
    emitted, reader = read_all(model)
    # r0..r4; r1 deleted: offset 4 holds r5 (no row read before), back to 0: r0 r2 r3 r4 r5 -> r5; on from 4
    assert model.log == [0, 4, 0, 4, 8]
    assert emitted == [f"r{i}" for i in range(12)]
    assert reader.step_backs == 1


def test_given_a_row_inserted_before_the_read_position_when_read_then_rows_after_the_anchor_only() -> None:
    model = Model([f"r{i}" for i in range(9)], [("insert", 4, 1)])
    emitted, reader = read_all(model)
    # r0..r4 read; new9 inserted before r4: offset 4 holds new9 r4 r5 r6 r7, the rows after r4 are new
    assert model.log == [0, 4, 8]
    assert emitted == [f"r{i}" for i in range(9)]  # new9 lies before what was read: not emitted, nothing twice
    assert reader.step_backs == 0


def test_given_opaque_cursors_when_read_then_the_list_is_read_twice_and_the_shifted_row_comes_from_the_second() -> None:
    model = Model([f"r{i}" for i in range(8)], [("delete", 0, 1)], opaque=True)
    emitted, reader = read_all(model)
    assert reader.opaque and model.log == [0, 5, 0, 5]
    # r0 deleted after page one: r5 shifts to offset 4, pass one misses it, pass two has it
    assert emitted == ["r0", "r1", "r2", "r3", "r4", "r6", "r7", "r5"]


def test_given_a_cursor_that_does_not_advance_when_read_then_list_unstable() -> None:
    reader = ListReader(page_size=PAGE)
    reader.receive(["a", "b"], cursor_at(1))  # overlap would be offset 0: it asks offset 1
    with pytest.raises(ListUnstable):
        reader.receive(["b", "c"], cursor_at(1))


@pytest.mark.parametrize(
    "token", ["", "bm90IGJhc2U2NA", "b3RoZXI6MTA=", cursor_at(7).rstrip("="), "YXJyYXljb25uZWN0aW9uOi0x"]
)
def test_given_a_cursor_not_of_the_offset_form_then_it_is_opaque(token: str) -> None:
    assert cursor_offset(token) is None
    assert cursor_offset(cursor_at(7)) == 7
