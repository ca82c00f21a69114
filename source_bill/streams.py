"""BILL v3 lists as Airbyte streams: one base owns paging, state and the protocol; each object is a few lines.

Paging: always ``max=100``; BILL's ``nextPage`` goes back as ``page``; records come from ``results``; the list
ends when ``nextPage`` is absent, null or ""; an empty page that still has a ``nextPage`` is followed; a
``nextPage`` seen before in the same pass is an error, never a loop.

Streams with ``updatedTime`` read in passes sorted ``updatedTime:asc``, with the filter
``updatedTime:gte:"<lower bound>"`` fixed when the pass starts. BILL's page tokens may be plain offsets,
so a record edited mid-pass moves to the end of the list and shifts the rows behind it by one: the row
at the next page boundary would be skipped. Edited rows reveal themselves (their ``updatedTime`` is
later than the moment the pass began, by BILL's own clock from the ``Date`` header), so the pass knows
at which page boundaries rows may have shifted and reads the narrow ``updatedTime`` range around each of
them again (a catch-up pass). See docs/integrations/sources/bill.md, "How no record is lost".
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Dict, Iterable, Iterator, List, Mapping, MutableMapping, Optional, Tuple, Union

import requests
from airbyte_cdk.models import AirbyteMessage, AirbyteRecordMessage, SyncMode
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.sources.streams.http import HttpStream
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from . import errors, jsonparse
from .client import BillClient
from .config import BillConfig, config_error
from .errors import Action, Rule
from .secrets import masked_excerpt
from .timeutil import format_instant, parse_http_date, parse_instant, utcnow

CURSOR = "updatedTime"
PAGE_SIZE = 100
FULL_REFRESH_DONE = {"__ab_no_cursor_state_message": True}
DATE_RESOLUTION = timedelta(seconds=1)  # HTTP Date headers have one-second resolution
FUTURE_TOLERANCE = timedelta(days=1)


@dataclass
class Page:
    records: List[Mapping[str, Any]]
    state: Optional[Dict[str, Any]] = None  # the stream's state once these records are emitted
    has_more: bool = False  # BILL gave a nextPage after this one
    high: Optional[datetime] = None  # the reading pass's highest updatedTime once these records are read
    edit: Optional[datetime] = None  # the latest edit that pass had seen by then


# an updatedTime range: from (gte; None = the beginning), to (lte; None = open)
Window = Tuple[Optional[datetime], Optional[datetime]]


@dataclass
class Resumed:
    """What a mid-pass state says of the interrupted pass: when it began, its lower bound, the ranges above the
    saved cursor it had read in full, and the latest edit it had seen."""

    started: datetime
    lower: Optional[datetime]
    read: List[Window]
    edit: Optional[datetime]


@dataclass
class PassTracker:
    """What one pass saw, to tell whether rows may have shifted under its offset paging, and where.

    With offset tokens, an edit between the serving of pages k-1 and k moves the edited row to the end
    and shifts the rest left: the rows skipped are those that stood at the boundary, so their updatedTime
    lies between the last of page k-1 and the first of page k. The edited row itself shows up at the end
    with an updatedTime after the pass began (BILL's clock, from the ``Date`` header, one-second
    resolution), which says until when boundaries may have been hit.
    """

    lower: Optional[datetime]
    upper: Optional[datetime] = None
    resumed: Optional[Resumed] = None  # what the interrupted pass this one resumes had done
    first_served: Optional[datetime] = None
    high: Optional[datetime] = None  # highest updatedTime read so far
    # per page: (served at, highest updatedTime before it, its first updatedTime or None when empty)
    pages: List[Tuple[datetime, Optional[datetime], Optional[datetime]]] = field(default_factory=list)
    latest_edit: Optional[datetime] = None  # the latest updatedTime at or after the pass began, if any
    late_floor: Optional[datetime] = None  # when edits start to count (default: when this pass began)
    stop_before: Optional[datetime] = None  # a slice that continues another query ends here (exclusive)
    last_served: Optional[datetime] = None
    last_sent_local: float = 0.0  # this machine's monotonic clock: before its last request was sent
    last_answered_local: float = 0.0  # ... and once its answer was read
    ordered: bool = True
    _last_raw: Optional[str] = None
    _last_value: Optional[datetime] = None

    def __post_init__(self) -> None:
        self.high = self.lower

    def observe(self, served: datetime, records: List[Mapping[str, Any]]) -> None:
        if self.first_served is None:
            self.first_served = served
        self.last_served = served
        late_floor = self.edit_floor()
        previous = self._last_value
        first: Optional[datetime] = None
        high_before = self.high
        for record in records:
            raw = record.get(CURSOR)
            if raw is None:
                continue
            if raw == self._last_raw:
                value = self._last_value
            else:
                try:
                    value = parse_instant(raw)
                except ValueError:
                    raise errors.traced(
                        Rule(Action.FAIL, "BILL sent a record whose updatedTime is not a date-time."),
                        f"(id {record.get('id')!r}, updatedTime {raw!r})",
                    ) from None
                self._last_raw, self._last_value = raw, value
            assert value is not None
            if first is None:
                first = value
            if previous is not None and value < previous:
                self.ordered = False
            previous = value
            if self.high is None or value > self.high:
                self.high = value
            if value >= late_floor and (self.latest_edit is None or value > self.latest_edit):
                self.latest_edit = value
        self.pages.append((served, high_before, first))

    def edit_floor(self) -> datetime:
        floor = self.late_floor or self.first_served
        assert floor is not None
        if self.resumed is not None and self.resumed.started < floor:
            return self.resumed.started
        return floor

    def shifted_windows(self, latest_edit: Optional[datetime] = None) -> List[Window]:
        """The updatedTime ranges where rows may have been skipped, merged; empty when none can have been.

        ``latest_edit``: the latest edit seen by any slice of the same read (edited rows show up only in the
        open-ended slice, but shift rows in every slice).
        """
        latest = latest_edit or self.latest_edit
        if latest is None:
            return []
        if not self.ordered:
            return [(self.lower, self.upper)]
        windows: List[Window] = []
        if self.resumed is not None:
            # Any of these records may also have been edited while the interrupted pass ran, whose page timings
            # are gone: re-read what that pass covered, from its lower bound up to the cursor it saved, and the
            # ranges above it that its slices had finished.
            windows.append((self.resumed.lower, self.lower))
            windows.extend(self.resumed.read)
        # A late record shows only its last edit; an earlier edit of the same record may have shifted rows at
        # any boundary since the pass began. So every boundary whose earlier page was served before the latest
        # edit seen is suspect: one narrow window each.
        for k in range(1, len(self.pages)):
            if self.pages[k - 1][0] <= latest:
                _, high_before, first = self.pages[k]
                windows.append((high_before, first))
        return _merge(windows)


def _merge(windows: List[Window]) -> List[Window]:
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


SLICE_MIN_PAGES = 10  # a stream is cut into slices only when each would hold about this many pages or more
# ... and only when BILL's fastest answer so far took at least this long: below it the connector's own CPU, not the
# wait for BILL, bounds the read, and more requests in flight only cost CPU (measured at zero latency: +30 % CPU and
# a slower read)
SLICE_MIN_ROUND_TRIP_S = 0.01


def _before(record: Mapping[str, Any], bound: datetime) -> bool:
    raw = record.get(CURSOR)
    return raw is None or parse_instant(raw) < bound


@dataclass
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


def _covered(spans: List[Span], carried: List[Window]) -> List[Window]:
    """Every range read so far: the slices' emitted progress and what an interrupted pass had finished, merged."""
    return _merge([*carried, *(window for span in spans if (window := span.covered()) is not None)])


def _cursor_and_rest(lower: Optional[datetime], covered: List[Window]) -> Tuple[Optional[datetime], List[Window]]:
    """The state's cursor (everything below it was read) and the ranges above it that were read too."""
    if covered and (covered[0][0] is None or (lower is not None and covered[0][0] <= lower)):
        return covered[0][1], covered[1:]
    return lower, covered


def _gaps(lower: Optional[datetime], read: List[Window]) -> List[Window]:
    """What is left to read above ``lower`` when the (merged, sorted) ranges ``read`` are done; the last is open."""
    gaps: List[Window] = []
    start = lower
    for low, high in read:
        gaps.append((start, low))
        start = high
    gaps.append((start, None))
    return gaps


def _served_last(trackers: List[PassTracker]) -> bool:
    """Was the open-ended slice's last page served after every other slice's last page?

    Certain when its last request left after every other slice's last answer came back (cause and effect, on
    this machine's clock), or when BILL's clock (``Date``, one-second resolution) says so.
    """
    tail, others = trackers[-1], trackers[:-1]
    if all(tail.last_sent_local >= other.last_answered_local for other in others):
        return True
    tail_served = tail.last_served
    served = [t.last_served for t in others if t.last_served is not None]
    return tail_served is not None and all(other + DATE_RESOLUTION <= tail_served for other in served)


def _side_by_side(generators: List[Iterator[Page]]) -> Iterator[Tuple[int, Optional[Page]]]:
    """Drive page generators in threads; yields (index, page) as pages come and (index, None) when one ends."""
    out: queue.Queue[Tuple[int, Optional[Page], Optional[BaseException]]] = queue.Queue(maxsize=8)
    stop = threading.Event()

    def put(item: Tuple[int, Optional[Page], Optional[BaseException]]) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def drive(index: int, pages: Iterator[Page]) -> None:
        try:
            for page in pages:
                if stop.is_set():
                    return
                put((index, page, None))
            put((index, None, None))
        except BaseException as exc:  # handed to the reading thread, which raises it
            put((index, None, exc))

    threads = [
        threading.Thread(target=drive, args=(i, g), daemon=True, name=f"bill-slice-{i}")
        for i, g in enumerate(generators)
    ]
    for thread in threads:
        thread.start()
    remaining = len(threads)
    try:
        while remaining:
            index, page, error = out.get()
            if error is not None:
                raise error
            if page is None:
                remaining -= 1
            yield index, page
    finally:
        stop.set()


class BillStream(HttpStream, ABC):
    """A BILL v3 list endpoint (GET with max, page, filters, sort; envelope {nextPage, prevPage, results})."""

    primary_key: ClassVar[Union[str, List[str]]] = "id"
    cursor_field: ClassVar[Union[str, List[str]]] = CURSOR
    object_path: ClassVar[str] = ""  # defaults to the stream name with dashes
    extra_params: ClassVar[Mapping[str, str]] = {}
    max_catch_up_passes: ClassVar[int] = 2
    slice_min_round_trip_s: ClassVar[float] = SLICE_MIN_ROUND_TRIP_S
    page_size = PAGE_SIZE

    def __init__(self, client: BillClient, config: BillConfig) -> None:
        self._client = client
        self._config = config
        self._state: MutableMapping[str, Any] = {}
        super().__init__()
        self._http_client = client  # type: ignore[assignment]  # every request goes through the shared client: limits, login, errors

    # --- what HttpStream asks of a stream -------------------------------------------------------------
    @property
    def url_base(self) -> str:
        return f"{self._config.base_url}/v3/"

    def path(self, **kwargs: Any) -> str:
        return self.object_path or self.name.replace("_", "-")

    def request_params(
        self,
        stream_state: Optional[Mapping[str, Any]],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> MutableMapping[str, Any]:
        params: Dict[str, Any] = {"max": self.page_size, **self.extra_params}
        if stream_slice:
            params.update(stream_slice)  # filters and sort, fixed when the pass starts
        if next_page_token:
            params.update(next_page_token)
        return params

    def next_page_token(self, response: requests.Response) -> Optional[Mapping[str, Any]]:
        token = self._envelope(response).get("nextPage")
        if token is None or token == "":
            return None
        if not isinstance(token, str):
            raise self._malformed(response, f"nextPage is {type(token).__name__}, not a string")
        return {"page": token}

    def parse_response(self, response: requests.Response, **kwargs: Any) -> Iterable[Mapping[str, Any]]:
        return self._records(response, page_number=0)

    def request_kwargs(
        self,
        stream_state: Optional[Mapping[str, Any]],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Mapping[str, Any]:
        return {}  # timeouts are set by the client on every request

    @property
    def state(self) -> MutableMapping[str, Any]:
        return self._state

    @state.setter
    def state(self, value: MutableMapping[str, Any]) -> None:
        self._state = dict(value or {})

    # --- reading ----------------------------------------------------------------------------------------
    def read(  # type: ignore[override]
        self,
        configured_stream: Any,
        logger: logging.Logger,
        slice_logger: Any,
        stream_state: MutableMapping[str, Any],
        state_manager: Any,
        internal_config: Any,
    ) -> Iterator[AirbyteMessage]:
        """Records straight to AirbyteMessages, and a STATE message after every page of an incremental read."""
        incremental = configured_stream.sync_mode == SyncMode.incremental and bool(self.cursor_field)
        name = self.name
        for page in self._pages_for(incremental, self.state if incremental else {}, logger):
            emitted_at = time.time_ns() // 1_000_000
            for record in page.records:
                yield AirbyteMessage(
                    type=MessageType.RECORD,
                    record=AirbyteRecordMessage(stream=name, data=record, emitted_at=emitted_at),  # type: ignore[arg-type]
                )
            if page.state is not None and state_manager is not None:
                self._state = page.state
                yield self._checkpoint_state(page.state, state_manager)
        if not incremental and state_manager is not None:
            yield self._checkpoint_state(FULL_REFRESH_DONE, state_manager)

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        incremental = sync_mode == SyncMode.incremental and bool(self.cursor_field)
        for page in self._pages_for(incremental, dict(stream_state or {}), self.logger):
            yield from page.records

    def _pages_for(self, incremental: bool, state: Mapping[str, Any], logger: logging.Logger) -> Iterator[Page]:
        pages = self._passes(incremental, state, logger) if self.cursor_field else self._pass({}, None)
        started = False
        try:
            for page in pages:
                started = True
                yield page
        except errors.StreamUnavailable as exc:
            if started:
                raise errors.traced(
                    Rule(Action.FAIL, f"BILL stopped letting this user read {self.name} in the middle of the sync."),
                    str(exc),
                ) from None
            logger.warning(f"Skipping stream {self.name}: {exc}")

    def _passes(self, incremental: bool, state: Mapping[str, Any], logger: logging.Logger) -> Iterator[Page]:
        """The main read from the lower bound, then catch-up reads of the windows where rows may have shifted."""
        lower, resumed = self._start(state, logger) if incremental else (None, None)
        main = PassTracker(lower=lower, resumed=resumed)
        main.latest_edit = edit = resumed.edit if resumed else None
        pass_lower = resumed.lower if resumed else lower
        trackers: List[PassTracker] = [main]
        for page, covered in self._main_read(lower, main, trackers, logger):
            if page.edit is not None and (edit is None or page.edit > edit):
                edit = page.edit
            if incremental and all(t.ordered for t in trackers):
                cursor, above = _cursor_and_rest(lower, covered)
                if cursor is not None:
                    started = resumed.started if resumed else main.first_served
                    page.state = {CURSOR: format_instant(cursor), "pass": _pass_info(pass_lower, started, above, edit)}
            yield page
        latest_edit = max((t.latest_edit for t in trackers if t.latest_edit is not None), default=None)
        windows = _merge([w for t in trackers for w in t.shifted_windows(latest_edit)])
        rounds = 0
        while windows and rounds < self.max_catch_up_passes:
            rounds += 1
            logger.info(
                f"{self.name}: records changed while this sync paged through them, which can shift rows between "
                f"pages; reading again {', '.join(map(_describe_window, windows))} so none is lost "
                f"(catch-up pass {rounds})."
            )
            if incremental:  # an interruption from here on must resume below the windows
                retreat = {CURSOR: format_instant(windows[0][0])} if windows[0][0] is not None else {}
                yield Page(records=[], state=retreat)
            found: List[Window] = []
            for window in windows:
                tracker = PassTracker(lower=window[0], upper=window[1])
                yield from self._pass(self._window_params(*window), tracker)
                found.extend(tracker.shifted_windows())
            windows = _merge(found)
        if not incremental:
            return
        final = max((t.high for t in trackers if t.high is not None), default=None)
        if windows:
            final = windows[0][0]
            logger.warning(
                f"{self.name}: records kept changing during the sync; the next sync re-reads from "
                f"{_describe(final)} so none is lost."
            )
        yield Page(records=[], state={CURSOR: format_instant(final)} if final is not None else {})

    def _main_read(
        self, lower: Optional[datetime], main: PassTracker, trackers: List[PassTracker], logger: logging.Logger
    ) -> Iterator[Tuple[Page, List[Window]]]:
        """Pages of the main read, each with the updatedTime ranges whose records have all been emitted by then.

        One query following nextPage; for a large stream, after the first page, the rest of its updatedTime
        range is cut into slices read side by side (up to max_concurrent_requests). The first slice goes on
        with the first query and stops at its upper bound; the last one is open-ended, so edits made during
        the read show up in it. A pass that resumes an interrupted sliced pass reads only the ranges that
        pass had not finished, side by side.
        """
        if main.resumed is not None and main.resumed.read:
            carried, started = main.resumed.read, main.resumed.started
            gaps = _gaps(lower, carried)
            main.upper = gaps[0][1]
            logger.info(
                f"{self.name}: resuming an interrupted sync; {len(carried)} updatedTime range(s) above "
                f"{_describe(lower)} were read in full before, reading the {len(gaps)} range(s) around them."
            )
            slices = [(main, self._pass(self._window_params(*gaps[0], upper_exclusive=True), main))]
            for start, end in gaps[1:]:
                tracker = PassTracker(lower=start, upper=end, late_floor=started)
                trackers.append(tracker)
                slices.append((tracker, self._pass(self._window_params(start, end, upper_exclusive=True), tracker)))
            yield from self._read_slices(slices, [Span(*gap) for gap in gaps], carried, trackers)
            return
        first_query = self._pass(self._window_params(lower, None), main)
        span = Span(lower, None)
        first = next(first_query)
        span.emitted = first.high
        yield first, _covered([span], [])
        bounds = self._slice_bounds(main) if first.has_more else []
        if not bounds:
            for page in first_query:
                span.emitted = page.high
                yield page, _covered([span], [])
            return
        main.stop_before = main.upper = span.upper = bounds[0]
        slices = [(main, first_query)]
        spans = [span]
        for i, start in enumerate(bounds):
            end = bounds[i + 1] if i + 1 < len(bounds) else None
            tracker = PassTracker(lower=start, upper=end, late_floor=main.edit_floor())
            trackers.append(tracker)
            slices.append((tracker, self._pass(self._window_params(start, end, upper_exclusive=True), tracker)))
            spans.append(Span(start, end))
        logger.info(f"{self.name}: reading {len(slices)} slices of updatedTime side by side.")
        yield from self._read_slices(slices, spans, [], trackers)

    def _read_slices(
        self,
        slices: List[Tuple[PassTracker, Iterator[Page]]],
        spans: List[Span],
        carried: List[Window],
        trackers: List[PassTracker],
    ) -> Iterator[Tuple[Page, List[Window]]]:
        """Slices side by side (the last one open-ended), then the open end once more if it did not finish last."""
        last_of_tail: List[Mapping[str, Any]] = []
        tail_index = len(slices) - 1
        for index, item in _side_by_side([pages for _, pages in slices]):
            if item is None:
                spans[index].finished = True
                continue
            spans[index].emitted = item.high
            if index == tail_index and item.records:
                last_of_tail = item.records
            yield item, _covered(spans, carried)
        if not _served_last(trackers):
            # Edits made after the open slice's last page can still have shifted rows in the other slices:
            # read the open end once more, so such edits show up (without repeating what that page held).
            tail = slices[-1][0]
            seen = {(r.get("id"), r.get(CURSOR)) for r in last_of_tail}
            for page in self._pass(self._window_params(tail.high, None), tail):
                page.records = [r for r in page.records if (r.get("id"), r.get(CURSOR)) not in seen]
                spans[-1].emitted = page.high
                yield page, _covered(spans, carried)

    def _slice_bounds(self, first: PassTracker) -> List[datetime]:
        """Where to cut the rest of a large stream, or [] when one query is as good (small stream, one slot, BILL
        answering faster than the connector can use)."""
        slots = self._config.max_concurrent_requests
        if slots < 2 or not first.pages or first.first_served is None or first.high is None:
            return []
        if self._client.fastest_answer_s < self.slice_min_round_trip_s:
            return []
        start = first.pages[0][2]
        if start is None or first.high <= start or first.first_served <= first.high:
            return []
        estimated_pages = (first.first_served - start) / (first.high - start)
        count = min(slots, int(estimated_pages // SLICE_MIN_PAGES))
        if count < 2:
            return []
        step = (first.first_served - first.high) / count
        return [first.high + step * i for i in range(1, count)]

    @staticmethod
    def _window_params(
        lower: Optional[datetime], upper: Optional[datetime], *, upper_exclusive: bool = False
    ) -> Dict[str, Any]:
        params: Dict[str, Any] = {"sort": f"{CURSOR}:asc"}
        filters = []
        if lower is not None:
            filters.append(f'{CURSOR}:gte:"{format_instant(lower)}"')
        if upper is not None:
            filters.append(f'{CURSOR}:{"lt" if upper_exclusive else "lte"}:"{format_instant(upper)}"')
        if filters:
            params["filters"] = ",".join(filters)
        return params

    def _pass(self, params: Mapping[str, Any], tracker: Optional[PassTracker]) -> Iterator[Page]:
        """One walk through the list with fixed filters, following nextPage to the end (or the tracker's stop)."""
        token: Optional[Mapping[str, Any]] = None
        seen_tokens: set[str] = set()
        page_number = 0
        while True:
            page_number += 1
            sent = time.monotonic()
            _, response = self._client.send_request(
                "GET", self._join_url(self.url_base, self.path()), {}, params=self.request_params({}, params, token)
            )
            if tracker is not None:
                tracker.last_sent_local, tracker.last_answered_local = sent, time.monotonic()
            records = self._records(response, page_number)
            token = self.next_page_token(response)
            if tracker is not None:
                if tracker.stop_before is not None:
                    kept = [r for r in records if _before(r, tracker.stop_before)]
                    if len(kept) < len(records):
                        records, token = kept, None  # the next slice reads from here on
                served = parse_http_date(response.headers.get("Date")) or utcnow()
                tracker.observe(served, records)
            if tracker is None:
                yield Page(records=records, has_more=token is not None)
            else:
                yield Page(records, has_more=token is not None, high=tracker.high, edit=tracker.latest_edit)
            if token is None:
                return
            if token["page"] in seen_tokens:
                raise self._malformed(response, f"nextPage {token['page']!r} came back again (page {page_number})")
            seen_tokens.add(token["page"])

    def _records(self, response: requests.Response, page_number: int) -> List[Mapping[str, Any]]:
        records = self._envelope(response).get("results")
        if not isinstance(records, list):
            raise self._malformed(response, f"'results' is {type(records).__name__}, not a list (page {page_number})")
        keys = [self.primary_key] if isinstance(self.primary_key, str) else list(self.primary_key)
        for record in records:
            if not isinstance(record, dict) or any(record.get(k) in (None, "") for k in keys):
                what = f"a record lacks its primary key {keys} (page {page_number}): {masked_excerpt(record, 200)}"
                raise self._malformed(response, what)
        return records

    def _envelope(self, response: requests.Response) -> Mapping[str, Any]:
        cached = response.__dict__.get("_bill_envelope")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        try:
            body = jsonparse.loads(response.content)
        except ValueError:
            raise self._malformed(response, "the answer is not JSON") from None
        if not isinstance(body, dict):
            raise self._malformed(response, f"the answer is a JSON {type(body).__name__}, not an object")
        response.__dict__["_bill_envelope"] = body
        return body

    def _malformed(self, response: requests.Response, what: str) -> AirbyteTracedException:
        url = response.request.path_url if response.request is not None else "?"
        return errors.traced(
            Rule(Action.FAIL, f"BILL sent a malformed answer for stream {self.name}:", errors._TRANSIENT),
            f"{what} (GET {url}). Nothing was skipped; the sync stops here and resumes from the last state.",
        )

    def _start(self, state: Mapping[str, Any], logger: logging.Logger) -> Tuple[Optional[datetime], Optional[Resumed]]:
        """Lower bound of the first pass, and what the interrupted pass it resumes had done (if it was one)."""
        start_date = self._config.start_date
        raw = state.get(CURSOR) if isinstance(state, Mapping) else None
        if not raw:
            return start_date, None
        cursor = self._state_instant(raw, CURSOR)
        if cursor > utcnow() + FUTURE_TOLERANCE:
            logger.warning(
                f"{self.name}: the saved cursor {raw} is in the future; ignoring it and reading from "
                f"{_describe(start_date)} so nothing is missed."
            )
            return start_date, None
        info = state.get("pass")
        if not isinstance(info, Mapping) or not info.get("started"):
            return cursor, None
        started = self._state_instant(info["started"], "pass.started")
        pass_lower = self._state_instant(info["lower"], "pass.lower") if info.get("lower") else None
        edit = self._state_instant(info["edit"], "pass.edit") if info.get("edit") else None
        raw_read = info.get("read") or []
        if not isinstance(raw_read, list) or not all(isinstance(w, list) and len(w) == 2 for w in raw_read):
            excerpt = masked_excerpt(raw_read, 200)
            raise config_error(
                f"The saved state of stream {self.name} has pass.read={excerpt}, which is not a list of "
                "[from, to] date-time pairs. Reset the stream's state (or pass a state from a previous sync of "
                "this connector)."
            )
        read: List[Window] = []
        for low, high in raw_read:
            window = (self._state_instant(low, "pass.read"), self._state_instant(high, "pass.read"))
            if cursor < window[0] < window[1]:  # anything else is not above the cursor: read it again
                read.append(window)
        return cursor, Resumed(started, pass_lower, _merge(read), edit)

    def _state_instant(self, raw: Any, key: str) -> datetime:
        try:
            return parse_instant(raw)
        except (ValueError, TypeError):
            raise config_error(
                f"The saved state of stream {self.name} has {key}={raw!r}, which is not a date-time. "
                "Reset the stream's state (or pass a state from a previous sync of this connector)."
            ) from None


def _pass_info(
    lower: Optional[datetime], started: Optional[datetime], read: List[Window], edit: Optional[datetime]
) -> Dict[str, Any]:
    """The ``pass`` key of a mid-pass state: when the pass began and from where, the ranges above the cursor it
    has read in full (slices that finished), and the latest edit it saw (a resumed pass must then re-check)."""
    info: Dict[str, Any] = {"started": format_instant(started)} if started else {}
    if lower is not None:
        info["lower"] = format_instant(lower)
    if read:
        info["read"] = [[format_instant(low), format_instant(high)] for low, high in read if low and high]
    if edit is not None:
        info["edit"] = format_instant(edit)
    return info


def _describe(when: Optional[datetime]) -> str:
    return format_instant(when) if when is not None else "the beginning"


def _describe_window(window: Window) -> str:
    upper = f" to {format_instant(window[1])}" if window[1] is not None else ""
    return f"from {_describe(window[0])}{upper}"


# --- the BILL objects ---------------------------------------------------------------------------------
# Each docstring links the object's BILL reference page.


class Vendors(BillStream):
    """Vendors: https://developer.bill.com/reference/listvendors"""


class Customers(BillStream):
    """Customers: https://developer.bill.com/reference/listcustomers"""


class Bills(BillStream):
    """Bills: https://developer.bill.com/reference/listbills"""


class Invoices(BillStream):
    """Invoices: https://developer.bill.com/reference/listinvoices"""


class Payments(BillStream):
    """Payments made (AP): https://developer.bill.com/reference/listpayments"""


class ReceivablePayments(BillStream):
    """Payments received (AR): https://developer.bill.com/reference/listreceivablepayments"""


class CreditMemos(BillStream):
    """Credit memos (AR): https://developer.bill.com/reference/listcreditmemos"""


class VendorCredits(BillStream):
    """Vendor credits (AP): https://developer.bill.com/reference/listvendorcredits"""


class RecurringBills(BillStream):
    """Recurring bills: https://developer.bill.com/reference/listrecurringbills"""

    object_path = "recurringbills"


class RecurringInvoices(BillStream):
    """Recurring invoices: https://developer.bill.com/reference/listrecurringinvoices"""


class Classification(BillStream, ABC):
    """A classification list under /v3/classifications/."""

    @property
    def object_path(self) -> str:  # type: ignore[override]
        return "classifications/" + self.name.replace("_", "-")


class ChartOfAccounts(Classification):
    """Chart of accounts: https://developer.bill.com/reference/listchartofaccounts"""


class AccountingClasses(Classification):
    """Accounting classes: https://developer.bill.com/reference/listaccountingclasses"""


class Departments(Classification):
    """Departments: https://developer.bill.com/reference/listdepartments"""


class Employees(Classification):
    """Employees: https://developer.bill.com/reference/listemployees"""


class Items(Classification):
    """Items: https://developer.bill.com/reference/listitems"""


class Jobs(Classification):
    """Jobs: https://developer.bill.com/reference/listjobs"""


class Locations(Classification):
    """Locations: https://developer.bill.com/reference/listlocations"""


class Users(BillStream):
    """Users of the organization: https://developer.bill.com/reference/listusers"""


class Roles(BillStream):
    """User roles: https://developer.bill.com/reference/listroles"""


class BankAccounts(BillStream):
    """The organization's bank accounts: https://developer.bill.com/reference/listbankaccounts"""

    object_path = "funding-accounts/banks"


class BankAccountUsers(BillStream):
    """Who may use each bank account: https://developer.bill.com/reference/listbankaccountusers"""

    object_path = "funding-accounts/banks/users"
    extra_params = {"currentUser": "false"}


class CardAccountUsers(BillStream):
    """Who may use each card account (no id, no updatedTime: full refresh only):
    https://developer.bill.com/reference/listcardaccountusers"""

    object_path = "funding-accounts/cards/users"
    extra_params = {"currentUser": "false"}
    primary_key = ["cardAccountId", "userId"]
    cursor_field = []


STREAM_CLASSES: List[type[BillStream]] = [
    Vendors,
    Customers,
    Bills,
    Invoices,
    Payments,
    ReceivablePayments,
    CreditMemos,
    VendorCredits,
    RecurringBills,
    RecurringInvoices,
    ChartOfAccounts,
    AccountingClasses,
    Departments,
    Employees,
    Items,
    Jobs,
    Locations,
    Users,
    Roles,
    BankAccounts,
    BankAccountUsers,
    CardAccountUsers,
]
