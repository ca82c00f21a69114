"""Helpers shared by unit_tests/ and integration_tests/ (both test packages can import it, from the repo root).

Import from here instead of copying a helper into a test file.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import pytest
import requests_mock
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse


# --- HTTP mocked exactly ------------------------------------------------------------------------------------
class ExactHttpMocker(HttpMocker):
    """The CDK's HttpMocker, strict: every registered request is answered exactly as many times as it has
    responses, and a request that matches nothing is recorded and fails the test.

    The CDK's own check is "at least" (and requests-mock repeats the last response), so a connector that logs
    in before every request would still pass a test that registered one login; and a request that matches
    nothing only raises inside the connector, where it becomes an error trace a test may never look at.
    """

    def __init__(self) -> None:
        super().__init__()
        self.registered: List[Tuple[HttpRequest, int]] = []
        self.unmatched: List[str] = []

    def __enter__(self) -> ExactHttpMocker:
        super().__enter__()
        # requests-mock tries matchers newest first: registered first, this one is tried last, only when no
        # registered request matched. It records the request and matches nothing, so the request still fails.
        self._mocker.register_uri(requests_mock.ANY, requests_mock.ANY, additional_matcher=self._record_unmatched)
        return self

    def _record_unmatched(self, request: Any) -> bool:
        self.unmatched.append(f"{request.method} {request.url}")
        return False

    def _mock_request_method(self, method: Any, request: HttpRequest, responses: Any) -> None:
        count = 1 if isinstance(responses, HttpResponse) else len(responses)
        self.registered.append((request, count))
        super()._mock_request_method(method, request, responses)

    def calls(self, request: HttpRequest) -> int:
        """How many times the connector sent ``request`` (the object given to get/post)."""
        return next(m.actual_number_of_matches for m in self._get_matchers() if m.request is request)

    def clear_all_matchers(self) -> None:
        super().clear_all_matchers()
        self.registered = []

    def validate(self) -> None:
        problems = [f"unexpected request (no registered request matches it): {u}" for u in self.unmatched]
        for request, expected in self.registered:
            actual = self.calls(request)
            if actual != expected:
                problems.append(f"{request} was sent {actual} times, expected exactly {expected}")
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)
