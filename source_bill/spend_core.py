"""Which ``updatedTime`` windows of Spend & Expense transactions to read, and what the state says (pure).

S&E filters transactions on ``updatedTime`` (``gte``/``lte``) but cannot sort by it, and its page cursors are
offsets. A row edited during a read gets a new ``updatedTime`` and leaves the filtered list; the rows behind it
shift forward, and the one at the next page boundary would be skipped. Hard deletes shift rows the same way.

So the reader asks for closed windows ``[lower, upper]`` (milliseconds, both ends included) whose upper end lies
in the past, sized to fit in one page: one answer is one atomic view of the window, with no page cursor to go
stale. Rows never enter such a window during the read (an edit or an insert gets ``updatedTime`` = now, after
the window), so a window read in one page holds every row it had. A window that does not fit in one page
is read again narrower; one a single millisecond wide that still does not fit is paged through with ``nextPage``
and read again until two passes in a row return the same ids (a row that left during a pass is missing from
the next one, so two equal passes mean none left during the first: nothing was skipped).

The window widths adapt to the density of the rows seen so far. The state is saved only when a window is
complete: ``{"updatedTime": <upper end of the last complete window>, "window_ms": <width to try next>}``.

The full-refresh lists (cards, users, budgets, ...) have no time filter, so ``ListReader`` reads them with one row
of overlap instead: each page after the first is asked from the offset of the previous page's last row. A page that
holds no row read before means rows were deleted before the read position (the rows read so far moved back): the
reader steps back a page at a time until it finds one, so no row is skipped; rows already emitted are left out.

Nothing here does I/O or reads a clock: the stream feeds answers in and gets requests and records out.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Set

PAGE_LIMIT = 50  # S&E: at most 50 transactions a page
TARGET_ROWS = 40  # aim each window at this many rows, so a rise in density still fits in a page
SHRINK = 4  # a window that did not fit is read again this many times narrower
GROW_MAX = 8  # a window is at most this many times wider than the last
MAX_PASSES = 6  # passes of one paged millisecond before giving up (rows keep leaving it)
MAX_STEP_BACKS = 200  # steps back in one list read before giving up (rows keep being deleted before the read)
CURSOR_PREFIX = "arrayconnection:"  # S&E's cursors: base64 of this and an offset


@dataclass(frozen=True)
class Window:
    lower: int  # epoch milliseconds, included
    upper: int  # epoch milliseconds, included

    @property
    def width(self) -> int:
        return self.upper - self.lower + 1


@dataclass(frozen=True)
class Request:
    window: Window
    token: Optional[str] = None  # S&E's nextPage, for a paged millisecond only


@dataclass(frozen=True)
class Outcome:
    emit: List[int]  # indexes of the answer's rows to emit (rows already emitted in this window are left out)
    checkpoint: Optional[int] = None  # the window is complete: the new cursor (its upper end)


class WindowUnstable(Exception):
    """Rows kept leaving a one-millisecond window while it was paged through."""


def next_width(width: int, density: Optional[float], target: int = TARGET_ROWS) -> int:
    """The width to try after a window of ``width`` ms, given the rows per ms seen lately (None: unknown)."""
    if not density:
        return width * GROW_MAX
    return max(1, min(width * GROW_MAX, max(width // 4, int(target / density))))


@dataclass
class WindowReader:
    """Reads ``[start, end]`` window by window; ``cursor`` (if any) says everything up to it was read before."""

    start: int
    end: int
    cursor: Optional[int] = None
    width: Optional[int] = None  # None: the first window spans the whole range
    target: int = TARGET_ROWS  # rows to aim a window at (a little under the page size)
    page_limit: int = PAGE_LIMIT
    density: Optional[float] = None  # rows per ms lately (a moving average), None until a window is read
    windows_done: int = 0
    splits: int = 0
    _window: Optional[Window] = None
    _full_upper: Optional[int] = None  # [next lower, this] is known to hold more than a page
    _token: Optional[str] = None
    _paging: bool = False
    _pass_ids: Set[str] = field(default_factory=set)
    _previous_pass: Optional[Set[str]] = None
    _emitted: Set[str] = field(default_factory=set)
    _tokens: Set[str] = field(default_factory=set)
    _passes: int = 0

    def next_request(self) -> Optional[Request]:
        if self._window is None:
            lower = self.start if self.cursor is None else max(self.start, self.cursor + 1)
            if lower > self.end:
                return None
            width = self.width if self.width else self.end - lower + 1
            self._window = Window(lower, min(self.end, lower + max(1, width) - 1))
        return Request(self._window, self._token)

    def receive(self, ids: Sequence[str], next_token: Optional[str]) -> Outcome:
        """The answer to the last request: the ids of its rows, in order, and its nextPage (None at the end)."""
        window = self._window
        assert window is not None, "receive() before next_request()"
        if not self._paging:
            if next_token is None:
                return self._complete(window, len(ids), list(range(len(ids))))
            if window.width > 1:  # did not fit in one page: read it again narrower
                self.splits += 1
                self._window = None
                self._full_upper = window.upper
                if self.density is None:  # nothing known yet: narrow down fast
                    self.width = max(1, window.width // SHRINK)
                else:  # more than a page: at least this dense, so aim under the target at that density
                    self.density = max(self.density, (self.page_limit + 1) / window.width)
                    self.width = max(1, min(window.width - 1, int(self.target / self.density)))
                return Outcome(emit=[])
            self._paging = True  # one millisecond holds more than a page: page through it, twice or more
            self._passes = 1
        return self._paged(window, ids, next_token)

    def _paged(self, window: Window, ids: Sequence[str], next_token: Optional[str]) -> Outcome:
        emit = [i for i, row_id in enumerate(ids) if row_id not in self._emitted]
        self._emitted.update(ids)
        self._pass_ids.update(ids)
        if next_token is not None:
            if next_token in self._tokens:
                raise WindowUnstable(f"S&E sent the page cursor {next_token!r} twice in one pass")
            self._tokens.add(next_token)
            self._token = next_token
            return Outcome(emit=emit)
        finished = self._pass_ids
        self._pass_ids, self._tokens, self._token = set(), set(), None
        if finished == self._previous_pass:  # two passes in a row saw the same rows: none left, none skipped
            self._paging, self._passes, self._previous_pass, self._emitted = False, 0, None, set()
            return self._complete(window, len(finished), emit)
        if self._passes >= MAX_PASSES:
            raise WindowUnstable(f"rows kept leaving the window {window} during {MAX_PASSES} passes")
        self._previous_pass = finished
        self._passes += 1
        return Outcome(emit=emit)

    def _complete(self, window: Window, rows: int, emit: List[int]) -> Outcome:
        self.windows_done += 1
        self.cursor = window.upper
        seen = rows / window.width
        self.density = seen if self.density is None else self.density + (seen - self.density) / 4
        self.width = next_width(window.width, self.density, self.target)
        self._window = None
        full = self._full_upper
        if full is not None and rows == 0 and window.upper < full:
            # the rows that overflowed a wider window lie further on: narrow down on them, never read it all again
            self.width = min(self.width, max(1, (full - window.upper) // SHRINK))
        else:
            self._full_upper = None
        return Outcome(emit=emit, checkpoint=window.upper)


class ListUnstable(Exception):
    """A list read did not move forward: the cursor did not advance, or rows kept being deleted before it."""


def cursor_offset(token: str) -> Optional[int]:
    """The offset of an S&E cursor, base64 of ``arrayconnection:<offset>``; None when it has another form (then
    it is opaque: the reader cannot write cursors of its own)."""
    try:
        text = base64.b64decode(token, validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    number = text.removeprefix(CURSOR_PREFIX)
    if number == text or not number.isdigit():
        return None
    offset = int(number)
    return offset if cursor_at(offset) == token else None  # only a form this module writes back the same way


def cursor_at(offset: int) -> str:
    return base64.b64encode(f"{CURSOR_PREFIX}{offset}".encode("ascii")).decode("ascii")


@dataclass
class ListReader:
    """Reads a whole list whose ``nextPage`` cursors are offsets, so that no row present from the start to the end
    of the read is skipped or emitted twice, whatever rows are deleted or inserted between two answers.

    Each answer's rows are matched by key against the rows emitted so far. Rows keep their relative order, so all
    rows before the last emitted row (in the list as it is now) were emitted; the rows after it in a page are new.
    A page with no emitted row at an offset above 0 lies past that row: the reader steps back ``page_size`` rows.
    A cursor of another form (opaque) is followed as given; then the list is read a second time and the rows the
    first pass missed are emitted (``opaque`` says so).
    """

    page_size: int
    requests: int = 0
    step_backs: int = 0
    opaque: bool = False  # a cursor was not an offset: plain paging, and a second pass
    _offset: int = 0  # offset of the next request (cursor mode)
    _token: Optional[str] = None  # the next request's cursor as S&E sent it (opaque mode)
    _pass: int = 1
    _done: bool = False
    _emitted: Set[str] = field(default_factory=set)
    _tokens: Set[str] = field(default_factory=set)  # cursors followed in this pass (opaque mode)

    def next_request(self) -> Optional[str]:
        """``None`` for the first page, else the ``nextPage`` to send (call while not ``done``)."""
        assert not self._done, "next_request() after the list was read"
        if self.opaque:
            return self._token
        return cursor_at(self._offset) if self._offset else None

    @property
    def done(self) -> bool:
        return self._done

    def receive(self, keys: Sequence[str], next_token: Optional[str]) -> List[int]:
        """The answer to the last request: its rows' keys in order and its ``nextPage``; the indexes to emit."""
        self.requests += 1
        if self.opaque:
            return self._plain(keys, next_token)
        offset = self._offset
        last_known = max((i for i, key in enumerate(keys) if key in self._emitted), default=-1)
        if last_known < 0 and offset > 0:  # the rows read so far moved back before this page: deletes
            self.step_backs += 1
            if self.step_backs > MAX_STEP_BACKS:
                raise ListUnstable(f"rows kept being deleted before the read position ({MAX_STEP_BACKS} steps back)")
            self._offset = max(0, offset - self.page_size)
            return []
        emit = self._new(keys, last_known + 1)
        if next_token is None:
            self._done = True
            return emit
        next_offset = cursor_offset(next_token)
        if next_offset is None:
            self.opaque, self._token, self._tokens = True, next_token, {next_token}
            return emit
        overlap = next_offset - 1  # the page's last row comes first again: it anchors the next page
        if overlap <= offset:
            overlap = next_offset
        if overlap <= offset:
            raise ListUnstable(f"the cursor {next_token!r} does not move past offset {offset}")
        self._offset = overlap
        return emit

    def _plain(self, keys: Sequence[str], next_token: Optional[str]) -> List[int]:
        emit = self._new(keys, 0)
        if next_token is not None:
            if next_token in self._tokens:
                raise ListUnstable(f"the cursor {next_token!r} came back again")
            self._tokens.add(next_token)
            self._token = next_token
        elif self._pass == 1:  # a row shifted past a page boundary by a delete is in the second pass
            self._pass, self._token, self._tokens = 2, None, set()
        else:
            self._done = True
        return emit

    def _new(self, keys: Sequence[str], start: int) -> List[int]:
        emit = []
        for i in range(start, len(keys)):
            if keys[i] not in self._emitted:
                self._emitted.add(keys[i])
                emit.append(i)
        return emit
