"""Paging, end-of-data forms, sessions and archived records, through the public entrypoint."""

from __future__ import annotations

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.mock_http import HttpMocker

from tests_support import ExactHttpMocker
from unit_tests.builders import (
    catalog,
    config,
    error_response,
    list_request,
    login_request,
    login_response,
    page_response,
    record,
    records,
    source,
)


def test_given_three_pages_when_read_full_refresh_then_every_record_once_in_order(http_mocker: HttpMocker) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("vendors"), page_response(records(0, 100), "tok-1"))
    http_mocker.get(list_request("vendors", page="tok-1"), page_response(records(100, 100), "tok-2"))
    http_mocker.get(list_request("vendors", page="tok-2"), page_response(records(200, 37)))

    output = read(source(), config(), catalog("vendors"))

    assert [r.record.data["id"] for r in output.records] == [r["id"] for r in records(0, 237)]
    assert not output.errors


@pytest.mark.parametrize("end_value", ["absent", None, ""], ids=["key-absent", "null", "empty-string"])
def test_given_last_page_in_each_end_form_when_read_then_stops(http_mocker: HttpMocker, end_value: object) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("customers"), page_response(records(0, 100), "tok-1"))
    last = page_response(records(100, 5)) if end_value == "absent" else page_response(records(100, 5), end_value)
    http_mocker.get(list_request("customers", page="tok-1"), last)

    output = read(source(), config(), catalog("customers"))

    assert len(output.records) == 105
    assert not output.errors


def test_given_empty_page_with_next_page_when_read_then_follows_it(http_mocker: HttpMocker) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills"), page_response(records(0, 100), "tok-1"))
    http_mocker.get(list_request("bills", page="tok-1"), page_response([], "tok-2"))
    http_mocker.get(list_request("bills", page="tok-2"), page_response(records(100, 3), None))

    output = read(source(), config(), catalog("bills"))

    assert len(output.records) == 103


def test_given_next_page_that_repeats_when_read_then_fails_instead_of_looping(http_mocker: HttpMocker) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills"), page_response(records(0, 100), "tok-1"))
    http_mocker.get(list_request("bills", page="tok-1"), page_response(records(100, 100), "tok-1"))

    output = read(source(), config(), catalog("bills"))

    assert len(output.records) == 200
    assert output.errors
    assert "came back again" in output.errors[0].trace.error.message


def test_given_session_expires_mid_stream_when_read_then_logs_in_once_more_and_loses_nothing(
    http_mocker: HttpMocker,
) -> None:
    http_mocker.post(login_request(), [login_response("session-1"), login_response("session-2")])
    http_mocker.get(list_request("vendors", session_id="session-1"), page_response(records(0, 100), "tok-1"))
    http_mocker.get(
        list_request("vendors", page="tok-1", session_id="session-1"), error_response("error_bdc_1109", 401)
    )
    http_mocker.get(list_request("vendors", page="tok-1", session_id="session-2"), page_response(records(100, 50)))

    output = read(source(), config(), catalog("vendors"))

    assert [r.record.data["id"] for r in output.records] == [r["id"] for r in records(0, 150)]
    assert not output.errors


def test_given_session_rejected_with_bdc_1109_in_a_400_when_read_then_logs_in_again(http_mocker: HttpMocker) -> None:
    http_mocker.post(login_request(), [login_response("session-1"), login_response("session-2")])
    http_mocker.get(list_request("users", session_id="session-1"), error_response("error_bdc_1109", 400))
    http_mocker.get(list_request("users", session_id="session-2"), page_response(records(0, 2)))

    output = read(source(), config(), catalog("users"))

    assert len(output.records) == 2


def test_given_archived_records_when_read_then_emitted_unchanged(http_mocker: HttpMocker) -> None:
    archived = record(1, archived=True, address={"city": "Zürich"})
    active = record(2, archived=False)
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("vendors"), page_response([archived, active]))

    output = read(source(), config(), catalog("vendors"))

    assert [r.record.data for r in output.records] == [archived, active]


def test_given_composite_key_stream_when_read_then_no_sort_and_full_refresh(http_mocker: HttpMocker) -> None:
    rows = [{"cardAccountId": "card-1", "userId": f"006{i}", "archived": False} for i in range(3)]
    http_mocker.post(login_request(), login_response())
    http_mocker.get(
        list_request("funding-accounts/cards/users", sort=None, currentUser="false"), page_response(rows, "")
    )

    output = read(source(), config(), catalog("card_account_users"))

    assert [r.record.data for r in output.records] == rows
    assert output.most_recent_state.stream_state.__dict__ == {"__ab_no_cursor_state_message": True}


def test_given_classification_stream_when_read_then_uses_classifications_path(http_mocker: HttpMocker) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("classifications/chart-of-accounts"), page_response(records(0, 1)))
    http_mocker.get(list_request("recurringbills"), page_response(records(5, 1)))

    output = read(source(), config(), catalog("chart_of_accounts", "recurring_bills"))

    assert len(output.records) == 2


def test_given_two_streams_when_read_then_one_login_serves_both(http_mocker: ExactHttpMocker) -> None:
    login = login_request()
    http_mocker.post(login, login_response())
    http_mocker.get(list_request("roles"), page_response(records(0, 1)))
    http_mocker.get(list_request("users"), page_response(records(1, 1)))

    output = read(source(), config(), catalog("roles", "users", mode=SyncMode.full_refresh))

    assert len(output.records) == 2
    assert not output.errors
    assert http_mocker.calls(login) == 1  # the fixture also fails any registered request not sent exactly once
