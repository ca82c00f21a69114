"""BILL's errors and limits through the public entrypoint: retries, waits, skips, and loud failures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, List

import pytest
import requests
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpMocker, HttpResponse

from source_bill import SourceBill
from source_bill.client import MAX_RETRIES
from unit_tests.builders import (
    BASE,
    catalog,
    config,
    error_response,
    list_request,
    login_request,
    login_response,
    page_response,
    records,
    source,
)


def error_of(output: EntrypointOutput) -> Any:
    assert output.errors, "expected an error trace"
    return output.errors[0].trace.error


@pytest.mark.parametrize(
    "failure",
    [
        error_response("error_bdc_1001", 500),
        HttpResponse(
            "<html><body>502 Bad Gateway</body></html>", status_code=502, headers={"Content-Type": "text/html"}
        ),
        HttpResponse("", status_code=503),
        HttpResponse('{"message": "Gateway timeout"}', status_code=504),
    ],
    ids=["500-json", "502-html", "503-empty", "504-object"],
)
def test_given_server_errors_when_read_then_retried_with_backoff_and_nothing_lost(
    http_mocker: HttpMocker, failure: HttpResponse
) -> None:
    sleeps: List[float] = []
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("vendors"), [failure, failure, page_response(records(0, 100), "t1")])
    http_mocker.get(list_request("vendors", page="t1"), [failure, page_response(records(100, 20))])

    output = read(source(sleeps), config(), catalog("vendors"))

    assert [r.record.data["id"] for r in output.records] == [r["id"] for r in records(0, 120)]
    assert len(sleeps) == 3
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0  # exponential, with jitter


def test_given_server_errors_past_the_retry_budget_when_read_then_transient_error_names_stream_and_bill_message(
    http_mocker: HttpMocker,
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills"), [error_response("error_bdc_1001", 500)] * (MAX_RETRIES + 1))

    output = read(source(), config(), catalog("bills"))

    error = error_of(output)
    assert error.failure_type.value == "transient_error"
    assert "/v3/bills" in error.message and "BDC_1001" in error.message and "Unexpected system error" in error.message
    assert error.stream_descriptor.name == "bills"


def test_given_dropped_connections_when_read_then_retried(requests_mock: Any) -> None:
    sleeps: List[float] = []
    requests_mock.post(
        f"{BASE}/v3/login", [{"exc": requests.ConnectionError("reset")}, {"text": login_response().body}]
    )
    requests_mock.get(
        f"{BASE}/v3/users",
        [
            {"exc": requests.ConnectionError("dropped")},
            {"exc": requests.Timeout("slow")},
            {"json": {"results": records(0, 3)}},
        ],
    )

    output = read(source(sleeps), config(), catalog("users"))

    assert len(output.records) == 3
    assert len(sleeps) == 3


@pytest.mark.parametrize("status", [429, 400, 422, 503])
def test_given_bdc_1322_with_any_status_when_read_then_backs_off_and_retries(
    http_mocker: HttpMocker, status: int
) -> None:
    sleeps: List[float] = []
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("customers"), [error_response("error_bdc_1322", status), page_response(records(0, 2))])

    output = read(source(sleeps), config(), catalog("customers"))

    assert len(output.records) == 2
    assert len(sleeps) == 1 and sleeps[0] <= 1.0


def test_given_retry_after_when_rate_limited_then_it_wins(http_mocker: HttpMocker) -> None:
    sleeps: List[float] = []
    http_mocker.post(login_request(), login_response())
    http_mocker.get(
        list_request("customers"),
        [error_response("error_bdc_1322", 429, {"Retry-After": "7"}), page_response(records(0, 2))],
    )

    read(source(sleeps), config(), catalog("customers"))

    assert sleeps == [7.0]


def _at(text: str) -> Any:
    when = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return lambda: when


def test_given_hourly_limit_within_the_bound_when_read_then_waits_for_the_next_hour(http_mocker: HttpMocker) -> None:
    sleeps: List[float] = []
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("invoices"), [error_response("error_bdc_1144", 422), page_response(records(0, 1))])

    output = read(SourceBill(sleep=sleeps.append, wall_clock=_at("2026-01-05T10:45:00")), config(), catalog("invoices"))

    assert len(output.records) == 1
    assert sleeps == [15 * 60 + 1.0]
    assert output.is_in_logs("hourly request limit")


def test_given_hourly_limit_beyond_the_bound_when_read_then_transient_error_with_reset_time(
    http_mocker: HttpMocker,
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("invoices"), error_response("error_bdc_1144", 429))

    output = read(
        SourceBill(sleep=lambda s: None, wall_clock=_at("2026-01-05T10:45:00")),
        config(rate_limit_max_wait_minutes=5),
        catalog("invoices"),
    )

    error = error_of(output)
    assert error.failure_type.value == "transient_error"
    assert "2026-01-05 11:00 UTC" in error.message


def test_given_forbidden_stream_when_read_then_skipped_with_warning_and_others_synced(http_mocker: HttpMocker) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("funding-accounts/banks"), error_response("error_forbidden", 403))
    http_mocker.get(list_request("vendors"), page_response(records(0, 2)))

    output = read(source(), config(), catalog("bank_accounts", "vendors"))

    assert len(output.records) == 2
    assert not output.errors
    assert output.is_in_logs("Skipping stream bank_accounts")


@pytest.mark.parametrize(
    "body,words",
    [
        ("<html>maintenance</html>", "not JSON"),
        ('{"results": {"id": 1}}', "'results' is dict"),
        ('{"results": [{"name": "no id", "updatedTime": "2024-01-01T00:00:00Z"}]}', "lacks its primary key"),
        ('[{"id": "1"}]', "JSON list, not an object"),
        ('{"results": [], "nextPage": 7}', "nextPage is int"),
    ],
)
def test_given_malformed_answer_when_read_then_fails_loudly_naming_stream_and_page(
    http_mocker: HttpMocker, body: str, words: str
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("vendors"), HttpResponse(body))

    output = read(source(), config(), catalog("vendors"))

    error = error_of(output)
    assert words in error.message
    assert "vendors" in error.message and "/v3/vendors" in error.message


def test_given_catalog_with_unknown_stream_when_read_then_config_error() -> None:
    output = read(source(), config(), catalog("vendors_v2"))

    error = error_of(output)
    assert error.failure_type.value == "config_error"
    assert "vendors_v2" in error.internal_message


def test_given_session_rejected_after_every_login_when_read_then_fails_instead_of_looping(
    http_mocker: HttpMocker,
) -> None:
    http_mocker.post(login_request(), [login_response(f"s{i}") for i in range(4)])
    http_mocker.get(list_request("vendors"), [error_response("error_bdc_1109", 401)] * 4)

    output = read(source(), config(), catalog("vendors"))

    assert "rejected new sessions" in error_of(output).message


def test_given_wrong_password_when_reading_several_streams_then_bill_is_asked_once(http_mocker: HttpMocker) -> None:
    login = login_request()
    http_mocker.post(login, error_response("error_bdc_1101", 400))

    output = read(source(), config(), catalog("vendors", "bills", "users"))

    http_mocker.assert_number_of_calls(login, 1)  # more attempts would risk BILL's lockout (BDC_1110)
    assert all(e.trace.error.failure_type.value == "config_error" for e in output.errors)
    assert "username or password" in output.errors[0].trace.error.message


def test_given_retry_after_longer_than_allowed_when_retrying_then_fails_at_once_saying_when(
    http_mocker: HttpMocker,
) -> None:
    sleeps: List[float] = []
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("customers"), error_response("error_bdc_1001", 503, {"Retry-After": "86400"}))

    output = read(source(sleeps), config(), catalog("customers"))

    assert sleeps == []  # a day is far beyond what one request may wait: no 600 s waits that lead nowhere
    assert output.errors[0].trace.error.failure_type.value == "transient_error"
    assert "retry after about" in output.errors[0].trace.error.message
