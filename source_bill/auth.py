"""BILL session authentication: one lazy login, a cached session, two headers on every call."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Mapping, Optional

import requests
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from requests.auth import AuthBase

from . import secrets

# BILL ends a session after 35 idle minutes (sync-token sessions last 48 hours); renew a little before.
IDLE_RENEW_SECONDS = 30 * 60


class BillSessionAuthenticator(AuthBase):
    """Attaches ``sessionId``, ``devKey`` and ``Accept`` to every request.

    ``login`` is a callable that POSTs the credentials to ``/v3/login`` and returns BILL's JSON answer;
    it is given by the client so the login shares the connector's retry, rate and concurrency limits.
    Thread-safe: workers that see the same expired session cause a single login.
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
    ) -> None:
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

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["sessionId"] = self.session_id()
        request.headers["devKey"] = self._dev_key
        request.headers["Accept"] = "application/json"
        return request

    def session_id(self) -> str:
        with self._lock:
            now = self._clock()
            if self._session_id is None or now - self._last_used > IDLE_RENEW_SECONDS:
                self._session_id = self._new_session()
            self._last_used = now
            return self._session_id

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
        return session_id
