"""The one HTTP path to BILL: limits, login, retries and errors, shared by every stream and by check."""

from __future__ import annotations

import logging
import math
import random
import socket
import ssl
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, Callable, Deque, List, Mapping, Optional, Set, Tuple
from urllib.parse import urljoin

import requests
import urllib3
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from . import errors, jsonparse
from .auth import BillOAuthAuthenticator, BillSessionAuthenticator, authenticator
from .config import BillConfig, ClientCredentials
from .errors import Action, Rule
from .origin import Origin, allowed, origin_of, url_head
from .secrets import masked_excerpt
from .timeutil import parse_http_date

TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
LOGIN_TIMEOUT = (5.0, 15.0)  # a login answers fast or not at all
MAX_RETRIES = 6  # 5xx, network errors, timeouts
MAX_CONCURRENCY_RETRIES = 10  # BDC_1322 / 429
MAX_RELOGINS = 3  # per request
CHUNK_BYTES = 1 << 20  # file downloads are written a chunk at a time
MAX_RETRY_AFTER = 600.0  # a Retry-After longer than this fails the request at once (BDC_1144 has its own bound)
MAX_LOGIN_ATTEMPTS = 5  # per sign-in; BILL allows 200 logins an hour per developer key, for every app on it
MAX_FAILED_LOGINS = 10  # per run: a sign-in that keeps failing fails the sync, never a login storm
LOGIN_DEADLINE_S = 120.0  # no login retry starts later than this after the first attempt
REQUEST_DEADLINE_S = 15 * 60.0  # no retry of one request starts later than this after its first attempt
CHECK_DEADLINE_S = 40.0  # check: a person is waiting (login and each request)


class Backoff:
    """Exponential backoff with jitter, a floor and a ceiling; server hints (Retry-After) win."""

    def __init__(self, base: float = 1.0, cap: float = 60.0, rng: Optional[random.Random] = None) -> None:
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()

    def delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)  # the client fails at once when this is more than it waits
        ceiling = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        return float(ceiling * (0.5 + self._rng.random() / 2))


class RequestLimiter:
    """At most ``max_in_flight`` requests at once, and at most ``per_hour`` in any moving hour.

    Shared by every request the connector makes (pages of all streams, retries, logins, check).
    """

    WINDOW = 3600.0

    def __init__(
        self,
        max_in_flight: int,
        per_hour: int,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._per_hour = per_hour
        self._sent: Deque[float] = deque()
        self._lock = threading.Lock()
        self._logger = logger
        self._clock = clock
        self._sleep = sleep
        self.paced_seconds = 0.0

    def acquire(self) -> None:
        self._take_budget()
        self._slots.acquire()

    def release(self) -> None:
        self._slots.release()

    def acquire_slot(self) -> None:
        """A place among the requests in flight, not counted in the hourly budget (another API's requests)."""
        self._slots.acquire()

    def _take_budget(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.WINDOW:
                    self._sent.popleft()
                if len(self._sent) < self._per_hour:
                    self._sent.append(now)
                    return
                wait = self._sent[0] + self.WINDOW - now
            self._logger.info(
                f"Pacing: {self._per_hour} requests were sent in the last hour (requests_per_hour); "
                f"waiting {wait:.0f} s before the next one."
            )
            self.paced_seconds += wait
            self._sleep(wait)


class Session(requests.Session):
    """``requests.Session`` reading the proxy and CA-bundle variables once per origin, not on every request.

    ``requests`` walks the whole environment for ``*_proxy``, ``no_proxy`` and the CA bundle on every request
    (about as much CPU as parsing a page of 100 records); the connector's environment does not change during a
    run, so each answer is kept per (scheme, host and port; the request's own settings)."""

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[Any, Mapping[str, Any]] = {}

    def merge_environment_settings(  # type: ignore[override]
        self, url: Optional[str], proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Mapping[str, Any]:
        key = (url_head(url or ""), stream, verify, cert, tuple(sorted((proxies or {}).items())))
        settings = self._environment.get(key)
        if settings is None:
            settings = self._environment[key] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        return {**settings, "proxies": dict(settings["proxies"])}


class LimitedAdapter(HTTPAdapter):
    """Holds a limiter slot from sending a request until its whole answer is read; notes the fastest answer.

    Every request carries credentials (session headers, the login body, a token), so none leaves for an origin
    (scheme, host, port) outside ``origins``, whatever built its URL.
    """

    def __init__(self, limiter: RequestLimiter, pool_size: int, origins: Set[Origin]) -> None:
        super().__init__(pool_connections=1, pool_maxsize=pool_size)
        self._limiter = limiter
        self.origins = origins
        self.fastest_answer_s = float("inf")  # request sent to answer read (no limiter wait): BILL's latency, at best

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if not allowed(request.url or "", self.origins):
            target = origin_of(request.url or "")
            raise errors.traced(
                errors.REDIRECT_RULE,
                f"(a request to {target or 'an unreadable URL'} was refused before it was sent; the allowed "
                f"origins are {', '.join(sorted(map(str, self.origins)))}.)",
            )
        self._limiter.acquire()
        held_by_body = False
        try:
            sent = time.monotonic()
            response = super().send(request, *args, **kwargs)
            if kwargs.get("stream") and response.status_code < 300:
                held_by_body = True  # a file streamed to disk: the slot is freed when the response is closed
                _release_on_close(response, self._limiter.release)
                return response
            # read the body inside the slot, a megabyte at a time (Response.content reads 10 KB at a time, a
            # dozen reads a page); requests keeps a read body in _content and has no public way to set it
            response._content = b"".join(response.iter_content(CHUNK_BYTES))
            self.fastest_answer_s = min(self.fastest_answer_s, time.monotonic() - sent)
            return response
        finally:
            if not held_by_body:
                self._limiter.release()


def _release_on_close(response: requests.Response, release: Callable[[], None]) -> None:
    close = response.close
    released = threading.Event()

    def close_and_release() -> None:
        try:
            close()
        finally:
            if not released.is_set():
                released.set()
                release()

    response.close = close_and_release  # type: ignore[method-assign]


class ForeignLink(ValueError):
    """A download link on another host than the configured BILL host: no credentials are sent there."""


class Route:
    """A session with its own credential and limiter for the URLs under ``prefix``, and how to read its errors."""

    def __init__(
        self,
        prefix: str,
        auth: AuthBase,
        limiter: Any,
        classify: Callable[..., Rule],
        pool_size: int,
        origins: Set[Origin],
    ) -> None:
        self.prefix = prefix
        self.classify = classify
        self.session = Session()
        self.session.auth = auth
        adapter = LimitedAdapter(limiter, pool_size=pool_size, origins=origins)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)


class BillClient:
    def __init__(
        self,
        config: BillConfig,
        logger: logging.Logger,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        backoff: Optional[Backoff] = None,
    ) -> None:
        self.config = config
        self.logger = logger
        self._clock = clock
        self.deadline_s = REQUEST_DEADLINE_S  # check lowers it: a person is waiting
        self.failed_logins = 0
        self._sleep = sleep
        self._wall_clock = wall_clock
        self.backoff = backoff or Backoff()
        self.limiter = RequestLimiter(
            config.max_concurrent_requests, config.requests_per_hour, logger, clock=clock, sleep=sleep
        )
        base_origin = origin_of(config.base_url)
        self.allowed_origins: Set[Origin] = {base_origin} if base_origin is not None else set()
        token_origin = origin_of(config.token_url)
        if isinstance(config.credentials, ClientCredentials) and token_origin is not None:
            self.allowed_origins.add(token_origin)  # the token request; nothing else goes there
        adapter = self._adapter = LimitedAdapter(
            self.limiter, pool_size=config.max_concurrent_requests, origins=self.allowed_origins
        )
        self._login_http = Session()
        self._http = Session()
        for session in (self._login_http, self._http):
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.auth: BillSessionAuthenticator | BillOAuthAuthenticator = authenticator(
            config.credentials,
            organization_id=config.organization_id,
            token_url=config.token_url,
            login=self._post_login,
            post_token=self._post_token,
            clock=clock,
            now=wall_clock,
        )
        self._http.auth = self.auth
        self.clock, self.sleep = clock, sleep
        self._routes: List[Route] = []

    # --- routes: another API behind the same gateway (Spend & Expense), still through _send --------------
    def add_route(self, route: Route) -> None:
        """Requests whose URL starts with ``route.prefix`` use the route's session (its own credential and
        limiter) and error rules; retries, timeouts and the secret filter stay those of ``_send``."""
        self._routes.append(route)

    def _route_for(self, url: str) -> Optional[Route]:
        return next((route for route in self._routes if url.startswith(route.prefix)), None)

    def url(self, path: str) -> str:
        return f"{self.config.base_url}/v3/{path.lstrip('/')}"

    @property
    def fastest_answer_s(self) -> float:
        """The shortest time BILL has taken to answer any request so far (login included): the network's and
        gateway's share of every request, without the cost of a particular query. ``inf`` before the first."""
        return self._adapter.fastest_answer_s

    def get(self, path: str, params: Optional[Mapping[str, Any]] = None, *, context: str = "") -> requests.Response:
        return self._send("GET", self.url(path), params=params, context=context or path)

    def download(self, url: str, sink: BinaryIO, *, context: str) -> Tuple[int, Optional[int]]:
        """GET a file into ``sink`` a chunk at a time, through the same limits, retries and re-login as every
        request; returns (bytes written, the Content-Length BILL announced, if any and not content-encoded)."""
        if not allowed(url, self.allowed_origins):
            raise ForeignLink(f"{context}: the link is on {origin_of(url)}, not on the configured BILL host")
        response = self._send("GET", url, context=context, stream=True)
        try:
            declared = response.headers.get("Content-Length")
            encoded = bool(response.headers.get("Content-Encoding"))
            written = 0
            for chunk in response.iter_content(CHUNK_BYTES):
                sink.write(chunk)
                written += len(chunk)
        finally:
            response.close()
        return written, int(declared) if declared and declared.isdigit() and not encoded else None

    # HttpStream calls this in place of the CDK's HttpClient.send_request (same signature).
    def send_request(
        self,
        http_method: str,
        url: str,
        request_kwargs: Mapping[str, Any],
        headers: Optional[Mapping[str, str]] = None,
        params: Optional[Mapping[str, Any]] = None,
        json: Optional[Mapping[str, Any]] = None,
        data: Any = None,
        dedupe_query_params: bool = False,
        log_formatter: Any = None,
        exit_on_rate_limit: Optional[bool] = False,
    ) -> Tuple[requests.PreparedRequest, requests.Response]:
        response = self._send(http_method, url, params=params, context=url)
        return response.request, response

    def _post_login(self, credentials: Mapping[str, str]) -> Mapping[str, Any]:
        response = self._send("POST", self.url("login"), json=dict(credentials), context="login", is_login=True)
        answer = decode_json(response, "login")
        if not isinstance(answer, Mapping):
            raise errors.traced(errors.Rule(Action.FAIL, "BILL's login answer is not a JSON object."), "")
        return answer

    def _post_token(self, url: str, form: Mapping[str, str]) -> Mapping[str, Any]:
        """BILL's OAuth token request (form-encoded), through the same limiter, pacing and retries as the rest."""
        response = self._send(
            "POST", url, data=form, context="OAuth token", is_login=True, refused=errors.TOKEN_REJECTED
        )
        answer = decode_json(response, "OAuth token")
        if not isinstance(answer, Mapping):
            raise errors.traced(errors.Rule(Action.FAIL, "BILL's token answer is not a JSON object."), "")
        return answer

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json: Optional[Mapping[str, Any]] = None,
        data: Optional[Mapping[str, str]] = None,
        context: str,
        is_login: bool = False,
        stream: bool = False,
        refused: Rule = errors.LOGIN_REJECTED,
    ) -> requests.Response:
        route = None if is_login else self._route_for(url)
        http = self._login_http if is_login else route.session if route else self._http
        timeout = LOGIN_TIMEOUT if is_login else TIMEOUT
        # Time spent on this request so far: its attempts (clock) plus the waits between them (as asked of sleep).
        budget = min(self.deadline_s, LOGIN_DEADLINE_S if is_login else REQUEST_DEADLINE_S)
        spent = [0.0]
        max_retries = MAX_LOGIN_ATTEMPTS - 1 if is_login else MAX_RETRIES
        retries = concurrency_retries = relogins = hourly_waits = 0
        while True:
            if is_login:
                self._count_login()
            started = self._clock()
            try:
                response = http.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=data,
                    timeout=timeout,
                    stream=stream,
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                spent[0] += self._clock() - started
                if is_login:
                    self.failed_logins += 1
                retries += 1
                cause = network_cause(exc, timeout)
                delay = self.backoff.delay(retries)
                if retries > max_retries or spent[0] + delay > budget:
                    raise errors.traced(
                        errors.NETWORK_RULE,
                        f"Gave up on {context} at {_host(url)} after {retries} attempts: {cause}.",
                    ) from None
                spent[0] += delay
                self._wait(delay, f"{context}: {cause}, retry {retries}")
                continue
            spent[0] += self._clock() - started
            if response.status_code < 300:
                return response
            if is_login:
                self.failed_logins += 1
            if response.status_code < 400:
                raise redirect_refused(response, context)
            bill_errors = errors.parse_errors(response)
            if route:
                rule = route.classify(response.status_code, bill_errors, is_login=is_login)
            else:
                rule = errors.classify(response.status_code, bill_errors, refused=refused if is_login else None)
            said = errors.describe(bill_errors) or f"HTTP {response.status_code}"
            detail = f"({context}: HTTP {response.status_code}; BILL said: {said})"
            if rule.action is Action.RELOGIN:
                relogins += 1
                if relogins > MAX_RELOGINS:
                    raise errors.traced(
                        Rule(Action.FAIL, "BILL rejected new sessions or tokens repeatedly.", errors._TRANSIENT), detail
                    )
                self.logger.info(f"BILL rejected the session or token on {context}; signing in again.")
                self.auth.reject(response.request)
                continue
            if rule.action is Action.RETRY:
                retries += 1
                if retries > max_retries:
                    raise errors.traced(rule, f"Gave up after {retries} attempts {detail}")
                delay = self.backoff.delay(retries, _retry_after(response))
                self._wait_or_fail(rule, delay, budget, spent, detail, f"{said} on {context}, retry {retries}")
                continue
            if rule.action is Action.WAIT_CONCURRENCY:
                concurrency_retries += 1
                if concurrency_retries > MAX_CONCURRENCY_RETRIES:
                    raise errors.traced(rule, f"Gave up after {MAX_CONCURRENCY_RETRIES} retries {detail}")
                self._wait_or_fail(
                    rule,
                    self.backoff.delay(concurrency_retries, _retry_after(response)),
                    budget,
                    spent,
                    detail,
                    f"{said} on {context} (rate limited), retry {concurrency_retries}",
                )
                continue
            if rule.action is Action.WAIT_HOURLY:
                hourly_waits += 1
                wait = _retry_after(response)
                if wait is None:
                    wait = self._seconds_to_next_hour() + 1.0
                bound = self.config.rate_limit_max_wait_minutes * 60 if self.deadline_s >= REQUEST_DEADLINE_S else 0.0
                if hourly_waits > 2:
                    raise errors.traced(
                        rule,
                        f"BILL still refused requests after the connector waited twice for its hourly window to "
                        f"reset; retry {self._resume_time(wait)} {detail}",
                    )
                if wait > bound:
                    allowed_by = (
                        f"rate_limit_max_wait_minutes={self.config.rate_limit_max_wait_minutes} allows"
                        if bound
                        else "check waits"
                    )
                    raise errors.traced(
                        rule,
                        f"BILL accepts requests again {self._resume_time(wait)}, later than {allowed_by} {detail}",
                    )
                self._wait(wait, f"BILL's hourly request limit reached on {context}; waiting for the window to reset")
                continue
            if rule.action is Action.SKIP_STREAM:
                raise errors.StreamUnavailable(f"{rule.message} {detail}")
            raise errors.traced(rule, detail)

    def _count_login(self) -> None:
        if self.failed_logins >= MAX_FAILED_LOGINS:
            message = (
                f"BILL sign-in failed {self.failed_logins} times in this run; the connector stops rather than "
                "risk BILL's limit of 200 logins an hour per developer key. Retry the sync later."
            )
            raise errors.traced(Rule(Action.FAIL, message, errors._TRANSIENT), "")

    def _wait_or_fail(self, rule: Rule, delay: float, budget: float, spent: List[float], detail: str, why: str) -> None:
        """Wait ``delay`` s, unless that is more than the connector waits for one request: then fail now."""
        if delay > MAX_RETRY_AFTER or spent[0] + delay > budget:
            raise errors.traced(
                rule,
                f"The next wait ({_seconds(delay)}) would pass what the connector waits for one request "
                f"({budget:.0f} s in all, at most {MAX_RETRY_AFTER:.0f} s at a time); retry "
                f"{self._resume_time(delay)} {detail}",
            )
        spent[0] += delay
        self._wait(delay, why)

    def _resume_time(self, seconds: float) -> str:
        """``after about 2026-01-02 03:04 UTC``, or ``later`` when BILL named no time a calendar can hold."""
        try:
            return f"after about {self._wall_clock() + timedelta(seconds=seconds):%Y-%m-%d %H:%M} UTC"
        except (OverflowError, ValueError):
            return "later (BILL named no time the connector can use)"

    def _wait(self, seconds: float, why: str) -> None:
        self.logger.info(f"{why}: waiting {seconds:.1f} s.")
        self._sleep(seconds)

    def _seconds_to_next_hour(self) -> float:
        now = self._wall_clock()
        next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        return (next_hour - now).total_seconds()


def _retry_after(response: requests.Response) -> Optional[float]:
    """BILL's ``Retry-After`` in seconds (a number or an HTTP date), never negative; ``inf`` when it names no finite
    wait (``inf``, ``1e999``); None when it is absent or unreadable (``nan``, text)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        when = parse_http_date(value)
        if when is None:
            return None
        try:
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
        except OverflowError:
            return None
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if math.isfinite(value) else "without end"


def _host(url: str) -> str:
    target = origin_of(url)
    return str(target) if target is not None else "the configured base_url"


def network_cause(exc: BaseException, timeout: Tuple[float, float]) -> str:
    """What went wrong on the way to BILL, in words that say where to look (the exception types, not their text)."""
    chain: List[BaseException] = []
    todo: List[Any] = [exc]
    while todo and len(chain) < 20:  # the exception, its causes and contexts, and urllib3's reasons and args
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is seen for seen in chain):
            continue
        chain.append(item)
        todo.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args[:1]])
    kinds = tuple(type(item) for item in chain)

    def has(*types: type) -> bool:
        return any(issubclass(kind, types) for kind in kinds)

    if has(requests.exceptions.ProxyError, urllib3.exceptions.ProxyError):
        return "the proxy refused or failed the connection (check HTTPS_PROXY / HTTP_PROXY and the proxy's rules)"
    if has(requests.exceptions.SSLError, urllib3.exceptions.SSLError, ssl.SSLError):
        return "the TLS handshake failed (a certificate that is not trusted, or a TLS-intercepting proxy or firewall)"
    if has(urllib3.exceptions.NameResolutionError, socket.gaierror):
        return "the host name could not be resolved (DNS; check base_url and the network)"
    if has(ConnectionRefusedError):
        return "the connection was refused (nothing listens on that port, or a firewall rejects it)"
    if has(requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError):
        return f"no connection within {timeout[0]:.0f} s (a firewall dropping packets, or the host is down)"
    if has(requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, socket.timeout):
        return f"connected, but no answer within {timeout[1]:.0f} s (read timeout)"
    if has(ConnectionResetError, urllib3.exceptions.ProtocolError):
        return "the connection was dropped or reset before an answer came"
    return f"the connection failed ({type(exc).__name__})"


def redirect_refused(response: requests.Response, context: str) -> AirbyteTracedException:
    """A 3xx answer: never followed, so credentials reach no other host or scheme; say where it pointed."""
    location = response.headers.get("Location") or ""
    target = origin_of(urljoin(response.url or "", location)) if location else None
    where = f" to {target}" if target is not None else ""
    return errors.traced(
        errors.REDIRECT_RULE,
        f"({context}: HTTP {response.status_code} redirect{where}, from {_host(response.url or '')}; not followed.)",
    )


def decode_json(response: requests.Response, context: str) -> Any:
    try:
        return jsonparse.loads(response.content)
    except ValueError:
        snippet = masked_excerpt(response.content, 120)
        raise errors.traced(
            Rule(Action.FAIL, "BILL answered with something that is not JSON.", errors._TRANSIENT),
            f"({context}: HTTP {response.status_code}, content-type {response.headers.get('Content-Type')!r}, "
            f"starts with {snippet!r})",
        ) from None
