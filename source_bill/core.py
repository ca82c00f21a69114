"""How a BILL list is read without losing a record: the algorithm alone, with no HTTP, no threads and no clock reads.

Everything here works on values handed in: the pages BILL served (:class:`Answer`, with BILL's ``Date`` and this
machine's monotonic times measured by the caller), the saved state, and "now". The driver (``source_bill.streams``)
sends the requests, runs slices in threads and writes Airbyte messages; tests drive the same code with a model of
BILL instead (``unit_tests/test_core_property.py``).

The read, in plain words
------------------------
*Passes.* A stream with ``updatedTime`` is read in passes sorted ``updatedTime:asc`` with a filter fixed when the
pass starts (``updatedTime:gte:"<lower bound>"``), following BILL's ``nextPage`` token to the end.

*Why rows can be skipped.* BILL's page tokens may be plain offsets. A record edited mid-pass gets a new
``updatedTime`` and moves to the end of the sorted list; every row behind its old place moves up by one, and the row
that stood at the next page boundary is never served. The skipped row keeps its old ``updatedTime``: it lies between
the last ``updatedTime`` of the page before the boundary and the first of the page after it.

*Catch-up windows.* Only an edit of a row the pass has already passed can shift rows past a boundary, and such a
row shows itself: the pass reads it twice, at two versions (its id comes back with a later ``updatedTime`` at the end
of the list). So a pass logs, per page, a :class:`PageSeen` (when BILL served it, the highest ``updatedTime`` before
it, its first ``updatedTime``), and the ids it read (as 64-bit hashes, 8 bytes a record). After the main read, if a
record was read twice (:func:`edited_again`, whatever slice each version was in), every page boundary whose earlier
page was served before that record's latest edit is suspect, and the narrow ``updatedTime`` range around each suspect
boundary is read again (a catch-up pass, :func:`catch_up_windows`). A new version can itself be skipped by a later edit
of a row the pass had skipped, so boundaries where the newest records begin (those stamped since the pass began) are
always re-read; they are few. A catch-up pass can itself be shifted: up to ``max_catch_up_passes`` rounds; if edits
still come, the final state stays below the unresolved windows so the next sync reads them again. Records whose
``updatedTime`` goes backwards make the whole pass suspect.

*Two clocks.* "Served before the edit" and "stamped since the pass began" compare BILL's HTTP ``Date`` (a gateway
clock, one-second resolution) with ``updatedTime`` (stamped by the database's clock). Nothing says the two agree: a
gateway ahead of the database by half a second already lost rows when they were compared as one clock. Every such
comparison carries :data:`CLOCK_MARGIN` (5 minutes and the ``Date`` resolution), and the slice bounds stay that far
below the ``Date``, so with the clocks up to 5 minutes apart either way every boundary an edit can have shifted is
still read again, and every edit made during a sliced read lands in its open-ended slice. The margin alone would make
every record edited in the 5 minutes before a read look like an edit made during it, and re-read every boundary of
an active organization's large read; asking that the record was read twice first costs nothing on data that is not
edited during the read, and only the boundaries served within 5 minutes after a real mid-read edit extra. The
property test (``unit_tests/test_core_property.py``) drives this with the clocks 5 minutes apart either way.

Why a margin and not keyset paging (each page asking ``updatedTime:gte:<last emitted>``, which needs no clock): keyset
paging still needs offset tokens inside a group of ties larger than a page (BILL stamps bulk changes with one
instant), where the same shift happens with no clock to say when, so the catch-up machinery stays either way; it
costs a new query and one overlapping record per page on every read; and it would change every request this
connector sends (the tests pin them). The margin keeps the requests of an unedited read at the minimum.

*Slices.* A large stream is read in ``updatedTime`` slices side by side (:func:`plan_slices`): after every page of the
first query, the range left (up to the latest ``Date`` less the margin) is measured in pages of the latest page's
density and, once that is at least two slices' worth, cut into up to ``max_concurrent_requests`` slices. The first
slice continues the first query and stops at its upper bound; the last is open-ended, so records edited during the
read show up in it. When the open slice was not served last, its end is read once more so that edits made after its
last page show up (:func:`served_last`).

*Adaptive slices.* Whenever fewer slices run than there are request slots (one finished, or fewer were planned), the
slice with the most pages left (by its own density so far) is split at the middle of what it has left
(:func:`split_point`): it stops there and a new slice reads the upper part. The open slice can be split too, below the
latest ``Date`` less the margin; the new slice is then the open one. Every slice logs its pages for the catch-up, and
the state counts only emitted ranges.

*State and resume.* After every emitted page the state is the cursor (every record below it has been emitted) plus,
mid-pass, a ``pass`` object: when the pass began (``started``), its lower bound (``lower``), the ranges above the
cursor that slices finished (``read``) and the latest edit seen (``edit``) (:func:`format_state`, :func:`parse_state`).
A resumed read reads only the gaps around ``read``. The interrupted pass's ids and page timings are gone: if it
had seen an edit (``edit``), or the resumed read sees a record stamped since that pass began (by the margin) above
everything that pass had read, the ranges that pass covered are read again. A finished sync
leaves only the cursor.
"""

from __future__ import annotations

import logging
import math
from array import array
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Callable, Dict, Generator, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar

from . import errors
from .config import config_error
from .errors import Action, Rule
from .secrets import masked_excerpt
from .timeutil import format_instant, parse_instant

CURSOR = "updatedTime"
LOGGER = logging.getLogger("airbyte")
DATE_RESOLUTION = timedelta(seconds=1)  # HTTP Date headers have one-second resolution
CLOCK_SKEW = timedelta(minutes=5)  # how far BILL's Date may be from the updatedTime clock, either way
CLOCK_MARGIN = CLOCK_SKEW + DATE_RESOLUTION
FUTURE_TOLERANCE = timedelta(days=1)
SLICE_MIN_PAGES = 5  # a stream is cut into slices only when each would hold about this many pages or more
SPLIT_MIN_PAGES = 4  # a running slice is split only when it has about this many pages left or more

Record = Mapping[str, Any]
# an updatedTime range: from (gte; None = the beginning), to (None = open)
Window = Tuple[Optional[datetime], Optional[datetime]]
T = TypeVar("T")
# runs iterators side by side; yields (index, item) as items come and (index, None) when one ends
FanIn = Callable[[Sequence[Iterator[T]]], Iterator[Tuple[int, Optional[T]]]]


@dataclass(frozen=True)
class Query:
    """The fixed part of one pass's requests: a sorted ``updatedTime`` range, or the plain list (``ranged=False``)."""

    lower: Optional[datetime] = None
    upper: Optional[datetime] = None
    upper_exclusive: bool = False
    ranged: bool = True

    def params(self) -> Dict[str, str]:
        if not self.ranged:
            return {}
        params = {"sort": f"{CURSOR}:asc"}
        filters = []
        if self.lower is not None:
            filters.append(f'{CURSOR}:gte:"{format_instant(self.lower)}"')
        if self.upper is not None:
            filters.append(f'{CURSOR}:{"lt" if self.upper_exclusive else "lte"}:"{format_instant(self.upper)}"')
        if filters:
            params["filters"] = ",".join(filters)
        return params


PLAIN = Query(ranged=False)


@dataclass(frozen=True)
class Answer:
    """One page as BILL served it, with the times the caller measured."""

    records: List[Record]
    next_page: Optional[str]  # BILL's nextPage; None at the end
    served: datetime  # BILL's clock (the Date header), or this machine's wall clock when BILL sent none
    sent: float = 0.0  # this machine's monotonic clock before the request left
    answered: float = 0.0  # ... and once its answer was read


# sends one request of a pass: the query and the page token (None for the first page)
Fetch = Callable[[Query, Optional[str]], Answer]


@dataclass(frozen=True)
class PageSeen:
    """What a pass noted of one page, to tell later whether rows can have been skipped at the boundary before it."""

    served: datetime  # BILL's Date when it served the page
    high_before: Optional[datetime]  # the highest updatedTime the pass had read before this page
    first: Optional[datetime]  # this page's first updatedTime (None when the page held none)
    late: bool = False  # the page begins with a record stamped since the pass began (by CLOCK_MARGIN)


@dataclass(frozen=True)
class Page:
    """Records to emit, and what is known once they are emitted (never changed after it is made)."""

    records: List[Record]
    state: Optional[Dict[str, Any]] = None  # the stream's state once these records are emitted
    has_more: bool = False  # BILL gave a nextPage after this one
    high: Optional[datetime] = None  # the pass's highest updatedTime once these records are read
    edit: Optional[datetime] = None  # the latest edit that pass had seen by then


@dataclass(frozen=True)
class Resumed:
    """What a mid-pass state says of the interrupted pass: when it began, its lower bound, the ranges above the
    saved cursor it had read in full, and the latest edit it had seen."""

    started: datetime
    lower: Optional[datetime]
    read: List[Window]
    edit: Optional[datetime]
    cursor: datetime

    @property
    def seen(self) -> datetime:
        """Below this the interrupted pass had read everything it would ever see of its own edits: its open slice's
        progress (the highest of the cursor and the ranges read), which every edit made during it lands above (slice
        bounds stay below BILL's clock's "now")."""
        return max([self.cursor, *(high for _, high in self.read if high is not None)])


@dataclass(frozen=True)
class Start:
    """Where a read begins: its lower bound, and the interrupted pass it resumes (if the state is mid-pass)."""

    lower: Optional[datetime]
    resumed: Optional[Resumed] = None
    warning: Optional[str] = None  # to log: the saved state was not used as it is


# --- window arithmetic ------------------------------------------------------------------------------------------


def merge(windows: Sequence[Window]) -> List[Window]:
    """Overlapping or touching ranges joined, sorted by their lower end."""

    def low(w: Window) -> datetime:
        return w[0] or datetime.min.replace(tzinfo=UTC)

    merged: List[Window] = []
    for window in sorted(windows, key=low):
        if merged:
            last = merged[-1]
            if last[1] is None or low(window) <= last[1]:
                upper = None if last[1] is None or window[1] is None else max(last[1], window[1])
                merged[-1] = (last[0], upper)
                continue
        merged.append(window)
    return merged


def gaps(lower: Optional[datetime], read: Sequence[Window]) -> List[Window]:
    """What is left to read above ``lower`` when the (merged, sorted) ranges ``read`` are done; the last is open."""
    left: List[Window] = []
    start = lower
    for low, high in read:
        left.append((start, low))
        start = high
    left.append((start, None))
    return left


@dataclass(frozen=True)
class Span:
    """One slice of the main read, as far as its records have been emitted (not merely fetched)."""

    lower: Optional[datetime]  # gte; None = the beginning
    upper: Optional[datetime]  # lt; None = open-ended
    emitted: Optional[datetime] = None  # the highest updatedTime of the records emitted so far
    finished: bool = False

    def covered(self) -> Optional[Window]:
        """The range whose records have all been emitted (the upper end excluded: ties may follow)."""
        if self.finished and self.upper is not None:
            return (self.lower, self.upper)
        if self.emitted is not None and (self.lower is None or self.emitted > self.lower):
            return (self.lower, self.emitted)
        return None


def covered(spans: Sequence[Span], carried: Sequence[Window]) -> List[Window]:
    """Every range read so far: the slices' emitted progress and what an interrupted pass had finished, merged."""
    return merge([*carried, *(window for span in spans if (window := span.covered()) is not None)])


def cursor_and_rest(lower: Optional[datetime], read: Sequence[Window]) -> Tuple[Optional[datetime], List[Window]]:
    """The state's cursor (everything below it was read) and the ranges above it that were read too."""
    if read and (read[0][0] is None or (lower is not None and read[0][0] <= lower)):
        return read[0][1], list(read[1:])
    return lower, list(read)


# --- what one pass saw ------------------------------------------------------------------------------------------


@dataclass
class PassLog:
    """What one pass saw, to tell whether rows may have shifted under its offset paging, and where.

    Filled only by :meth:`observe`, one page at a time, by the one generator that runs the pass.
    """

    lower: Optional[datetime]
    upper: Optional[datetime] = None
    resumed: Optional[Resumed] = None  # what the interrupted pass this one resumes had done
    late_floor: Optional[datetime] = None  # when edits start to count (default: when this pass began)
    stop_before: Optional[datetime] = None  # a slice that continues another query ends here (exclusive)
    first_served: Optional[datetime] = None
    last_served: Optional[datetime] = None
    high: Optional[datetime] = None  # highest updatedTime read so far
    pages: List[PageSeen] = field(default_factory=list)
    latest_edit: Optional[datetime] = None  # the latest updatedTime stamped (by either clock) since the pass began
    # every record read, as hash(id): those stamped before the pass began, and the late ones with their updatedTime
    read_ids: array[int] = field(default_factory=lambda: array("q"))
    late: List[Tuple[int, datetime]] = field(default_factory=list)
    last_sent: float = 0.0  # this machine's monotonic clock: before its last request was sent
    last_answered: float = 0.0  # ... and once its answer was read
    ordered: bool = True
    _last_raw: Optional[str] = None
    _last_value: Optional[datetime] = None

    def __post_init__(self) -> None:
        self.high = self.lower

    def observe(self, answer: Answer, records: Sequence[Record]) -> None:
        served = answer.served
        if self.first_served is None:
            self.first_served = served
        self.last_served = served
        self.last_sent, self.last_answered = answer.sent, answer.answered
        late_floor = self.edit_floor() - CLOCK_MARGIN
        if self.resumed is not None and self.resumed.seen > late_floor:
            late_floor = self.resumed.seen
        previous = self._last_value
        first: Optional[datetime] = None
        high_before = self.high
        for record in records:
            value = self._instant(record)
            if value is None:
                continue
            if first is None:
                first = value
            if previous is not None and value < previous:
                self.ordered = False
            previous = value
            if self.high is None or value > self.high:
                self.high = value
            if value < late_floor:
                self.read_ids.append(hash(record.get("id")))
                continue
            self.late.append((hash(record.get("id")), value))
            if self.latest_edit is None or value > self.latest_edit:
                self.latest_edit = value
        self.pages.append(PageSeen(served, high_before, first, first is not None and first >= late_floor))

    def _instant(self, record: Record) -> Optional[datetime]:
        raw = record.get(CURSOR)
        if raw is None:
            return None
        if raw == self._last_raw:
            return self._last_value
        try:
            value = parse_instant(raw)
        except ValueError:
            raise errors.traced(
                Rule(Action.FAIL, "BILL sent a record whose updatedTime is not a date-time."),
                f"(id {record.get('id')!r}, updatedTime {raw!r})",
            ) from None
        self._last_raw, self._last_value = raw, value
        return value

    def edit_floor(self) -> datetime:
        floor = self.late_floor or self.first_served
        assert floor is not None
        if self.resumed is not None and self.resumed.started < floor:
            return self.resumed.started
        return floor


def edited_again(logs: Sequence[PassLog]) -> Optional[datetime]:
    """The latest updatedTime of a record that the same read had already read at an earlier version, or None.

    Only such an edit can shift rows under offset paging: the edited row leaves a place the read has passed. A record
    edited before the read began, or edited before the read reached it, or inserted, shows up once and shifts nothing
    the read still has to read. Clock-free: it compares ids, not times. (Records are kept as 64-bit hashes of their
    ids, 8 bytes each; a collision only costs a catch-up read.)
    """
    versions: Dict[int, set[datetime]] = {}
    for log in logs:
        for key, value in log.late:
            versions.setdefault(key, set()).add(value)
    if not versions:
        return None
    again = {key for key, values in versions.items() if len(values) > 1}
    for log in logs:  # a look-up per id read, not a set of them all: memory stays flat on large lists
        again.update(key for key in log.read_ids if key in versions)
    return max((max(versions[key]) for key in again), default=None)


def catch_up_windows(log: PassLog, edited: Optional[datetime], latest_edit: Optional[datetime] = None) -> List[Window]:
    """The updatedTime ranges where rows may have been skipped, merged; empty when none can have been.

    ``edited``: the latest record of the same read that it had read before at an earlier version
    (:func:`edited_again`; it may show up in another slice than the one it shifted). ``latest_edit``: the latest record
    stamped since the pass began, by any slice (what a resumed pass must check against the interrupted one).
    """
    latest = latest_edit or log.latest_edit
    windows: List[Window] = []
    if latest is not None and not log.ordered:
        return [(log.lower, log.upper)]
    if latest is not None and log.resumed is not None:
        # A record read by the interrupted pass, whose page timings and ids are gone, may have been edited while it ran
        # (anything stamped since it began may be such an edit): re-read what that pass covered, from its lower bound up
        # to the cursor it saved, and the ranges above it that its slices had finished.
        windows.append((log.resumed.lower, log.resumed.cursor))
        windows.extend(log.resumed.read)
    # Among the records stamped since the pass began, a new version can itself be skipped (an edit of a row the pass
    # had skipped shifts it), so the edit that reveals it never shows: a boundary where those records begin is
    # suspect whatever the ids say (few: they are the newest records).
    windows.extend((page.high_before, page.first) for page in log.pages[1:] if page.late)
    if edited is not None:
        # A re-read record shows only its last edit; an earlier edit of it may have shifted rows at any boundary since
        # the pass began. So every boundary whose earlier page was served (by BILL's Date, which may run up to
        # CLOCK_MARGIN ahead of the updatedTime clock) before that edit is suspect: one window each.
        suspect_until = edited + CLOCK_MARGIN
        for before, page in zip(log.pages, log.pages[1:], strict=False):
            if before.served <= suspect_until:
                windows.append((page.high_before, page.first))
    return merge(windows)


def served_last(logs: Sequence[PassLog]) -> bool:
    """Was the open-ended slice (the last log) served after every other slice's last page?

    Certain when its last request left after every other slice's last answer came back (cause and effect, on this
    machine's clock), or when BILL's clock (``Date``, one-second resolution) says so. Both compare one clock with
    itself.
    """
    tail, others = logs[-1], logs[:-1]
    if all(tail.last_sent >= other.last_answered for other in others):
        return True
    tail_served = tail.last_served
    served = [log.last_served for log in others if log.last_served is not None]
    return tail_served is not None and all(other + DATE_RESOLUTION <= tail_served for other in served)


# --- the slice plan ---------------------------------------------------------------------------------------------


def plan_slices(log: PassLog, slots: int, min_pages: int = SLICE_MIN_PAGES) -> List[datetime]:
    """Where to cut the rest of a stream read as one query so far, or [] when one query is as good.

    Asked after every page until it says to cut: the pages so far tell how much of the updatedTime range a page holds
    now and how that changes (:class:`Trend`: a stream that is sparse early and dense late is cut once its pages get
    dense, and cut where the records are, not at equal times), and the range left, up to BILL's latest ``Date`` less
    :data:`CLOCK_MARGIN` (an estimate of "now" that is surely not after the updatedTime clock's: the last slice is
    open-ended and every edit made during the read must land in it), is cut into parts of about as many pages each,
    as many as there are request slots, when each would hold about ``min_pages`` pages or more.
    """
    if slots < 2 or not log.pages or log.last_served is None or log.high is None:
        return []
    end = log.last_served - CLOCK_MARGIN
    trend = Trend.of(log, end)
    if trend is None:
        return []
    count = min(slots, int(trend.pages // min_pages))
    if count < 2:
        return []
    return [trend.at(i, count) for i in range(1, count)]


@dataclass(frozen=True)
class Trend:
    """How many pages lie above what a slice has read, up to ``top``, and where a given share of them ends.

    A page's span of updatedTime tells the density (pages a second) there. The density is taken as a straight line
    through the average over the slice's pages (at the middle of the range read) and its latest page (at the top of
    the range read), never below a quarter of the latest: an organization that grew has denser records towards
    today. With an even spread this is the range left times the density, cut at equal times.
    """

    high: datetime
    top: datetime
    left: float  # seconds from high to the top
    latest: float  # pages a second at high
    slope: float  # change of that per second
    pages: float  # pages estimated up to the top

    @classmethod
    def of(cls, log: PassLog, top: datetime) -> Optional[Trend]:
        firsts = [page.first for page in log.pages if page.first is not None]
        if not firsts or log.high is None or log.high <= firsts[0] or top <= log.high:
            return None
        read = (log.high - firsts[0]).total_seconds()
        left = (top - log.high).total_seconds()
        average = len(log.pages) / read
        latest = 1 / max((log.high - firsts[-1]).total_seconds(), read / len(log.pages) / 100)
        slope = (latest - average) / (read / 2)
        slope = max(slope, (latest / 4 - latest) / left)  # the line stays above a quarter of latest up to the top
        return cls(log.high, top, left, latest, slope, latest * left + slope * left * left / 2)

    def at(self, part: int, parts: int) -> datetime:
        """Where the first ``part`` of ``parts`` equal shares of the pages left (from ``high``) end."""
        if abs(self.slope) * self.left < 1e-9 * self.latest:  # an even spread: equal times
            return self.high + (self.top - self.high) / parts * part
        want = part / parts * self.pages
        # latest * x + slope * x**2 / 2 == want, the root in [0, left]
        x = (-self.latest + math.sqrt(max(self.latest**2 + 2 * self.slope * want, 0.0))) / self.slope
        return self.high + timedelta(seconds=min(max(x, 0.0), self.left))


def split_point(spans: Sequence[Span], logs: Sequence[PassLog]) -> Optional[Tuple[int, datetime]]:
    """The slice to split when a request slot frees up, and where; None when none is worth it.

    Each unfinished slice's pages left are estimated from its own pages so far (:class:`Trend`) and the range it has
    left above what it has read: up to its upper bound, or for the open-ended slice up to the latest ``Date`` less
    :data:`CLOCK_MARGIN` (so the new open slice starts below the updatedTime clock's "now" and every edit made from
    here on still shows up in it). The slice with the most pages left, at least :data:`SPLIT_MIN_PAGES`, is cut where
    half of them are estimated to lie.
    """
    served = [log.last_served for log in logs if log.last_served is not None]
    if not served:
        return None
    now_floor = max(served) - CLOCK_MARGIN
    best: Optional[Tuple[float, int, datetime]] = None
    for index, (span, log) in enumerate(zip(spans, logs, strict=True)):
        if span.finished:
            continue
        trend = Trend.of(log, log.stop_before if log.stop_before is not None else now_floor)
        if trend is not None and trend.pages >= SPLIT_MIN_PAGES and (best is None or trend.pages > best[0]):
            best = (trend.pages, index, trend.at(1, 2))
    return None if best is None else (best[1], best[2])


# --- the state codec ----------------------------------------------------------------------------------------------


def format_state(
    cursor: Optional[datetime],
    *,
    lower: Optional[datetime] = None,
    started: Optional[datetime] = None,
    read: Sequence[Window] = (),
    edit: Optional[datetime] = None,
    mid_pass: bool = False,
) -> Dict[str, Any]:
    """The stream state: the cursor, and mid-pass the ``pass`` key (when the pass began and from where, the ranges
    above the cursor it has read in full, the latest edit it saw)."""
    state: Dict[str, Any] = {CURSOR: format_instant(cursor)} if cursor is not None else {}
    if not mid_pass:
        return state
    info: Dict[str, Any] = {"started": format_instant(started)} if started else {}
    if lower is not None:
        info["lower"] = format_instant(lower)
    if read:
        info["read"] = [[format_instant(low), format_instant(high)] for low, high in read if low and high]
    if edit is not None:
        info["edit"] = format_instant(edit)
    state["pass"] = info
    return state


def parse_state(state: Any, stream: str, start_date: Optional[datetime], now: datetime) -> Start:
    """Where an incremental read begins, from the saved state; a config error when the state is corrupt."""
    raw = state.get(CURSOR) if isinstance(state, Mapping) else None
    if not raw:
        return Start(start_date)
    cursor = _state_instant(raw, CURSOR, stream)
    if cursor > now + FUTURE_TOLERANCE:
        return Start(
            start_date,
            warning=f"{stream}: the saved cursor {raw} is in the future; ignoring it and reading from "
            f"{describe(start_date)} so nothing is missed.",
        )
    info = state.get("pass")
    if not isinstance(info, Mapping) or not info.get("started"):
        return Start(cursor)
    started = _state_instant(info["started"], "pass.started", stream)
    pass_lower = _state_instant(info["lower"], "pass.lower", stream) if info.get("lower") else None
    edit = _state_instant(info["edit"], "pass.edit", stream) if info.get("edit") else None
    raw_read = info.get("read") or []
    if not isinstance(raw_read, list) or not all(isinstance(w, list) and len(w) == 2 for w in raw_read):
        raise config_error(
            f"The saved state of stream {stream} has pass.read={masked_excerpt(raw_read, 200)}, which is not a list of "
            "[from, to] date-time pairs. Reset the stream's state (or pass a state from a previous sync of "
            "this connector)."
        )
    read: List[Window] = []
    for low, high in raw_read:
        window = (_state_instant(low, "pass.read", stream), _state_instant(high, "pass.read", stream))
        if cursor < window[0] < window[1]:  # anything else is not above the cursor: read it again
            read.append(window)
    return Start(cursor, Resumed(started, pass_lower, merge(read), edit, cursor))


def _state_instant(raw: Any, key: str, stream: str) -> datetime:
    try:
        return parse_instant(raw)
    except (ValueError, TypeError):
        raise config_error(
            f"The saved state of stream {stream} has {key}={raw!r}, which is not a date-time. "
            "Reset the stream's state (or pass a state from a previous sync of this connector)."
        ) from None


def describe(when: Optional[datetime]) -> str:
    return format_instant(when) if when is not None else "the beginning"


def describe_window(window: Window) -> str:
    upper = f" to {format_instant(window[1])}" if window[1] is not None else ""
    return f"from {describe(window[0])}{upper}"


# --- the read -----------------------------------------------------------------------------------------------------


def _before(record: Record, bound: datetime) -> bool:
    raw = record.get(CURSOR)
    return raw is None or parse_instant(raw) < bound


class RepeatedToken(Exception):
    """BILL sent a nextPage already seen in the same pass (a loop, never followed)."""


@dataclass(frozen=True)
class Reader:
    """One stream's read: passes, slices, catch-up and state, over the requests ``fetch`` sends.

    ``fan_in`` runs slices side by side (threads in the connector, a chosen interleaving in tests); ``may_slice``
    says whether BILL answers slowly enough that more requests in flight pay (the driver measures it).
    """

    stream: str
    fetch: Fetch
    fan_in: FanIn[Page]
    slots: int = 1
    others: Callable[[], int] = lambda: 0  # other streams read side by side now, each holding a slot
    may_slice: Callable[[], bool] = lambda: True
    max_catch_up_passes: int = 2
    adaptive: bool = True
    slice_min_pages: int = SLICE_MIN_PAGES
    logger: logging.Logger = LOGGER

    def free_slots(self) -> int:
        """The request slots this stream may fill now: those other streams read side by side do not hold."""
        return max(1, self.slots - self.others())

    def walk(self, query: Query, log: Optional[PassLog] = None) -> Iterator[Page]:
        """One walk through the list with a fixed query, following nextPage to the end (or the log's stop)."""
        token: Optional[str] = None
        seen_tokens: set[str] = set()
        page_number = 0
        while True:
            page_number += 1
            answer = self.fetch(query, token)
            records, token = answer.records, answer.next_page
            if log is None:
                yield Page(records, has_more=token is not None)
            else:
                if log.stop_before is not None:
                    kept = [r for r in records if _before(r, log.stop_before)]
                    if len(kept) < len(records):
                        records, token = kept, None  # the next slice reads from here on
                log.observe(answer, records)
                yield Page(records, has_more=token is not None, high=log.high, edit=log.latest_edit)
            if token is None:
                return
            if token in seen_tokens:
                raise RepeatedToken(f"nextPage {token!r} came back again (page {page_number})")
            seen_tokens.add(token)

    def read(self, start: Start, incremental: bool) -> Iterator[Page]:
        """The main read from the lower bound, then catch-up reads of the windows where rows may have shifted.

        Pages carry the state to write once their records are emitted (incremental reads only).
        """
        lower, resumed = start.lower, start.resumed
        main = PassLog(lower=lower, resumed=resumed)
        main.latest_edit = edit = resumed.edit if resumed else None
        pass_lower = resumed.lower if resumed else lower
        reading = self._main_read(lower, main)
        try:
            while True:
                page, read, ordered = next(reading)
                if page.edit is not None and (edit is None or page.edit > edit):
                    edit = page.edit
                if incremental and ordered:
                    cursor, above = cursor_and_rest(lower, read)
                    if cursor is not None:
                        started = resumed.started if resumed else main.first_served
                        state = format_state(
                            cursor, lower=pass_lower, started=started, read=above, edit=edit, mid_pass=True
                        )
                        page = replace(page, state=state)
                yield page
        except StopIteration as done:
            logs: List[PassLog] = done.value
        latest_edit = max((log.latest_edit for log in logs if log.latest_edit is not None), default=None)
        again = edited_again(logs)
        windows = merge([w for log in logs for w in catch_up_windows(log, again, latest_edit)])
        rounds = 0
        while windows and rounds < self.max_catch_up_passes:
            rounds += 1
            self.logger.info(
                f"{self.stream}: records changed while this sync paged through them, which can shift rows between "
                f"pages; reading again {', '.join(map(describe_window, windows))} so none is lost "
                f"(catch-up pass {rounds})."
            )
            if incremental:  # an interruption from here on must resume below the windows
                yield Page(records=[], state=format_state(windows[0][0]))
            found: List[Window] = []
            for window in windows:
                log = PassLog(lower=window[0], upper=window[1])
                yield from self.walk(Query(*window), log)
                found.extend(catch_up_windows(log, edited_again([log])))
            windows = merge(found)
        if not incremental:
            return
        final = max((log.high for log in logs if log.high is not None), default=None)
        if windows:
            final = windows[0][0]
            self.logger.warning(
                f"{self.stream}: records kept changing during the sync; the next sync re-reads from "
                f"{describe(final)} so none is lost."
            )
        yield Page(records=[], state=format_state(final))

    def _main_read(
        self, lower: Optional[datetime], main: PassLog
    ) -> Generator[Tuple[Page, List[Window], bool], None, List[PassLog]]:
        """Pages of the main read, each with the ranges whose records have all been emitted by then and whether every
        slice so far read in order; returns the logs of every slice.

        One query following nextPage; for a large stream, after the first page, the rest of its updatedTime range is
        cut into slices read side by side. A pass that resumes an interrupted sliced pass reads only the ranges that
        pass had not finished, side by side.
        """
        if main.resumed is not None and main.resumed.read:
            carried, started = main.resumed.read, main.resumed.started
            left = gaps(lower, carried)
            main.upper = main.stop_before = left[0][1]
            self.logger.info(
                f"{self.stream}: resuming an interrupted sync; {len(carried)} updatedTime range(s) above "
                f"{describe(lower)} were read in full before, reading the {len(left)} range(s) around them."
            )
            logs = [main] + [
                PassLog(lower=a, upper=b, resumed=main.resumed, late_floor=started, stop_before=b) for a, b in left[1:]
            ]
            walks = [self.walk(Query(a, b, upper_exclusive=True), log) for (a, b), log in zip(left, logs, strict=True)]
            spans = [Span(*gap) for gap in left]
            return (yield from self._read_slices(walks, spans, carried, logs))
        first_query = self.walk(Query(lower, None), main)
        span = Span(lower, None)
        bounds: List[datetime] = []
        for page in first_query:
            span = replace(span, emitted=page.high)
            yield page, covered([span], []), main.ordered
            if page.has_more and self.free_slots() > 1 and self.may_slice():
                bounds = plan_slices(main, self.free_slots(), self.slice_min_pages)
                if bounds:
                    break
        if not bounds:
            return [main]
        main.stop_before = main.upper = bounds[0]
        spans = [replace(span, upper=bounds[0])]
        logs = [main]
        walks = [first_query]
        for i, low in enumerate(bounds):
            high = bounds[i + 1] if i + 1 < len(bounds) else None
            log = PassLog(lower=low, upper=high, late_floor=main.edit_floor(), stop_before=high)
            logs.append(log)
            walks.append(self.walk(Query(low, high, upper_exclusive=True), log))
            spans.append(Span(low, high))
        self.logger.info(f"{self.stream}: reading {len(walks)} slices of updatedTime side by side.")
        return (yield from self._read_slices(walks, spans, [], logs))

    def _read_slices(
        self, walks: List[Iterator[Page]], spans: List[Span], carried: Sequence[Window], logs: List[PassLog]
    ) -> Generator[Tuple[Page, List[Window], bool], None, List[PassLog]]:
        """Slices side by side (the last one open-ended), then the open end once more if it did not finish last.

        Whenever fewer than ``slots`` slices run (one finished, or fewer were planned), the slice with the most pages
        left is split
        (:func:`split_point`): it stops at the middle of what it has left and a new slice reads the upper part (the
        open end when the open slice was split). ``fan_in`` picks new slices up from the list it was given.
        """
        last_of_tail: List[Record] = []
        tail = len(walks) - 1  # the open-ended slice
        for index, page in self.fan_in(walks):
            if page is None:
                spans[index] = replace(spans[index], finished=True)
            else:
                spans[index] = replace(spans[index], emitted=page.high)
            # a request slot is free (a slice finished, or fewer were planned): split the slice with most left
            if self.adaptive and sum(not span.finished for span in spans) < self.free_slots():
                if self._split(walks, spans, logs) and spans[-1].upper is None:
                    tail, last_of_tail = len(walks) - 1, []
            if page is None:
                continue
            if index == tail and page.records:
                last_of_tail = page.records
            yield page, covered(spans, carried), all(log.ordered for log in logs)
        if not served_last([log for i, log in enumerate(logs) if i != tail] + [logs[tail]]):
            # Edits made after the open slice's last page can still have shifted rows in the other slices: read the
            # open end once more, so such edits show up (without repeating what that page held).
            seen = {(r.get("id"), r.get(CURSOR)) for r in last_of_tail}
            for page in self.walk(Query(logs[tail].high, None), logs[tail]):
                fresh = [r for r in page.records if (r.get("id"), r.get(CURSOR)) not in seen]
                spans[tail] = replace(spans[tail], emitted=page.high)
                yield replace(page, records=fresh), covered(spans, carried), all(log.ordered for log in logs)
        return logs

    def _split(self, walks: List[Iterator[Page]], spans: List[Span], logs: List[PassLog]) -> bool:
        point = split_point(spans, logs)
        if point is None:
            return False
        index, middle = point
        old_upper = spans[index].upper
        # the running walk reads this log's stop_before before keeping each page's records (one attribute write)
        logs[index].stop_before = logs[index].upper = middle
        spans[index] = replace(spans[index], upper=middle)
        log = PassLog(lower=middle, upper=old_upper, late_floor=logs[index].edit_floor(), stop_before=old_upper)
        logs.append(log)
        spans.append(Span(middle, old_upper))
        walks.append(self.walk(Query(middle, old_upper, upper_exclusive=True), log))
        self.logger.info(f"{self.stream}: a slice finished; splitting another at {format_instant(middle)}.")
        return True
