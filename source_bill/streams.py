"""BILL v3 lists as Airbyte streams: a thin driver (HTTP, threads, Airbyte messages) around ``source_bill.core``.

``source_bill.core`` holds the reading algorithm (passes, catch-up, slices, state) and explains it; this module sends
its requests through the shared client, runs its slices side by side (``source_bill.fanin``), and turns its pages
into RECORD and STATE messages. Each BILL object is a few declared lines at the end: its name, path, keys, extra
query parameters, and where the answer holds its records and its next-page token (:class:`Envelope`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Iterator, List, Mapping, MutableMapping, Optional, Sequence, Union

import requests
from airbyte_cdk.models import AirbyteMessage, AirbyteRecordMessageFileReference, SyncMode
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from . import core, errors, fanin, jsonparse
from .client import BillClient
from .config import BillConfig
from .core import CURSOR, Answer, Page, Start
from .errors import Action, Rule
from .messages import RecordWriter
from .secrets import masked_excerpt
from .timeutil import parse_http_date, utcnow

PAGE_SIZE = 100
FULL_REFRESH_DONE = {"__ab_no_cursor_state_message": True}
# Slice only when BILL's fastest answer so far took at least this long: below it the connector's own CPU, not the wait
# for BILL, bounds the read, and more requests in flight only cost CPU (measured at zero latency: +30 % CPU and a
# slower read).
SLICE_MIN_ROUND_TRIP_S = 0.01


@dataclass(frozen=True)
class Envelope:
    """Where a list answer keeps its records and its next-page token, and which query parameter sends it back.

    BILL's v3 lists: ``{"results": [...], "nextPage": "..."}``, the token sent back as ``page``. Other shapes are
    other values of this: a bare array (``records=None``), another key (``records="cards"``), one answer holding
    everything (``next_page=None``: no ``max`` is sent either), the answer being the one record itself
    (``one_object=True``), or a ``nextPage`` query parameter (``token_param``).
    """

    records: Optional[str] = "results"  # None: the answer is the list itself (or, one_object, the record)
    next_page: Optional[str] = "nextPage"  # None: the list has one page, asked without max
    token_param: str = "page"
    one_object: bool = False  # the answer (or its records key) is one record, not a list

    @property
    def paged(self) -> bool:
        return self.next_page is not None


V3_LIST = Envelope()


class BillStream(Stream, ABC):
    """A BILL v3 list endpoint (GET with max, page, filters, sort; envelope {nextPage, prevPage, results}).

    Built on the CDK's plain ``Stream``: the connector sends its own requests through one shared client (limits,
    login, retries), so nothing of ``HttpStream`` is used. ``read`` is overridden to write records and a state after
    every page straight as messages (the CDK's per-record loop costs CPU for nothing here); the CDK offers no public
    per-page checkpoint hook, so the state message is made with the state manager's public methods.
    """

    primary_key: ClassVar[Union[str, List[str]]] = "id"  # type: ignore[misc]
    cursor_field: ClassVar[Union[str, List[str]]] = CURSOR  # type: ignore[misc]
    object_path: ClassVar[str] = ""  # defaults to the stream name with dashes
    extra_params: ClassVar[Mapping[str, str]] = {}
    # a list BILL answers only per value of a required parameter: one full walk per entry (merged into the query),
    # a record met under several entries emitted once (full refresh streams only)
    query_variants: ClassVar[Sequence[Mapping[str, str]]] = ({},)
    envelope: ClassVar[Envelope] = V3_LIST
    max_catch_up_passes: ClassVar[int] = 2
    slice_min_round_trip_s: ClassVar[float] = SLICE_MIN_ROUND_TRIP_S
    page_size = PAGE_SIZE
    batch_records = False  # a page of records as one RecordBatch (only when the entrypoint writes batches)
    others: Callable[[], int] = staticmethod(lambda: 0)  # other streams read side by side now (set by the source)

    def __init__(self, client: BillClient, config: BillConfig) -> None:
        self._client = client
        self._config = config
        self._state: MutableMapping[str, Any] = {}
        # hands this read's pages on to a child stream of the same sync as they pass (source_bill.sharing)
        self.relay: Optional[Callable[[Iterator[Page]], Iterator[Page]]] = None
        super().__init__()

    def path(self) -> str:
        return self.object_path or self.name.replace("_", "-")

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
        out = RecordWriter(self.name, self.namespace, self.batch_records, state_manager)
        for page in self._pages_for(incremental, self.state if incremental else {}, logger):
            yield from out.records(page.records, self._files(page))
            if page.state is not None:
                self._state = page.state
                yield from out.state(page.state)
        if not incremental:
            yield from out.state(FULL_REFRESH_DONE)
        out.log_count(logger)

    def _files(self, page: Page) -> Optional[List[Optional[AirbyteRecordMessageFileReference]]]:
        """The file reference of each record of ``page`` (None: no files; child streams stage them)."""
        return None

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

    def walk(self, params: Mapping[str, Any], path: Optional[str] = None) -> Iterator[List[Mapping[str, Any]]]:
        """The records of every page of one walk with fixed query parameters (no tracking, no state), of this
        stream's list or, given ``path``, of another list of the same shape (e.g. one parent's children)."""
        fixed = dict(params)
        reader = self._reader(logging.getLogger("airbyte"), lambda query, token: self._fetch(fixed, token, path))
        try:
            for page in reader.walk(core.PLAIN):
                yield page.records
        except core.RepeatedToken as exc:
            raise self._malformed(str(exc)) from None

    def _walk_variants(self, logger: logging.Logger) -> Iterator[Page]:
        """The whole list: one walk per entry of ``query_variants``; a record met under two entries emitted once."""
        if len(self.query_variants) == 1:
            yield from self._reader(logger, self._fixed_fetch(self.query_variants[0])).walk(core.PLAIN)
            return
        keys = [self.primary_key] if isinstance(self.primary_key, str) else list(self.primary_key)
        seen: set[Any] = set()
        for variant in self.query_variants:
            for page in self._reader(logger, self._fixed_fetch(variant)).walk(core.PLAIN):
                fresh = [r for r in page.records if tuple(r[k] for k in keys) not in seen]
                seen.update(tuple(r[k] for k in keys) for r in fresh)
                yield dataclasses.replace(page, records=fresh)

    def _fixed_fetch(self, params: Mapping[str, Any]) -> core.Fetch:
        fixed = dict(params)
        return lambda query, token: self._fetch(fixed, token)

    def _pages_for(self, incremental: bool, state: Mapping[str, Any], logger: logging.Logger) -> Iterator[Page]:
        """Every page of a read, each with the state to write once its records are emitted (incremental reads):
        the mutation-safe reader (a pass's filter fixed when it starts, catch-up reads), or the plain walk(s) of a
        stream without cursor."""
        if not self.cursor_field:
            pages: Iterator[Page] = self._walk_variants(logger)
        else:
            reader = self._reader(logger, lambda query, token: self._fetch(query.params(), token))
            start = self._start(state, logger) if incremental else Start(None)
            pages = reader.read(start, incremental)
        if self.relay is not None:
            pages = self.relay(pages)
        started = False
        try:
            for page in pages:
                started = True
                yield page
        except core.RepeatedToken as exc:
            raise self._malformed(str(exc)) from None
        except errors.StreamUnavailable as exc:
            if started:
                raise errors.traced(
                    Rule(Action.FAIL, f"BILL stopped letting this user read {self.name} in the middle of the sync."),
                    str(exc),
                ) from None
            logger.warning(f"Skipping stream {self.name}: {exc}")

    def _reader(self, logger: logging.Logger, fetch: core.Fetch) -> core.Reader:
        return core.Reader(
            stream=self.name,
            fetch=fetch,
            fan_in=lambda walks: fanin.side_by_side(walks, name=f"bill-{self.name}"),
            slots=self._config.max_concurrent_requests,
            others=self.others,
            may_slice=lambda: self._client.fastest_answer_s >= self.slice_min_round_trip_s,
            max_catch_up_passes=self.max_catch_up_passes,
            logger=logger,
        )

    def _start(self, state: Mapping[str, Any], logger: logging.Logger) -> Start:
        start = core.parse_state(state, self.name, self._config.start_date, utcnow())
        if start.warning:
            logger.warning(start.warning)
        return start

    def _fetch(self, query_params: Mapping[str, Any], token: Optional[str], path: Optional[str] = None) -> Answer:
        """One GET of the list; BILL's Date (this machine's wall clock when absent) and the local send/answer times."""
        params = {**self.extra_params, **query_params}
        if self.envelope.paged:
            params = {"max": self.page_size, **params}
        if token is not None:
            params[self.envelope.token_param] = token
        sent = time.monotonic()
        url = f"{self._config.base_url}/v3/{path or self.path()}"
        _, response = self._client.send_request("GET", url, {}, params=params)
        answered = time.monotonic()
        body = self._body(response)
        served = parse_http_date(response.headers.get("Date")) or utcnow()
        return Answer(self._records(body, response), self._next_page(body, response), served, sent, answered)

    def _body(self, response: requests.Response) -> Any:
        try:
            body = jsonparse.loads(response.content)
        except ValueError:
            raise self._malformed("the answer is not JSON", response) from None
        expected = dict if self.envelope.records is not None or self.envelope.one_object else list
        if not isinstance(body, expected):
            raise self._malformed(
                f"the answer is a JSON {type(body).__name__}, not {'an object' if expected is dict else 'a list'}",
                response,
            )
        return body

    def _records(self, body: Any, response: requests.Response) -> List[Mapping[str, Any]]:
        records = body if self.envelope.records is None else body.get(self.envelope.records)
        if self.envelope.one_object and isinstance(records, dict):
            records = [records]
        if not isinstance(records, list):
            where = f"'{self.envelope.records}'" if self.envelope.records else "the answer"
            raise self._malformed(f"{where} is {type(records).__name__}, not a list", response)
        keys = [self.primary_key] if isinstance(self.primary_key, str) else list(self.primary_key)
        for key in keys:
            for record in records:
                if not isinstance(record, dict) or record.get(key) in (None, ""):
                    raise self._malformed(
                        f"a record lacks its primary key {keys}: {masked_excerpt(record, 200)}", response
                    )
        return records

    def _next_page(self, body: Any, response: requests.Response) -> Optional[str]:
        if self.envelope.next_page is None or not isinstance(body, dict):
            return None
        token = body.get(self.envelope.next_page)
        if token is None or token == "":
            return None
        if not isinstance(token, str):
            raise self._malformed(f"{self.envelope.next_page} is {type(token).__name__}, not a string", response)
        return token

    def _malformed(self, what: str, response: Optional[requests.Response] = None) -> AirbyteTracedException:
        where = ""
        if response is not None and response.request is not None:
            where = f" (GET {response.request.path_url})"
        return errors.traced(
            Rule(Action.FAIL, f"BILL sent a malformed answer for stream {self.name}:", errors._TRANSIENT),
            f"{what}{where}. Nothing was skipped; the sync stops here and resumes from the last state.",
        )


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
