"""Lists per parent: the documents of each bill, the attachments of each vendor, customer and invoice.

The parents are read through their own stream's engine (``BillStream._pages_for``: sorted by updatedTime,
the filter fixed when the pass starts, catch-up reads when rows shift), so an incremental sync asks only for
the children of parents whose ``updatedTime`` moved since the last one. That rests on BILL changing a
parent's ``updatedTime`` when a document is attached to it; a full refresh asks for every parent's children
and is the remedy if BILL ever does not.

When the parent stream is in the same sync and the child would read exactly the parents it reads (the same sync
mode; incremental: from the same place), the child takes the parents' pages from that stream's read
(``source_bill.sharing``) instead of reading the list again: ``share_parent_reads`` decides, once per sync.

State: ``{"parents": <the parent engine's state>, "done": [[parent id, updatedTime], ...]}``; ``done`` lists
the parents after that state whose children were emitted, so a sync interrupted in the middle of a page of
parents resumes at the next parent. The children of up to ``max_concurrent_requests`` parents are asked for
at once; records and state still come out in the parents' order.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, ClassVar, Dict, Iterator, List, Mapping, Optional, Tuple

from airbyte_cdk.models import (
    AirbyteRecordMessageFileReference,
    AirbyteStateMessage,
    AirbyteStream,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteStream,
    SyncMode,
)
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.utils import casing
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from . import core, errors
from .client import BillClient
from .config import BillConfig, config_error
from .core import CURSOR, Page
from .errors import Action, Rule
from .files import FileStager
from .sharing import ParentFeed, ParentKey, ParentPage, parent_page
from .streams import FULL_REFRESH_DONE, Bills, BillStream, Customers, Invoices, Vendors
from .timeutil import parse_instant, utcnow


@dataclass(frozen=True)
class ChildPage(Page):
    """A page of children, with the file reference of each record (None: no file staged for it)."""

    files: List[Optional[AirbyteRecordMessageFileReference]] = field(default_factory=list)


class ChildStream(BillStream, ABC):
    """The paged list of one BILL object's children, read for every parent (or every changed parent)."""

    parent_class: ClassVar[type[BillStream]]
    parent_key: ClassVar[str]  # the parent's id in each child record (BILL leaves it out)
    list_prefix: ClassVar[str]  # the list of a parent is {list_prefix}/{parent id}
    cursor_field = "createdTime"  # declared for the catalog; the state follows the parents' updatedTime

    def __init__(self, client: BillClient, config: BillConfig) -> None:
        super().__init__(client, config)
        self.requests_sent = 0
        self.parents_read = 0
        self._counter_lock = threading.Lock()
        self.feed: Optional[ParentFeed] = None  # the parent stream's pages of this sync, when it reads the same
        self.reads_own_because: Optional[str] = None  # else why not (logged), from share_parent_reads

    @property
    def parent_name(self) -> str:
        return casing.camel_to_snake(self.parent_class.__name__)  # the CDK's default stream name

    # --- the catalog -------------------------------------------------------------------------------------
    @property
    def supports_incremental(self) -> bool:
        return True

    def as_airbyte_stream(self) -> AirbyteStream:
        stream = super().as_airbyte_stream()
        if self._config.file_transfer:
            stream.is_file_based = True
        return stream

    # --- one parent's list ---------------------------------------------------------------------------------
    def path(self) -> str:
        return f"{self.list_prefix}/{{parent id}}"  # one list per parent: see _children_of

    def _children_of(self, parent_id: str) -> List[Mapping[str, Any]]:
        """Every page of one parent's list (run in a worker thread)."""
        rows: List[Mapping[str, Any]] = []
        for records in self.walk({}, path=f"{self.list_prefix}/{parent_id}"):
            with self._counter_lock:
                self.requests_sent += 1
            rows.extend({**r, self.parent_key: r.get(self.parent_key) or parent_id} for r in records)
        return rows

    def _fetch_children(
        self, parent_id: str, stager: Optional[FileStager]
    ) -> Tuple[List[Mapping[str, Any]], List[Optional[AirbyteRecordMessageFileReference]]]:
        rows = self._children_of(parent_id)
        if stager is None:
            return rows, [None] * len(rows)
        refs = [stager.stage(row, parent_id, self._reread(parent_id)) for row in rows]
        return rows, refs

    def _reread(self, parent_id: str) -> Any:
        def reread(child_id: str) -> Optional[Mapping[str, Any]]:
            """The row again (a fresh downloadLink), or None when it is gone."""
            return next((r for r in self._children_of(parent_id) if r.get("id") == child_id), None)

        return reread

    # --- reading --------------------------------------------------------------------------------------------
    def _files(self, page: Page) -> Optional[List[Optional[AirbyteRecordMessageFileReference]]]:
        return page.files if isinstance(page, ChildPage) else None

    def _pages_for(self, incremental: bool, state: Mapping[str, Any], logger: logging.Logger) -> Iterator[Page]:
        started = False
        try:
            for page in self._child_pages(incremental, state, logger):
                started = started or bool(page.records)
                yield page
        except errors.StreamUnavailable as exc:
            if started:
                raise errors.traced(
                    Rule(Action.FAIL, f"BILL stopped letting this user read {self.name} in the middle of the sync."),
                    str(exc),
                ) from None
            logger.warning(f"Skipping stream {self.name}: {exc}")

    def _child_pages(self, incremental: bool, state: Mapping[str, Any], logger: logging.Logger) -> Iterator[Page]:
        parent = self.parent_class(self._client, self._config)
        saved, done = self._resume(state) if incremental else ({}, [])
        handled = DoneParents(done, saved.get(CURSOR))
        rate = self._config.requests_per_hour
        which = "changed since the last sync" if saved else "in the organization"
        logger.info(
            f"{self.name}: one request (plus one per extra page) for each of the {parent.name} {which}; "
            f"at requests_per_hour={rate} that is {rate:,} {parent.name} an hour "
            f"(50,000 {parent.name} take {50_000 / rate:.1f} hours)."
        )
        stager = FileStager(self._client, self._config, self.name, logger) if self._config.file_transfer else None
        slots = self._config.max_concurrent_requests

        def position() -> Mapping[str, Any]:
            return saved  # the parents' state once every child so far is emitted

        with ThreadPoolExecutor(max_workers=slots, thread_name_prefix=f"bill-{self.name}") as pool:
            for parents in self._parents(parent, incremental, position, logger):
                todo: List[Tuple[ParentKey, Future[Any]]] = []
                for key in parents.keys:
                    if key in handled:
                        continue
                    todo.append((key, pool.submit(self._fetch_children, key[0], stager)))
                for index, (key, future) in enumerate(todo):
                    try:
                        rows, refs = future.result()
                    except BaseException:
                        for _, later in todo[index + 1 :]:
                            later.cancel()  # the sync stops here: ask for no more children
                        raise
                    self.parents_read += 1
                    handled.add(key)
                    yield ChildPage(
                        records=rows, state=_state(saved, handled.pending) if incremental else None, files=refs
                    )
                if incremental and parents.state is not None:
                    saved = dict(parents.state)
                    handled.cursor_moved(saved.get(CURSOR))
                    yield Page(records=[], state=_state(saved, handled.pending))
        logger.info(
            f"{self.name}: read the lists of {self.parents_read} {parent.name} in {self.requests_sent} requests."
        )

    def _parents(
        self,
        parent: BillStream,
        incremental: bool,
        position: Callable[[], Mapping[str, Any]],
        logger: logging.Logger,
    ) -> Iterator[ParentPage]:
        """The pages of parents: handed on by the parent stream of this sync (``feed``), else read here, from
        ``position()`` (the parents' state whose children are all emitted). When the parent stream's read stops
        before its end, the rest is read here; parents whose children were emitted are not asked again."""
        feed = self.feed
        if feed is None:
            if self.reads_own_because:
                logger.info(f"{self.name} reads {parent.name} itself: {self.reads_own_because}.")
            for page in parent._pages_for(incremental, position(), logger):
                yield parent_page(page)
            return
        logger.info(f"{self.name}: takes the {parent.name} from the {parent.name} stream of this sync (one read).")
        taken = 0
        for shared in feed.pages():
            taken += 1
            yield shared
        outcome = feed.outcome
        if outcome.kind == "complete":
            return
        if outcome.kind == "refused":
            if taken:
                raise errors.traced(
                    Rule(Action.FAIL, f"BILL stopped letting this user read {parent.name} in the middle of the sync."),
                    f"{self.name} lists the children of {parent.name} and stops here ({outcome.reason}).",
                )
            logger.warning(f"Skipping stream {self.name}: it lists the children of {parent.name}: {outcome.reason}")
            return
        logger.info(
            f"{self.name} reads {parent.name} itself{' from here' if taken else ''}: the {parent.name} stream of "
            f"this sync handed on {taken} page{'' if taken == 1 else 's'}, then {outcome.reason}."
        )
        own = 0
        for page in parent._pages_for(incremental, position(), logger):
            own += 1
            yield parent_page(page)
        if taken and not own:  # a read of the parents yields a page unless BILL refused it (then it logs a skip)
            raise errors.traced(
                Rule(Action.FAIL, f"BILL stopped letting this user read {parent.name} in the middle of the sync."),
                f"{self.name} lists the children of {parent.name} and stops here.",
            )

    def _resume(self, state: Mapping[str, Any]) -> Tuple[Dict[str, Any], List[ParentKey]]:
        parents = state.get("parents", {}) if isinstance(state, Mapping) else None
        done = state.get("done", []) if isinstance(state, Mapping) else None
        if (
            not isinstance(parents, Mapping)
            or not isinstance(done, list)
            or not all(isinstance(d, list) and len(d) == 2 and all(isinstance(x, str) for x in d) for d in done)
        ):
            raise config_error(
                f"The saved state of stream {self.name} is not {{'parents': {{...}}, 'done': [[id, updatedTime], "
                "...]}. Reset the stream's state (or pass a state from a previous sync of this connector)."
            )
        for _, updated in done:
            if updated:
                try:
                    parse_instant(updated)
                except ValueError:
                    raise config_error(
                        f"The saved state of stream {self.name} has done={updated!r}, which is not a date-time. "
                        "Reset the stream's state (or pass a state from a previous sync of this connector)."
                    ) from None
        return dict(parents), [(d[0], d[1]) for d in done]


def _state(parents: Mapping[str, Any], done: List[ParentKey]) -> Dict[str, Any]:
    state: Dict[str, Any] = {"parents": dict(parents)}
    if done:
        state["done"] = [list(key) for key in done]
    return state


class DoneParents:
    """The parents whose children were emitted, and which of them a read resumed from the parents' saved cursor
    would meet again (updatedTime at or after the cursor, gte): those go into the state as ``done``."""

    def __init__(self, carried: List[ParentKey], cursor: Any) -> None:
        self._times: Dict[ParentKey, Optional[datetime]] = {}
        self._cursor = _instant(cursor)
        self.pending: List[ParentKey] = []
        for key in carried:
            self.add(key)

    def __contains__(self, key: ParentKey) -> bool:
        return key in self._times

    def add(self, key: ParentKey) -> None:
        if key not in self._times:
            self._times[key] = _instant(key[1])
            self.pending.append(key)

    def cursor_moved(self, raw: Any) -> None:
        cursor = _instant(raw)
        moved_back = cursor is None or self._cursor is None or cursor < self._cursor
        candidates = list(self._times) if moved_back else self.pending
        self.pending = [k for k in candidates if not _before(self._times[k], cursor)]
        self._cursor = cursor


def _instant(raw: Any) -> Optional[datetime]:
    return parse_instant(raw) if isinstance(raw, str) and raw else None


def _before(when: Optional[datetime], cursor: Optional[datetime]) -> bool:
    return when is not None and cursor is not None and when < cursor


class BillDocuments(ChildStream):
    """The documents of each bill: https://developer.bill.com/reference/listbilldocuments"""

    parent_class = Bills
    parent_key = "billId"
    list_prefix = "documents/bills"


class VendorAttachments(ChildStream):
    """The attachments of each vendor: https://developer.bill.com/reference/listvendorattachments"""

    parent_class = Vendors
    parent_key = "vendorId"
    list_prefix = "attachments/vendors"


class CustomerAttachments(ChildStream):
    """The attachments of each customer: https://developer.bill.com/reference/listcustomerattachments"""

    parent_class = Customers
    parent_key = "customerId"
    list_prefix = "attachments/customers"


class InvoiceAttachments(ChildStream):
    """The attachments of each invoice: https://developer.bill.com/reference/listinvoiceattachments"""

    parent_class = Invoices
    parent_key = "invoiceId"
    list_prefix = "attachments/invoices"


CHILD_STREAM_CLASSES: List[type[ChildStream]] = [
    BillDocuments,
    VendorAttachments,
    CustomerAttachments,
    InvoiceAttachments,
]


def share_parent_reads(
    streams: Mapping[str, Any], catalog: ConfiguredAirbyteCatalog, state: Optional[List[AirbyteStateMessage]]
) -> Tuple[ConfiguredAirbyteCatalog, Dict[str, ParentFeed]]:
    """Let each child stream of the catalog take its parents from its parent stream's read of this sync, when it
    would read exactly those parents: both full refresh, or both incremental from the same place (the child's
    ``parents`` state and the parent stream's state start the parents' read at the same point). Returns the catalog
    with each such child after its parent (the sequential read reads the parent first) and the feeds by parent name.
    A child that reads its parents itself is told why (it logs it)."""
    configured = {c.stream.name: c for c in catalog.streams}
    saved = ConnectorStateManager(state=state)
    feeds: Dict[str, ParentFeed] = {}
    for name, config in configured.items():
        child = streams.get(name)
        if not isinstance(child, ChildStream):
            continue
        parent = streams.get(child.parent_name)
        parent_config = configured.get(child.parent_name)
        if not isinstance(parent, child.parent_class) or parent_config is None:
            child.reads_own_because = f"the {child.parent_name} stream is not in this sync"
            continue
        why = _why_not_shared(child, config, parent, parent_config, saved)
        if parent.name in feeds:
            why = f"another child stream takes the {parent.name} stream's pages"
        if why:
            child.reads_own_because = why
            continue
        feed = feeds[parent.name] = ParentFeed(parent.name)
        child.feed = feed
        parent.relay = feed.relay
    order = [c for c in catalog.streams if not _is_fed(streams, c)]
    for fed in [c for c in catalog.streams if _is_fed(streams, c)]:
        parent_name = streams[fed.stream.name].parent_name
        at = next(i for i, c in enumerate(order) if c.stream.name == parent_name)
        order.insert(at + 1, fed)
    return ConfiguredAirbyteCatalog(streams=order), feeds


def _is_fed(streams: Mapping[str, Any], configured: ConfiguredAirbyteStream) -> bool:
    stream = streams.get(configured.stream.name)
    return isinstance(stream, ChildStream) and stream.feed is not None


def _why_not_shared(
    child: ChildStream,
    config: ConfiguredAirbyteStream,
    parent: BillStream,
    parent_config: ConfiguredAirbyteStream,
    saved: ConnectorStateManager,
) -> Optional[str]:
    """Why the child would not read the parents the parent stream reads (None: it would)."""
    modes = (config.sync_mode, parent_config.sync_mode)
    if modes == (SyncMode.full_refresh, SyncMode.full_refresh):
        return None
    if modes != (SyncMode.incremental, SyncMode.incremental):
        return f"{parent.name} is synced {parent_config.sync_mode.value} and {child.name} {config.sync_mode.value}"
    try:
        mine, _ = child._resume(_stored(saved, child.name))
        now = utcnow()
        start_date = child._config.start_date
        child_start = core.parse_state(mine, parent.name, start_date, now)
        parent_start = core.parse_state(_stored(saved, parent.name), parent.name, start_date, now)
    except AirbyteTracedException:
        return "a saved state cannot be read (the stream with it fails and says why)"
    if child_start == parent_start:
        return None
    if child_start.lower is not None and parent_start.lower is not None and child_start.lower != parent_start.lower:
        where = "behind" if child_start.lower < parent_start.lower else "ahead of"
    else:
        where = "not at"
    return f"its state is {where} the {parent.name} stream's"


def _stored(saved: ConnectorStateManager, name: str) -> Dict[str, Any]:
    state = dict(saved.get_stream_state(name, None) or {})
    return {} if state == FULL_REFRESH_DONE else state
