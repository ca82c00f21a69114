"""Waits that make sense (any Retry-After, bounded per request and in check), dates BILL accepts, state BILL's
connector can read, and the secret filter's excerpts, through the entrypoint with requests-mock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, List

import pytest
from airbyte_cdk.models import (
    AirbyteGlobalState,
    AirbyteStateBlob,
    AirbyteStateMessage,
    AirbyteStateType,
    AirbyteStreamState,
    StreamDescriptor,
    SyncMode,
)
from airbyte_cdk.test.entrypoint_wrapper import _run_command, read
from airbyte_cdk.test.mock_http import HttpMocker

from source_bill import SourceBill
from source_bill.client import MAX_CONCURRENCY_RETRIES, MAX_RETRY_AFTER, REQUEST_DEADLINE_S
from source_bill.secrets import masked_excerpt, register
from unit_tests.builders import (
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

# A wait longer than the bound fails the request at once (one request); anything unreadable, negative or short is
# retried with the usual backoff until the retries run out.
TOO_LONG = ["inf", "1e12", "1e309", "Fri, 31 Dec 9999 23:59:59 GMT"]
RETRIED = ["-inf", "nan", "-5", "abc", "", " 3 ", "0"]
ODD_RETRY_AFTER = [(value, 1) for value in TOO_LONG] + [(value, MAX_CONCURRENCY_RETRIES + 1) for value in RETRIED]


@pytest.mark.parametrize(("value", "requests_sent"), ODD_RETRY_AFTER)
def test_given_any_retry_after_on_429_when_reading_then_no_crash_and_waits_stay_bounded(
    value: str, requests_sent: int, http_mocker: HttpMocker
) -> None:
    """Breaks on OverflowError ("inf", "1e12" once turned into a wait) or on waits beyond the per-request bound."""
    sleeps: List[float] = []
    http_mocker.post(login_request(), login_response())
    answer = error_response("error_bdc_1322", 429, {"Retry-After": value})
    http_mocker.get(list_request("customers"), [answer] * requests_sent)

    output = read(source(sleeps), config(), catalog("customers"))

    assert all(0 <= s <= MAX_RETRY_AFTER for s in sleeps)
    assert sum(sleeps) <= REQUEST_DEADLINE_S
    assert len(output.errors) >= 1
    error = output.errors[0].trace.error
    assert error.failure_type.value == "transient_error", error.message
    assert "Something went wrong" not in (error.message or "")


def test_given_retry_after_3600_on_429_when_reading_then_fails_at_once_saying_when_to_retry(
    http_mocker: HttpMocker,
) -> None:
    """Breaks if the connector waits 600 s per try for up to 10 tries (about 100 minutes) instead."""
    sleeps: List[float] = []
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("customers"), error_response("error_bdc_1322", 429, {"Retry-After": "3600"}))

    output = read(source(sleeps), config(), catalog("customers"))

    assert sleeps == []
    message = output.errors[-1].trace.error.message
    assert "retry after" in message and "UTC" in message


def test_given_retry_after_600_each_time_when_reading_then_total_wait_is_bounded(http_mocker: HttpMocker) -> None:
    sleeps: List[float] = []
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("customers"), [error_response("error_bdc_1322", 429, {"Retry-After": "600"})] * 2)

    output = read(source(sleeps), config(), catalog("customers"))

    assert output.errors[0].trace.error.failure_type.value == "transient_error"  # the stream's error, not the summary
    assert sleeps == [600.0]  # a second 600 s wait would pass the 15 minutes one request may wait


def run_check(tmp_path: Path, src: SourceBill, **overrides: Any) -> Any:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(**overrides)))
    output = _run_command(src, ["check", "--config", str(path)])
    return output.connection_status_messages[0].connectionStatus


def test_given_429_with_retry_after_600_when_checking_then_check_fails_without_waiting(
    http_mocker: HttpMocker, tmp_path: Path
) -> None:
    sleeps: List[float] = []
    http_mocker.post(login_request(), error_response("error_bdc_1322", 429, {"Retry-After": "600"}))

    status = run_check(tmp_path, source(sleeps))

    assert sleeps == []
    assert status.status.value == "FAILED" and "retry after" in status.message


def test_given_bdc_1144_when_checking_then_fails_at_once_and_says_when_bill_accepts_requests(
    http_mocker: HttpMocker, tmp_path: Path
) -> None:
    sleeps: List[float] = []
    http_mocker.post(login_request(), error_response("error_bdc_1144", 400))

    status = run_check(tmp_path, source(sleeps))

    assert sleeps == []
    assert "accepts requests again after about" in status.message and "later than check waits" in status.message


def test_given_bdc_1144_after_two_waits_when_reading_then_the_message_says_bill_still_refused(
    http_mocker: HttpMocker,
) -> None:
    """The message says the true reason: BILL kept refusing after two waits, not that the wait was too long."""
    sleeps: List[float] = []
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("customers"), [error_response("error_bdc_1144", 400, {"Retry-After": "5"})] * 3)

    output = read(source(sleeps), config(), catalog("customers"))

    assert sleeps == [5.0, 5.0]
    message = output.errors[-1].trace.error.message
    assert "still refused requests after the connector waited twice" in message
    assert "later than" not in message


# --- dates ----------------------------------------------------------------------------------------------------
def test_given_a_start_date_before_year_1000_when_reading_then_the_filter_has_a_four_digit_year(
    http_mocker: HttpMocker,
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(
        list_request("customers", filters='updatedTime:gte:"0999-03-04T05:06:07.000Z"'), page_response(records(0, 1))
    )

    output = read(source(), config(start_date="0999-03-04T05:06:07Z"), catalog("customers", mode=SyncMode.incremental))

    assert len(output.records) == 1 and output.errors == []


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00", "0001-01-01"]
)
def test_given_a_start_date_at_the_edge_of_the_range_when_checking_then_config_error(
    value: str, tmp_path: Path
) -> None:
    status = run_check(tmp_path, source(), start_date=value)
    assert status.status.value == "FAILED" and "start_date" in status.message


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_given_a_state_cursor_at_the_edge_of_the_range_when_reading_then_config_error(value: str) -> None:
    state = [
        AirbyteStateMessage(
            type=AirbyteStateType.STREAM,
            stream=AirbyteStreamState(
                stream_descriptor=StreamDescriptor(name="customers"),
                stream_state=AirbyteStateBlob(updatedTime=value),
            ),
        )
    ]
    with HttpMocker() as http_mocker:
        http_mocker.post(login_request(), login_response())
        output = read(source(), config(), catalog("customers", mode=SyncMode.incremental), state=state)

    assert output.errors[-1].trace.error.failure_type.value == "config_error"
    assert "updatedTime" in output.errors[-1].trace.error.message


def test_given_a_global_state_message_when_reading_then_config_error_with_a_message() -> None:
    state = [
        AirbyteStateMessage(
            type=AirbyteStateType.GLOBAL,
            global_=AirbyteGlobalState(shared_state=AirbyteStateBlob(cursor="x"), stream_states=[]),
        )
    ]
    output = read(source(), config(), catalog("customers", mode=SyncMode.incremental), state=state)

    error = output.errors[-1].trace.error
    assert error.failure_type.value == "config_error"
    assert "GLOBAL state" in error.message


# --- the secret filter's excerpts -------------------------------------------------------------------------------
SECRET = "Sec-Ibis4Wombat-81726"


@pytest.mark.parametrize("limit", [10, 50, 120, 200])
def test_given_a_secret_at_every_offset_when_an_excerpt_is_cut_then_no_piece_of_it_shows(limit: int) -> None:
    """Breaks if an excerpt is cut before it is masked (``mask(text[:n])``): the part before the cut escapes."""
    register(SECRET)
    for offset in range(0, limit + 5):
        text = "x" * offset + SECRET + "x" * 300
        for content in (text, text.encode(), {"note": text}):
            excerpt = masked_excerpt(content, limit)
            assert len(excerpt) <= limit + 3
            for n in range(3, len(SECRET) + 1):
                for start in range(0, len(SECRET) - n + 1):
                    assert SECRET[start : start + n] not in excerpt, (offset, excerpt)


def test_given_every_message_type_when_the_cli_writes_it_then_secrets_are_masked() -> None:
    """The CLI's output layer masks every line, whatever its type (SPEC, CONTROL, CONNECTION_STATUS too)."""
    import os

    from source_bill.output import LineOutput

    register(SECRET)
    read_end, write_end = os.pipe()
    out = LineOutput(write_end, flush_interval=0)
    for kind in ("SPEC", "CONTROL", "CONNECTION_STATUS", "RECORD", "STATE", "LOG", "TRACE"):
        out.write(json.dumps({"type": kind, "x": f"..{SECRET}..", "y": json.dumps(SECRET)}) + "\n")
    out.close()
    os.close(write_end)
    with os.fdopen(read_end) as handle:
        lines = handle.read().splitlines()
    assert len(lines) == 7
    assert all(SECRET not in line and SECRET[:8] not in line for line in lines)
    assert datetime.now(UTC)  # the module's clock is untouched
