"""The one HTTP path to BILL: limits, login, retries and errors, shared by every stream and by check."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any, Callable, Deque, Mapping, Optional, Tuple

import orjson
import requests
from requests.adapters import HTTPAdapter

from . import errors
from .auth import BillOAuthAuthenticator, BillSessionAuthenticator, authenticator
from .config import BillConfig
from .errors import Action, Rule
from .timeutil import parse_http_date

TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
MAX_RETRIES = 6  # 5xx, network errors, timeouts
MAX_CONCURRENCY_RETRIES = 10  # BDC_1322 / 429
MAX_RELOGINS = 3  # per request
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
        try:
            sent = time.monotonic()
            response = super().send(request, *args, **kwargs)
            response.content  # noqa: B018 - read the body inside the slot
            self.fastest_answer_s = min(self.fastest_answer_s, time.monotonic() - sent)
            return response
        finally:
            self._limiter.release()


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

    def url(self, path: str) -> str:
        return f"{self.config.base_url}/v3/{path.lstrip('/')}"

    @property
    def fastest_answer_s(self) -> float:
        """The shortest time BILL has taken to answer any request so far (login included): the network's and
        gateway's share of every request, without the cost of a particular query. ``inf`` before the first."""
        return self._adapter.fastest_answer_s

    def get(self, path: str, params: Optional[Mapping[str, Any]] = None, *, context: str = "") -> requests.Response:
        return self._send("GET", self.url(path), params=params, context=context or path)

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
        refused: Rule = errors.LOGIN_REJECTED,
    ) -> requests.Response:
        http = self._login_http if is_login else self._http
        retries = concurrency_retries = relogins = hourly_waits = 0
        while True:
            try:
                response = http.request(method, url, params=params, json=json, data=data, timeout=TIMEOUT)
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
