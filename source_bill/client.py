"""The one HTTP path to BILL: limits, login, retries and errors, shared by every stream and by check."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, Callable, Deque, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from . import errors
from .auth import BillSessionAuthenticator
from .config import BillConfig
from .errors import Action, Rule
from .timeutil import parse_http_date

TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
MAX_RETRIES = 6  # 5xx, network errors, timeouts
MAX_CONCURRENCY_RETRIES = 10  # BDC_1322 / 429
MAX_RELOGINS = 3  # per request
CHUNK_BYTES = 1 << 20  # file downloads are written a chunk at a time
MAX_RETRY_AFTER = 600.0  # a Retry-After longer than this on a retryable answer is capped (BDC_1144 has its own bound)


class Backoff:
    """Exponential backoff with jitter, a floor and a ceiling; server hints (Retry-After) win."""

    def __init__(self, base: float = 1.0, cap: float = 60.0, rng: Optional[random.Random] = None) -> None:
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()

    def delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        if retry_after is not None:
            return min(max(0.0, retry_after), MAX_RETRY_AFTER)
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


class LimitedAdapter(HTTPAdapter):
    """Holds a limiter slot from sending a request until its whole answer is read; notes the fastest answer."""

    def __init__(self, limiter: RequestLimiter, pool_size: int) -> None:
        super().__init__(pool_connections=1, pool_maxsize=pool_size)
        self._limiter = limiter
        self.fastest_answer_s = float("inf")  # request sent to answer read (no limiter wait): BILL's latency, at best

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self._limiter.acquire()
        held_by_body = False
        try:
            sent = time.monotonic()
            response = super().send(request, *args, **kwargs)
            if kwargs.get("stream") and response.status_code < 300:
                held_by_body = True  # a file streamed to disk: the slot is freed when the response is closed
                _release_on_close(response, self._limiter.release)
                return response
            response.content  # noqa: B018 - read the body inside the slot
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
    ) -> None:
        self.prefix = prefix
        self.classify = classify
        self.session = requests.Session()
        self.session.auth = auth
        adapter = LimitedAdapter(limiter, pool_size=pool_size)
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
        self._sleep = sleep
        self._wall_clock = wall_clock
        self.backoff = backoff or Backoff()
        self.limiter = RequestLimiter(
            config.max_concurrent_requests, config.requests_per_hour, logger, clock=clock, sleep=sleep
        )
        adapter = self._adapter = LimitedAdapter(self.limiter, pool_size=config.max_concurrent_requests)
        self._login_http = requests.Session()
        self._http = requests.Session()
        for session in (self._login_http, self._http):
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.auth = BillSessionAuthenticator(
            username=config.username,
            password=config.password,
            organization_id=config.organization_id,
            dev_key=config.dev_key,
            login=self._post_login,
            clock=clock,
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
        if _origin(url) != _origin(self.config.base_url):
            raise ForeignLink(f"{context}: the link is on {_origin(url)}, not on the configured BILL host")
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

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json: Optional[Mapping[str, Any]] = None,
        context: str,
        is_login: bool = False,
        stream: bool = False,
    ) -> requests.Response:
        route = None if is_login else self._route_for(url)
        http = self._login_http if is_login else route.session if route else self._http
        retries = concurrency_retries = relogins = hourly_waits = 0
        while True:
            try:
                # a download follows no redirect: the session headers would go along to wherever it points
                response = http.request(
                    method, url, params=params, json=json, timeout=TIMEOUT, stream=stream, allow_redirects=not stream
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                retries += 1
                if retries > MAX_RETRIES:
                    raise errors.traced(
                        errors.NETWORK_RULE, f"Gave up on {context} after {MAX_RETRIES} retries: {type(exc).__name__}."
                    ) from None
                self._wait(self.backoff.delay(retries), f"{context}: {type(exc).__name__}, retry {retries}")
                continue
            if response.status_code < 300:
                return response
            bill_errors = errors.parse_errors(response)
            rule = (route.classify if route else errors.classify)(response.status_code, bill_errors, is_login=is_login)
            said = errors.describe(bill_errors) or f"HTTP {response.status_code}"
            detail = f"({context}: HTTP {response.status_code}; BILL said: {said})"
            if rule.action is Action.RELOGIN:
                relogins += 1
                if relogins > MAX_RELOGINS:
                    raise errors.traced(
                        Rule(Action.FAIL, "BILL rejected new sessions repeatedly.", errors._TRANSIENT), detail
                    )
                self.logger.info(f"BILL session rejected on {context}; logging in again.")
                self.auth.invalidate(response.request.headers.get("sessionId"))
                continue
            if rule.action is Action.RETRY:
                retries += 1
                if retries > MAX_RETRIES:
                    raise errors.traced(rule, f"Gave up after {MAX_RETRIES} retries {detail}")
                self._wait(self.backoff.delay(retries, _retry_after(response)), f"{said} on {context}, retry {retries}")
                continue
            if rule.action is Action.WAIT_CONCURRENCY:
                concurrency_retries += 1
                if concurrency_retries > MAX_CONCURRENCY_RETRIES:
                    raise errors.traced(rule, f"Gave up after {MAX_CONCURRENCY_RETRIES} retries {detail}")
                self._wait(
                    self.backoff.delay(concurrency_retries, _retry_after(response)),
                    f"{said} on {context} (rate limited), retry {concurrency_retries}",
                )
                continue
            if rule.action is Action.WAIT_HOURLY:
                hourly_waits += 1
                wait = _retry_after(response)
                if wait is None:
                    wait = self._seconds_to_next_hour() + 1.0
                bound = self.config.rate_limit_max_wait_minutes * 60
                if hourly_waits > 2 or wait > bound:
                    resume = self._wall_clock() + timedelta(seconds=wait)
                    raise errors.traced(
                        rule,
                        f"BILL accepts requests again at about {resume:%Y-%m-%d %H:%M} UTC, later than "
                        f"rate_limit_max_wait_minutes={self.config.rate_limit_max_wait_minutes} allows {detail}",
                    )
                self._wait(wait, f"BILL's hourly request limit reached on {context}; waiting for the window to reset")
                continue
            if rule.action is Action.SKIP_STREAM:
                raise errors.StreamUnavailable(f"{rule.message} {detail}")
            raise errors.traced(rule, detail)

    def _wait(self, seconds: float, why: str) -> None:
        self.logger.info(f"{why}: waiting {seconds:.1f} s.")
        self._sleep(seconds)

    def _seconds_to_next_hour(self) -> float:
        now = self._wall_clock()
        next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        return (next_hour - now).total_seconds()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _retry_after(response: requests.Response) -> Optional[float]:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = parse_http_date(value)
        if when is None:
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


def decode_json(response: requests.Response, context: str) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        snippet = response.content[:120].decode("utf-8", "replace")
        raise errors.traced(
            Rule(Action.FAIL, "BILL answered with something that is not JSON.", errors._TRANSIENT),
            f"({context}: HTTP {response.status_code}, content-type {response.headers.get('Content-Type')!r}, "
            f"starts with {snippet!r})",
        ) from None
