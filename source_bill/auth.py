"""How the connector signs in to BILL: a session from ``POST /v3/login``, or an OAuth client-credentials token.

Either way one small ``requests`` auth object holds the credential, fetches it lazily, renews it before BILL
would end it and once per rejection, and is shared by every stream and by check through the client.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Callable, Mapping, Optional, Protocol, Union

import requests
from airbyte_cdk.sources.streams.http.requests_native_auth import Oauth2Authenticator
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from requests.auth import AuthBase

from . import secrets
from .config import ClientCredentials, UserLogin

# BILL ends a session after 35 idle minutes (sync-token sessions after 48 idle hours); renew a little before.
IDLE_RENEW_SECONDS = 30 * 60
SYNC_TOKEN_IDLE_RENEW_SECONDS = 47 * 3600
# BILL answers a sync token's login with the id of its system user (``syu...``), not of a person (``006...``).
SYNC_TOKEN_USER_PREFIX = "syu"
# An OAuth token is renewed this long before its expires_in runs out (a tenth of its life when that is shorter).
TOKEN_RENEW_MARGIN_SECONDS = 60.0


class BillAuth(Protocol):
    """What the client needs of a sign-in method."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest: ...

    def sign_in(self) -> None:
        """Hold a credential now (check signs in before it reads)."""

    def reject(self, request: requests.PreparedRequest) -> None:
        """BILL refused the credential ``request`` carried: renew it, once however many workers saw it refused."""

    @property
    def failed(self) -> Optional[AirbyteTracedException]:
        """The sign-in failure that ended this run's sign-ins (refused, or failing after every retry), if one did."""


class BillSessionAuthenticator(AuthBase):
    """Attaches ``sessionId``, ``devKey`` and ``Accept`` to every request.

    ``login`` is a callable that POSTs the credentials to ``/v3/login`` and returns BILL's JSON answer;
    it is given by the client so the login shares the connector's retry, rate and concurrency limits.
    Thread-safe: workers that see the same expired session cause a single login. A sync token's session
    (``is_sync_token``, or a login answered with a sync token's user id) is not renewed every 30 minutes.
    """

    def __init__(
        self,
        *,
        username: str,
        password: str,
        organization_id: str,
        dev_key: str,
        login: Callable[[Mapping[str, str]], Mapping[str, Any]],
        clock: Callable[[], float] = time.monotonic,
        is_sync_token: bool = False,
    ) -> None:
        secrets.register(password)
        secrets.register(dev_key)
        self._credentials = {
            "username": username,
            "password": password,
            "organizationId": organization_id,
            "devKey": dev_key,
        }
        self._dev_key = dev_key
        self._login = login
        self._clock = clock
        self._lock = threading.Lock()
        self._session_id: Optional[str] = None
        self._last_used = 0.0
        self._refused: Optional[AirbyteTracedException] = None
        self._is_sync_token = is_sync_token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["sessionId"] = self.session_id()
        request.headers["devKey"] = self._dev_key
        request.headers["Accept"] = "application/json"
        return request

    def session_id(self) -> str:
        with self._lock:
            now = self._clock()
            if self._session_id is None or now - self._last_used > self.idle_renew_seconds:
                self._session_id = self._new_session()
            self._last_used = now
            return self._session_id

    @property
    def idle_renew_seconds(self) -> float:
        return SYNC_TOKEN_IDLE_RENEW_SECONDS if self._is_sync_token else IDLE_RENEW_SECONDS

    def sign_in(self) -> None:
        self.session_id()

    def reject(self, request: requests.PreparedRequest) -> None:
        self.invalidate(request.headers.get("sessionId"))

    def invalidate(self, rejected_session_id: Optional[str]) -> None:
        """BILL rejected ``rejected_session_id``: forget it, unless another worker already replaced it."""
        with self._lock:
            if rejected_session_id is None or rejected_session_id == self._session_id:
                self._session_id = None

    @property
    def failed(self) -> Optional[AirbyteTracedException]:
        """The sign-in failure that ended this run's logins, if one did."""
        return self._refused

    def refresh_and_set_access_token(self) -> None:
        """The CDK's re-login hook (duck-typed by its HttpClient)."""
        self.invalidate(None)

    def _new_session(self) -> str:
        if self._refused is not None:
            raise self._refused  # asking again only risks a lockout (BDC_1110) or BILL's 200 logins an hour
        try:
            answer = self._login(self._credentials)
        except AirbyteTracedException as exc:
            # Refused, or failing after the whole login schedule: said once; no stream signs in again this run.
            self._refused = exc
            raise
        session_id = answer.get("sessionId") if isinstance(answer, Mapping) else None
        if not isinstance(session_id, str) or not session_id:
            message = "BILL's login answer has no sessionId; BILL may have changed its login API."
            raise AirbyteTracedException(message=message, internal_message=message)
        secrets.register(session_id)  # before anything can log it
        user_id = answer.get("userId")
        if isinstance(user_id, str) and user_id.startswith(SYNC_TOKEN_USER_PREFIX):
            self._is_sync_token = True
        return session_id


class BillOAuthAuthenticator(Oauth2Authenticator):
    """``Authorization: Bearer <token>`` from BILL's OAuth client-credentials grant, and nothing else.

    The CDK's authenticator builds the form (``grant_type=client_credentials``, ``client_id``,
    ``client_secret``), reads ``access_token`` and ``expires_in`` (an hour when absent) and renews an expired
    token under its lock, once for all workers. Here the token request goes through ``post_token`` (the
    client's one HTTP path: limiter, pacing, retries, error table), the token is renewed a little before it
    expires by ``now`` (injectable), and a token BILL refused is renewed once however many workers saw it.
    A plain ``requests`` auth object: anything that calls BILL with this token (e.g. Spend & Expense) can use it.
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        post_token: Callable[[str, Mapping[str, str]], Mapping[str, Any]],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        secrets.register(client_secret)  # before the first request can log it
        super().__init__(
            token_refresh_endpoint=token_url,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=None,  # type: ignore[arg-type]  # client credentials have none; the form leaves it out
            grant_type="client_credentials",
        )
        self._post_token = post_token
        self._now = now
        self._renew_at: Optional[datetime] = None
        self._refused: Optional[AirbyteTracedException] = None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self.get_auth_header())
        request.headers["Accept"] = "application/json"
        return request

    def sign_in(self) -> None:
        self.get_access_token()

    @property
    def failed(self) -> Optional[AirbyteTracedException]:
        """The token-request failure that ended this run's token requests, if one did."""
        return self._refused

    def reject(self, request: requests.PreparedRequest) -> None:
        sent = request.headers.get("Authorization", "")
        with self._token_refresh_lock:
            if self.access_token is not None and sent == f"Bearer {self.access_token}":
                self._renew_at = None  # the next request fetches a new token; later rejections of this one do not

    def token_has_expired(self) -> bool:
        return self.access_token is None or self._renew_at is None or self._now() >= self._renew_at

    def set_token_expiry_date(self, value: Any) -> None:
        super().set_token_expiry_date(value)
        expiry = self.get_token_expiry_date()
        life = (expiry - self._now()).total_seconds()
        self._renew_at = expiry - timedelta(seconds=min(TOKEN_RENEW_MARGIN_SECONDS, max(0.0, life) / 10))

    def _parse_token_expiration_date(self, value: Union[str, int]) -> Any:
        try:
            seconds = float(str(value))
        except ValueError:
            raise AirbyteTracedException(
                message="BILL's token answer has an expires_in that is not a number of seconds.",
                internal_message=f"expires_in={value!r}",
            ) from None
        return self._now() + timedelta(seconds=seconds)

    def _default_token_expiry_date(self) -> Any:
        return self._now() + timedelta(hours=1)

    def _make_handled_request(self) -> Any:
        if self._refused is not None:
            raise self._refused  # BILL refused this client: asking again per request changes nothing
        form = {key: value for key, value in self.build_refresh_request_body().items() if value is not None}
        try:
            answer = self._post_token(self.get_token_refresh_endpoint(), form)
        except AirbyteTracedException as exc:
            # Refused, or failing after the whole retry schedule: said once; nothing asks for a token again this run.
            self._refused = exc
            raise
        token = answer.get(self.get_access_token_name())
        if not isinstance(token, str) or not token:
            message = "BILL's token answer has no access_token; BILL may have changed its OAuth API."
            raise AirbyteTracedException(message=message, internal_message=message)
        secrets.register(token)  # before anything can log it
        return answer


def authenticator(
    credentials: Union[UserLogin, ClientCredentials],
    *,
    organization_id: str,
    token_url: str,
    login: Callable[[Mapping[str, str]], Mapping[str, Any]],
    post_token: Callable[[str, Mapping[str, str]], Mapping[str, Any]],
    clock: Callable[[], float],
    now: Callable[[], datetime],
) -> Union[BillSessionAuthenticator, BillOAuthAuthenticator]:
    if isinstance(credentials, ClientCredentials):
        return BillOAuthAuthenticator(
            token_url=token_url,
            client_id=credentials.client_id,
            client_secret=credentials.client_secret,
            post_token=post_token,
            now=now,
        )
    return BillSessionAuthenticator(
        username=credentials.username,
        password=credentials.password,
        organization_id=organization_id,
        dev_key=credentials.dev_key,
        login=login,
        clock=clock,
        is_sync_token=credentials.is_sync_token,
    )
