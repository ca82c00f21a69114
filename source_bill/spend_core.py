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

Nothing here does I/O or reads a clock: the stream feeds answers in and gets requests and records out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Set

PAGE_LIMIT = 50  # S&E: at most 50 transactions a page
TARGET_ROWS = 40  # aim each window at this many rows, so a rise in density still fits in a page
SHRINK = 4  # a window that did not fit is read again this many times narrower
GROW_MAX = 8  # a window is at most this many times wider than the last
MAX_PASSES = 6  # passes of one paged millisecond before giving up (rows keep leaving it)


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
