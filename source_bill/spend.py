"""BILL Spend & Expense (S&E) lists as Airbyte streams, within S&E's own rules.

S&E shares BILL's gateway and envelope ({nextPage, prevPage, results}) but not its rules: its own credential
(the ``apiToken`` header, no login), the cursor sent back as the query parameter ``nextPage`` (S&E ignores
``page`` and answers the first page again), ``max`` at most 100 (transactions 50), 60 requests a minute, no
sort by ``updatedTime``, and hard deletes. Every request still goes through ``BillClient._send`` (retries,
timeouts, the requests-in-flight limit), on a route with S&E's credential, its minute window and its errors.
Transactions are read in closed ``updatedTime`` windows, the other lists with one row of overlap between pages
(source_bill/spend_core.py). ``spend_budgets`` adds, fetched by id, the budgets that cards, reimbursements, custom
fields and transactions reference but the budgets list omits; the transactions' budget ids live in their incremental
state.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import ABC
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import (
    Any,
    Callable,
    ClassVar,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    MutableMapping,
    Optional,
    Set,
    Tuple,
    TypeVar,
    Union,
)

import requests
from airbyte_cdk.models import (
    AirbyteMessage,
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
    SyncMode,
)
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from requests.auth import AuthBase

from . import errors, jsonparse
from .client import BillClient, RequestLimiter, Route
from .config import BillConfig, ClientCredentials, config_error
from .errors import Action, BillError, Rule
from .messages import RecordWriter
from .spend_core import PAGE_LIMIT, ListReader, ListUnstable, WindowReader, WindowUnstable
from .timeutil import format_instant, parse_instant

PER_MINUTE = 60  # S&E: 60 requests a minute
PAGE_SIZE = 100  # S&E: max at most 100 (transactions: spend_core.PAGE_LIMIT)
SETTLE = timedelta(minutes=2)  # a window's upper end stays this far behind now: late writes and clock skew
FULL_REFRESH_DONE = {"__ab_no_cursor_state_message": True}
CURSOR = "updatedTime"
BUDGET_IDS = "budgetIds"  # in the spend_transactions state: the budgets its transactions reference
TRANSACTIONS = "spend_transactions"
BUDGET_STREAMS = {"spend_budgets", "spend_budget_members"}  # they read SpendContext.budgets()
CUSTOM_FIELD_BUDGETS = ("selectedBudgetIds", "requiredBudgetIds")  # a custom field's budgets (ids; not the uuids)
T = TypeVar("T")

TOKEN_REFUSED = Rule(
    Action.CONFIG_ERROR,
    "BILL Spend & Expense refused spend_api_token. An S&E API token belongs to one S&E user and is made by an S&E "
    "administrator (S&E: profile > Settings > API tokens); sandbox and production tokens differ. Create a token in "
    "the environment you read, or remove spend_api_token to sync only AP/AR.",
    errors._CONFIG,
)
RATE_LIMITED = Rule(
    Action.WAIT_CONCURRENCY,
    "BILL Spend & Expense allows 60 requests a minute per token; another app may be using the same token.",
    errors._TRANSIENT,
)
NOT_READABLE = Rule(
    Action.SKIP_STREAM,
    "This S&E user may not read this object; it is skipped. Use a token of an S&E administrator to sync it.",
)


def classify(status: int, bill_errors: List[BillError], *, is_login: bool = False) -> Rule:
    """S&E's answers with an API token: 401 is the token (nothing to renew), 429 is the minute limit; the rest as
    for AP/AR."""
    if status == 401:
        return TOKEN_REFUSED
    if status == 403:
        return NOT_READABLE
    if status == 429:
        return RATE_LIMITED
    return errors.classify(status, bill_errors)


def markdown_table() -> str:
    """The S&E rows of the docs' troubleshooting table."""
    rows = [("HTTP 401", TOKEN_REFUSED), ("HTTP 403", NOT_READABLE), ("HTTP 429", RATE_LIMITED)]
    lines = ["| S&E answer | What the connector does | Failure type | What to do |", "|---|---|---|---|"]
    for answer, rule in rows:
        failure = "none (handled)" if rule.action is Action.SKIP_STREAM else f"`{rule.failure_type.value}`"
        lines.append(f"| {answer} | {rule.action.value} | {failure} | {rule.message} |")
    return "\n".join(lines)


class ApiTokenAuth(AuthBase):
    """S&E's API token as the ``apiToken`` header."""

    def __init__(self, token: str) -> None:
        add_to_secrets(token)
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["apiToken"] = self._token
        request.headers["Accept"] = "application/json"
        return request


def classify_bearer(status: int, bill_errors: List[BillError], *, is_login: bool = False) -> Rule:
    """S&E's answers with the OAuth Bearer token: a 401 renews the token (once per token), as on AP/AR."""
    if status == 401:
        return errors.classify(status, bill_errors)
    return classify(status, bill_errors, is_login=is_login)


def spend_auth(config: BillConfig, client: BillClient) -> Optional[AuthBase]:
    """The credential S&E requests carry: ``spend_api_token`` when given, else the OAuth Bearer token of
    ``oauth_client_credentials``; None when the config gives neither (then no spend_* stream)."""
    if config.spend_api_token:
        return ApiTokenAuth(config.spend_api_token)
    if isinstance(config.credentials, ClientCredentials):
        return client.auth
    return None


class MinuteLimiter:
    """At most ``per_minute`` S&E requests in any moving 60 s, shared by every S&E stream, plus a place among
    the connector's requests in flight (not counted in AP/AR's hourly budget)."""

    WINDOW = 60.0

    def __init__(
        self,
        in_flight: RequestLimiter,
        logger: logging.Logger,
        per_minute: int = PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._in_flight = in_flight
        self._logger = logger
        self._per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._sent: Deque[float] = deque()
        self._lock = threading.Lock()
        self.paced_seconds = 0.0

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.WINDOW:
                    self._sent.popleft()
                if len(self._sent) < self._per_minute:
                    self._sent.append(now)
                    break
                wait = self._sent[0] + self.WINDOW - now
            self._logger.info(
                f"Pacing Spend & Expense: {self._per_minute} requests were sent in the last minute; "
                f"waiting {wait:.1f} s before the next one."
            )
            self.paced_seconds += wait
            self._sleep(wait)
        self._in_flight.acquire_slot()

    def release(self) -> None:
        self._in_flight.release()


class SpendContext:
    """What the S&E streams of one read share: the client route, and lists read once for several streams."""

    def __init__(
        self,
        client: BillClient,
        auth: AuthBase,
        wall_clock: Callable[[], datetime],
    ) -> None:
        config = client.config
        self.client = client
        self.wall_clock = wall_clock
        self.limiter = MinuteLimiter(client.limiter, client.logger, clock=client.clock, sleep=client.sleep)
        self.prefix = f"{config.base_url}/v3/spend/"
        client.add_route(
            Route(
                self.prefix,
                auth,
                self.limiter,
                classify if isinstance(auth, ApiTokenAuth) else classify_bearer,
                pool_size=config.max_concurrent_requests,
                origins=client.allowed_origins,
            )
        )
        self._lock = threading.Lock()
        self._lists: Dict[str, List[Dict[str, Any]]] = {}
        self._budgets: Optional[List[Dict[str, Any]]] = None
        self._ids_lock = threading.Lock()
        self._transaction_budget_ids: Set[str] = set()  # from the input state and this sync's transactions read
        self._transactions_over = threading.Event()  # set: no transactions read under way that budgets must wait for
        self._transactions_over.set()

    def arrange(self, names: List[str], transactions_state: Mapping[str, Any], parallel: bool) -> None:
        """Before a read: the budget ids of the transactions' input state, and whether budgets must wait for a
        transactions read running beside them (in a sequential read it comes first, see ``arrange``)."""
        self.transactions_seen(budget_ids_of(transactions_state))
        if parallel and TRANSACTIONS in names and BUDGET_STREAMS & set(names):
            self._transactions_over.clear()

    def transactions_seen(self, budget_ids: Iterable[str]) -> None:
        with self._ids_lock:
            self._transaction_budget_ids.update(budget_ids)

    def transactions_ended(self) -> None:
        self._transactions_over.set()

    def get(self, path: str, params: Mapping[str, Any]) -> requests.Response:
        return self.client.get(f"spend/{path}", params, context=f"GET /v3/spend/{path}")

    def pages(self, path: str, params: Mapping[str, Any], key: str = "id") -> Iterator[List[Dict[str, Any]]]:
        """Every row of a list once, per answer, the cursor going back as ``nextPage``. Each page after the first is
        asked from the previous page's last row (one row of overlap), so a row deleted before the read position
        during the read makes no row behind it skipped (spend_core.ListReader); rows are matched by ``key``."""
        reader = ListReader(page_size=PAGE_SIZE)
        while not reader.done:
            token = reader.next_request()
            response = self.get(path, {"max": PAGE_SIZE, **params, **({"nextPage": token} if token else {})})
            records, next_token = envelope(response, path)
            opaque = reader.opaque
            try:
                emit = reader.receive([row_key(record, key) for record in records], next_token)
            except ListUnstable as exc:
                raise malformed(path, str(exc)) from None
            if reader.opaque and not opaque:
                self.client.logger.info(
                    f"S&E's nextPage for /v3/spend/{path} is not an offset cursor; reading the list a second time so "
                    "that no row shifted by a delete during the read is missed."
                )
            yield [records[i] for i in emit]
        if reader.step_backs:
            self.client.logger.info(
                f"Rows of /v3/spend/{path} were deleted during the read: stepped back {reader.step_backs} times "
                f"({reader.requests} requests) so that no row was skipped."
            )

    def listed(self, path: str) -> List[Dict[str, Any]]:
        """A whole list, read once per sync however many streams need it."""
        with self._lock:
            if path not in self._lists:
                self._lists[path] = [record for page in self.pages(path, {}) for record in page]
            return self._lists[path]

    def budgets(self) -> List[Dict[str, Any]]:
        """The budgets list, completed by the budgets it omits that cards, reimbursements, custom fields
        (``selectedBudgetIds``, ``requiredBudgetIds``), transactions (this sync's read and the input state) or other
        budgets (``parentBudgetId``) reference, fetched by id."""
        listed = self.listed("budgets")
        referenced = {row.get("budgetId") for kind in ("cards", "reimbursements") for row in self.listed(kind)}
        for custom_field in self.listed("custom-fields"):  # the budgets a field is offered or required on
            for key in CUSTOM_FIELD_BUDGETS:
                ids = custom_field.get(key)
                referenced |= _ids(ids) if isinstance(ids, list) else set()
        if not self._transactions_over.is_set():
            self.client.logger.info(
                "The S&E budget streams wait for the spend_transactions read beside them to end: the budgets its "
                "transactions reference are fetched too."
            )
        self._transactions_over.wait()  # a transactions read beside this one: its budget ids count too
        with self._ids_lock:
            referenced |= self._transaction_budget_ids
        with self._lock:
            if self._budgets is None:
                known = {budget["id"] for budget in listed}
                missing = _ids(referenced | {budget.get("parentBudgetId") for budget in listed}) - known
                fetched: List[Dict[str, Any]] = []
                asked = 0
                while missing:
                    found = [b for b in map(self._budget, sorted(missing)) if b is not None]
                    asked, known = asked + len(missing), known | missing
                    fetched += found
                    missing = _ids({budget.get("parentBudgetId") for budget in found}) - known
                if asked:
                    self.client.logger.info(
                        f"The S&E budgets list omitted {asked} budgets that cards, reimbursements, custom fields, "
                        f"transactions or budgets reference; fetched by id ({asked - len(fetched)} no longer exist)."
                    )
                self._budgets = listed + fetched
            return self._budgets

    def _budget(self, budget_id: str) -> Optional[Dict[str, Any]]:
        try:
            response = self.get(f"budgets/{budget_id}", {})
        except AirbyteTracedException as exc:
            if "HTTP 404" in (exc.message or ""):
                return None  # deleted since the card was read
            raise
        body = decode(response, f"budgets/{budget_id}")
        if not isinstance(body, dict) or not body.get("id"):
            raise malformed(f"budgets/{budget_id}", "the answer is not a budget object")
        return body


def _ids(values: Iterable[Any]) -> Set[str]:
    return {value for value in values if isinstance(value, str) and value}


def budget_ids_of(transactions_state: Mapping[str, Any]) -> Set[str]:
    """The budget ids a spend_transactions state keeps (none in a state written before it kept them)."""
    raw = transactions_state.get(BUDGET_IDS) if isinstance(transactions_state, Mapping) else None
    return _ids(raw) if isinstance(raw, list) else set()


def row_key(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    return str(value) if value is not None else json.dumps(record, sort_keys=True, default=str)


def decode(response: requests.Response, path: str) -> Any:
    try:
        return jsonparse.loads(response.content)
    except ValueError:
        raise malformed(path, "the answer is not JSON") from None


def envelope(response: requests.Response, path: str) -> Tuple[List[Dict[str, Any]], Optional[str]]:
    body = decode(response, path)
    if not isinstance(body, dict):
        raise malformed(path, f"the answer is a JSON {type(body).__name__}, not an object")
    records = body.get("results")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise malformed(path, "'results' is not a list of objects")
    token = body.get("nextPage")
    if token is not None and not isinstance(token, str):
        raise malformed(path, f"nextPage is {type(token).__name__}, not a string")
    return records, token or None


def malformed(path: str, what: str) -> AirbyteTracedException:
    return errors.traced(
        Rule(Action.FAIL, "BILL Spend & Expense sent a malformed answer:", errors._TRANSIENT),
        f"{what} (GET /v3/spend/{path}). The sync stops here and resumes from the last state.",
    )


class SpendStream(Stream, ABC):
    """An S&E list (GET with max and nextPage); full refresh."""

    primary_key: ClassVar[Union[str, List[str]]] = "id"
    cursor_field: ClassVar[Union[str, List[str]]] = []
    object_path: ClassVar[str] = ""  # under /v3/spend/; defaults to the name without spend_, dashed
    batch_records = False  # a page of records as one RecordBatch (only when the entrypoint writes batches)

    def __init__(self, context: SpendContext, config: BillConfig) -> None:
        self._context = context
        self._config = config
        self._state: MutableMapping[str, Any] = {}

    def path(self) -> str:
        return self.object_path or self.name.removeprefix("spend_").replace("_", "-")

    @property
    def state(self) -> MutableMapping[str, Any]:
        return self._state

    @state.setter
    def state(self, value: MutableMapping[str, Any]) -> None:
        self._state = dict(value or {})

    def pages(self, incremental: bool) -> Iterator[Tuple[List[Dict[str, Any]], Optional[Dict[str, Any]]]]:
        """(records, the state once they are emitted or None) per answer."""
        for records in self._context.pages(self.path(), {}):
            yield records, None

    def read(  # type: ignore[override]
        self,
        configured_stream: Any,
        logger: logging.Logger,
        slice_logger: Any,
        stream_state: MutableMapping[str, Any],
        state_manager: Any,
        internal_config: Any,
    ) -> Iterator[AirbyteMessage]:
        incremental = configured_stream.sync_mode == SyncMode.incremental and bool(self.cursor_field)
        out = RecordWriter(self.name, self.namespace, self.batch_records, state_manager)
        started = False
        try:
            for records, state in self.pages(incremental):
                started = True
                yield from out.records(records)
                if state is not None:
                    self._state = state
                    yield from out.state(state)
        except errors.StreamUnavailable as exc:
            if started:
                raise errors.traced(
                    Rule(Action.FAIL, f"S&E stopped letting this token read {self.name} in the middle of the sync."),
                    str(exc),
                ) from None
            logger.warning(f"Skipping stream {self.name}: {exc}")
            return
        if not incremental:
            yield from out.state(FULL_REFRESH_DONE)
        out.log_count(logger)

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        self._state = dict(stream_state or {})
        for records, _ in self.pages(sync_mode == SyncMode.incremental and bool(self.cursor_field)):
            yield from records


class SpendCards(SpendStream):
    """Cards: https://developer.bill.com/reference/listcards"""

    def pages(self, incremental: bool) -> Iterator[Tuple[List[Dict[str, Any]], Optional[Dict[str, Any]]]]:
        yield self._context.listed("cards"), None  # read once: the budgets stream needs them too


class SpendBudgets(SpendStream):
    """Budgets, with those that cards, reimbursements, custom fields and transactions reference but the list omits
    fetched by id:
    https://developer.bill.com/reference/listbudgets"""

    def pages(self, incremental: bool) -> Iterator[Tuple[List[Dict[str, Any]], Optional[Dict[str, Any]]]]:
        yield self._context.budgets(), None


class SpendUsers(SpendStream):
    """S&E users: https://developer.bill.com/reference/listspendusers"""


class SpendReimbursements(SpendStream):
    """Reimbursements: https://developer.bill.com/reference/listreimbursements"""

    def pages(self, incremental: bool) -> Iterator[Tuple[List[Dict[str, Any]], Optional[Dict[str, Any]]]]:
        yield self._context.listed("reimbursements"), None  # read once: the budgets stream needs them too


class SpendCustomFields(SpendStream):
    """Custom fields: https://developer.bill.com/reference/listcustomfields"""

    def pages(self, incremental: bool) -> Iterator[Tuple[List[Dict[str, Any]], Optional[Dict[str, Any]]]]:
        yield self._context.listed("custom-fields"), None  # read once: the budgets stream needs them too


class SpendBudgetMembers(SpendStream):
    """Members of each budget (rows get their budgetId): https://developer.bill.com/reference/listbudgetmembers"""

    primary_key = ["budgetId", "userId"]
    object_path = "budgets/{budgetId}/members"

    def pages(self, incremental: bool) -> Iterator[Tuple[List[Dict[str, Any]], Optional[Dict[str, Any]]]]:
        for budget in self._context.budgets():
            for records in self._context.pages(self.path().format(budgetId=budget["id"]), {}, key="userId"):
                yield [{**record, "budgetId": budget["id"]} for record in records], None


class SpendCustomFieldValues(SpendStream):
    """Values of each custom field (rows get their customFieldId):
    https://developer.bill.com/reference/listcustomfieldvalues"""

    object_path = "custom-fields/{customFieldId}/values"

    def pages(self, incremental: bool) -> Iterator[Tuple[List[Dict[str, Any]], Optional[Dict[str, Any]]]]:
        for custom_field in self._context.listed("custom-fields"):
            path = self.path().format(customFieldId=custom_field["id"])
            for records in self._context.pages(path, {}):
                yield [{**record, "customFieldId": custom_field["id"]} for record in records], None


class SpendTransactions(SpendStream):
    """Card transactions (parents only; children via childTransactionIds), read in closed updatedTime windows:
    https://developer.bill.com/reference/listtransactions"""

    cursor_field = CURSOR

    def __init__(self, context: SpendContext, config: BillConfig) -> None:
        super().__init__(context, config)
        self._budget_ids: Set[str] = set()  # the budgets this read's transactions and its input state reference

    def pages(self, incremental: bool) -> Iterator[Tuple[List[Dict[str, Any]], Optional[Dict[str, Any]]]]:
        end = _ms(self._context.wall_clock() - SETTLE)
        start = _ms(self._config.start_date) if incremental and self._config.start_date else 0
        cursor, width = self._resume(self.state) if incremental else (None, None)
        self._budget_ids = budget_ids_of(self.state) if incremental else set()
        reader = WindowReader(start=start, end=end, cursor=cursor, width=width)
        request = reader.next_request()
        if request is None and incremental:
            yield [], self._state_of(reader)
        while request is not None:
            window = request.window
            params: Dict[str, Any] = {
                "filters": f'{CURSOR}:gte:"{_iso(window.lower)}",{CURSOR}:lte:"{_iso(window.upper)}"'
            }
            if request.token:
                params["nextPage"] = request.token
            response = self._context.get(self.path(), {"max": PAGE_LIMIT, **params})
            records, token = envelope(response, self.path())
            try:
                outcome = reader.receive([str(record.get("id")) for record in records], token)
            except WindowUnstable as exc:
                raise errors.traced(
                    Rule(Action.FAIL, "S&E transactions kept changing while being read:", errors._TRANSIENT), str(exc)
                ) from None
            emitted = [records[i] for i in outcome.emit]
            budget_ids = _ids(record.get("budgetId") for record in emitted) - self._budget_ids
            if budget_ids:
                self._budget_ids |= budget_ids
                self._context.transactions_seen(budget_ids)
            checkpoint = self._state_of(reader) if outcome.checkpoint is not None and incremental else None
            yield emitted, checkpoint
            request = reader.next_request()
        self._context.client.logger.info(
            f"{self.name}: {reader.windows_done} updatedTime windows, {reader.splits} read again narrower."
        )

    def _state_of(self, reader: WindowReader) -> Dict[str, Any]:
        state: Dict[str, Any] = {"window_ms": reader.width, BUDGET_IDS: sorted(self._budget_ids)}
        if reader.cursor is not None:
            state[CURSOR] = _iso(reader.cursor)
        return state

    def _resume(self, state: Mapping[str, Any]) -> Tuple[Optional[int], Optional[int]]:
        raw, width = state.get(CURSOR), state.get("window_ms")
        cursor = None
        if raw:
            try:
                cursor = _ms(parse_instant(raw))
            except (TypeError, ValueError):
                raise config_error(
                    f"The state of {self.name} has updatedTime {raw!r}, not a date-time; pass the STATE messages "
                    "this connector emitted, or no state to start over."
                ) from None
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            width = None
        return cursor, width


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _iso(ms: int) -> str:
    return format_instant(datetime.fromtimestamp(ms / 1000, UTC))


SPEND_STREAM_CLASSES: List[type[SpendStream]] = [
    SpendTransactions,
    SpendCards,
    SpendBudgets,
    SpendBudgetMembers,
    SpendUsers,
    SpendReimbursements,
    SpendCustomFields,
    SpendCustomFieldValues,
]


def spend_streams(
    client: BillClient, config: BillConfig, wall_clock: Optional[Callable[[], datetime]] = None
) -> List[SpendStream]:
    """The spend_* streams, when the config gives S&E a credential; none otherwise."""
    auth = spend_auth(config, client)
    if auth is None:
        return []
    context = SpendContext(client, auth, wall_clock or (lambda: datetime.now(UTC)))
    return [cls(context, config) for cls in SPEND_STREAM_CLASSES]


def arrange(
    streams: List[Stream],
    catalog: ConfiguredAirbyteCatalog,
    state: Optional[List[AirbyteStateMessage]],
    parallel: bool,
) -> ConfiguredAirbyteCatalog:
    """The catalog to read, with the budget streams moved to its end when spend_transactions is in it (their
    budgets include those its transactions reference: read one at a time, they come after it; side by side, they
    wait for it, and at the end they keep no other stream waiting), and the S&E context told what it needs: the
    transactions' input state and whether the budget streams must wait for a transactions read beside them."""
    context = next((s._context for s in streams if isinstance(s, SpendStream)), None)
    if context is None:
        return catalog
    names = [configured.stream.name for configured in catalog.streams]
    context.arrange(names, ConnectorStateManager(state).get_stream_state(TRANSACTIONS, None), parallel)
    if TRANSACTIONS not in names:
        return catalog
    ordered = sorted(catalog.streams, key=lambda configured: configured.stream.name in BUDGET_STREAMS)  # stable
    return ConfiguredAirbyteCatalog(streams=ordered)


def watched(streams: List[Stream], name: str, items: Iterator[T]) -> Iterator[T]:
    """``items``, the messages of stream ``name`` in a parallel read; when they end for spend_transactions in any
    way (done, failed, never started, abandoned), the budget streams waiting for it go on."""
    context = next((s._context for s in streams if isinstance(s, SpendStream)), None)
    if context is None or name != TRANSACTIONS:
        return items
    return _ending(items, context.transactions_ended)


def _ending(items: Iterator[T], ended: Callable[[], None]) -> Iterator[T]:
    try:
        yield from items
    finally:
        ended()


def check(client: BillClient, streams: List[Stream]) -> Tuple[bool, Optional[str]]:
    """With S&E configured, its token must be accepted: ``GET /v3/spend/users/current``."""
    context = next((s._context for s in streams if isinstance(s, SpendStream)), None)
    if context is None:
        return True, None
    try:
        context.get("users/current", {})
    except errors.StreamUnavailable as exc:
        return False, f"{NOT_READABLE.message} {exc}"
    except AirbyteTracedException as exc:
        return False, exc.message
    return True, None
