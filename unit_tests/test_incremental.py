"""Incremental reads: request parameters, state per page, start_date, saved state, catch-up after edits."""

from __future__ import annotations

import re
from typing import Any, Dict, List

import pytest
from airbyte_cdk.models import AirbyteStateMessage, SyncMode
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpMocker
from airbyte_cdk.test.state_builder import StateBuilder

from source_bill.timeutil import format_instant, parse_instant
from unit_tests.builders import (
    catalog,
    config,
    list_request,
    login_request,
    login_response,
    page_response,
    record,
    source,
)

INCREMENTAL = SyncMode.incremental


def states(output: EntrypointOutput) -> List[Dict[str, Any]]:
    return [m.state.stream.stream_state.__dict__ for m in output.state_messages]


def gte(value: str) -> str:
    return f'updatedTime:gte:"{value}"'


def vendors_state(cursor: str, **pass_info: Any) -> List[AirbyteStateMessage]:
    """A saved state for vendors: the cursor and, given any, a ``pass`` key (a sync interrupted mid-pass)."""
    value: Dict[str, Any] = {"updatedTime": cursor}
    if pass_info:
        value["pass"] = pass_info
    return StateBuilder().with_stream_state("vendors", value).build()


def test_given_no_state_when_incremental_then_sorted_unfiltered_and_state_after_every_page(
    http_mocker: HttpMocker,
) -> None:
    page1 = [record(i, f"2024-01-01T00:00:{i:02d}.000+00:00") for i in range(3)]
    page2 = [record(i, f"2024-02-01T00:00:{i:02d}.000+00:00") for i in range(3, 5)]
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("vendors"), page_response(page1, "t1", date="Tue, 01 Oct 2024 00:00:00 GMT"))
    http_mocker.get(list_request("vendors", page="t1"), page_response(page2, date="Tue, 01 Oct 2024 00:00:01 GMT"))

    # one request slot: the stream is read as one query (with more, a large stream is cut into slices)
    output = read(source(), config(max_concurrent_requests=1), catalog("vendors", mode=INCREMENTAL))

    assert len(output.records) == 5
    cursors = [s["updatedTime"] for s in states(output)]
    assert cursors == ["2024-01-01T00:00:02.000Z", "2024-02-01T00:00:04.000Z", "2024-02-01T00:00:04.000Z"]
    assert states(output)[0]["pass"] == {"started": "2024-10-01T00:00:00.000Z"}
    assert states(output)[-1] == {"updatedTime": "2024-02-01T00:00:04.000Z"}  # a finished sync leaves no pass


def test_given_start_date_when_first_incremental_then_filter_from_start_date(http_mocker: HttpMocker) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(
        list_request("bills", filters=gte("2024-03-01T00:00:00.000Z")),
        page_response([record(1, "2024-03-05T10:00:00.000+00:00")]),
    )

    output = read(source(), config(start_date="2024-03-01T00:00:00Z"), catalog("bills", mode=INCREMENTAL))

    assert states(output)[-1] == {"updatedTime": "2024-03-05T10:00:00.000Z"}


def test_given_start_date_when_full_refresh_then_everything_is_read(http_mocker: HttpMocker) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills"), page_response([record(1, "2019-03-05T10:00:00.000+00:00")]))

    output = read(source(), config(start_date="2024-03-01T00:00:00Z"), catalog("bills"))

    assert len(output.records) == 1


def test_given_state_when_incremental_then_filter_is_fixed_for_every_page(http_mocker: HttpMocker) -> None:
    state = StateBuilder().with_stream_state("invoices", {"updatedTime": "2024-05-01T00:00:00.000Z"}).build()
    flt = gte("2024-05-01T00:00:00.000Z")
    http_mocker.post(login_request(), login_response())
    http_mocker.get(
        list_request("invoices", filters=flt), page_response([record(1, "2024-05-02T00:00:00.000+00:00")], "t1")
    )
    http_mocker.get(
        list_request("invoices", filters=flt, page="t1"), page_response([record(2, "2024-05-03T00:00:00.000+00:00")])
    )

    output = read(source(), config(start_date="2020-01-01T00:00:00Z"), catalog("invoices", mode=INCREMENTAL), state)

    assert len(output.records) == 2
    assert states(output)[-1] == {"updatedTime": "2024-05-03T00:00:00.000Z"}


def test_given_mixed_timestamp_forms_when_incremental_then_compared_as_instants(http_mocker: HttpMocker) -> None:
    rows = [
        record(1, "2024-01-01T09:00:00Z"),
        record(2, "2024-01-01T11:30:00.000+02:00"),  # 09:30 UTC
        record(3, "2024-01-01T09:45:00.123+0000"),
        record(4, "2024-01-01T09:50:00"),  # no zone: UTC
    ]
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("payments"), page_response(rows))

    output = read(source(), config(), catalog("payments", mode=INCREMENTAL))

    assert states(output)[-1] == {"updatedTime": "2024-01-01T09:50:00.000Z"}


def test_given_no_records_and_state_when_incremental_then_state_kept(http_mocker: HttpMocker) -> None:
    state = StateBuilder().with_stream_state("roles", {"updatedTime": "2024-05-01T00:00:00.000Z"}).build()
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("roles", filters=gte("2024-05-01T00:00:00.000Z")), page_response([]))

    output = read(source(), config(), catalog("roles", mode=INCREMENTAL), state)

    assert states(output)[-1] == {"updatedTime": "2024-05-01T00:00:00.000Z"}


def test_given_ties_across_a_page_boundary_when_resumed_from_the_checkpoint_then_ties_are_read_again(
    http_mocker: HttpMocker,
) -> None:
    tie = "2024-06-01T12:00:00.000+00:00"
    state = StateBuilder().with_stream_state("items", {"updatedTime": "2024-06-01T12:00:00.000Z"}).build()
    http_mocker.post(login_request(), login_response())
    http_mocker.get(
        list_request("classifications/items", filters=gte("2024-06-01T12:00:00.000Z")),
        page_response([record(i, tie) for i in range(100)], "t1"),
    )
    http_mocker.get(
        list_request("classifications/items", filters=gte("2024-06-01T12:00:00.000Z"), page="t1"),
        page_response([record(i, tie) for i in range(100, 150)]),
    )

    output = read(source(), config(), catalog("items", mode=INCREMENTAL), state)

    assert len({r.record.data["id"] for r in output.records}) == 150


def test_given_record_edited_mid_pass_when_incremental_then_catch_up_pass_from_the_boundary(
    http_mocker: HttpMocker,
) -> None:
    """Offset tokens: editing an already-read row shifts the rest left, so page 2 misses row 100.

    The edited row shows up at the end with an updatedTime later than page 1's Date: the connector reads
    again from the last updatedTime of page 1, where the shift can have started.
    """
    old = [record(i, f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}.000+00:00") for i in range(160)]
    edited = dict(old[5], name="edited", updatedTime="2024-10-01T00:00:30.000+00:00")
    page1, skipped, page2 = old[:100], old[100], [*old[101:160], edited]
    b1 = old[99]["updatedTime"]  # 2024-01-01T00:01:39
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("vendors"), page_response(page1, "t1", date="Tue, 01 Oct 2024 00:00:00 GMT"))
    http_mocker.get(list_request("vendors", page="t1"), page_response(page2, date="Tue, 01 Oct 2024 00:01:00 GMT"))
    # The rows that can have been skipped lie between the last of page 1 and the first of page 2.
    f2 = old[101]["updatedTime"]
    window = f'{gte(format_instant(parse_instant(b1)))},updatedTime:lte:"{format_instant(parse_instant(f2))}"'
    http_mocker.get(
        list_request("vendors", filters=window),
        page_response(old[99:102], date="Tue, 01 Oct 2024 00:02:00 GMT"),
    )

    output = read(source(), config(max_concurrent_requests=1), catalog("vendors", mode=INCREMENTAL))

    ids = {r.record.data["id"] for r in output.records}
    assert skipped["id"] in ids  # the row the offset shift hid from page 2
    latest = {r.record.data["id"]: r.record.data for r in output.records}
    assert latest[edited["id"]]["name"] == "edited"
    assert len(ids) == 160
    assert states(output)[-1] == {"updatedTime": "2024-10-01T00:00:30.000Z"}
    assert {"updatedTime": format_instant(parse_instant(b1))} in states(output)  # safe point while catching up
    assert output.is_in_logs("catch-up pass 1")


def test_given_edit_seen_on_the_only_page_when_incremental_then_no_catch_up(
    http_mocker: HttpMocker,
) -> None:
    """A record stamped after the page's Date is an edit made during the pass, but with one page there is no
    page boundary for it to have shifted rows across: nothing is read again."""
    rows = [record(i, "2024-01-01T00:00:00.000+00:00") for i in range(3)]
    edited = record(3, "2024-10-01T00:00:00.500+00:00", name="edited during the pass")
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("vendors"), page_response([*rows, edited], date="Tue, 01 Oct 2024 00:00:00 GMT"))

    output = read(source(), config(), catalog("vendors", mode=INCREMENTAL))

    assert len(output.records) == 4
    assert not output.errors
    assert not output.is_in_logs("catch-up")
    assert states(output)[-1] == {"updatedTime": "2024-10-01T00:00:00.500Z"}
    # and the http_mocker fixture fails the test on any request beyond the login and the one page


@pytest.mark.parametrize("cursor", ["not a date", "2024-99-99", 12345])
def test_given_corrupt_cursor_in_state_when_read_then_config_error(http_mocker: HttpMocker, cursor: Any) -> None:
    state = vendors_state(cursor)
    http_mocker.post(login_request(), login_response())  # may or may not be used before the state is read
    output = read(source(), config(), catalog("vendors", mode=INCREMENTAL), state)
    http_mocker.clear_all_matchers()

    assert output.errors
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error"
    assert "not a date-time" in error.message and "vendors" in error.message


@pytest.mark.parametrize(
    "read_ranges",
    ["2024-03-01T00:00:00.000Z", [["2024-03-01T00:00:00.000Z"]], [["2024-03-01T00:00:00.000Z", "soon"]], [7]],
)
def test_given_corrupt_finished_ranges_in_state_when_read_then_config_error(
    http_mocker: HttpMocker, read_ranges: Any
) -> None:
    state = vendors_state("2024-02-01T00:00:00.000Z", started="2024-05-01T00:00:00.000Z", read=read_ranges)
    http_mocker.post(login_request(), login_response())
    output = read(source(), config(), catalog("vendors", mode=INCREMENTAL), state)
    http_mocker.clear_all_matchers()

    assert output.errors
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error"
    assert "pass.read" in error.message and "vendors" in error.message


def test_given_mid_pass_state_with_finished_ranges_when_resumed_then_only_the_ranges_around_them_are_read(
    http_mocker: HttpMocker,
) -> None:
    """The interrupted pass had read everything below 02-01 and, in other slices, 03-01..04-01 and 05-01..05-10.
    No edit was seen then or now: the resumed pass reads the three gaps and nothing else (HttpMocker fails on any
    other request), and its state keeps what is finished."""
    state = vendors_state(
        "2024-02-01T00:00:00.000Z",
        started="2024-06-01T00:00:00.000Z",
        lower="2024-01-01T00:00:00.000Z",
        read=[
            ["2024-03-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"],
            ["2024-05-01T00:00:00.000Z", "2024-05-10T00:00:00.000Z"],
        ],
    )
    http_mocker.post(login_request(), login_response())
    # BILL's clock: nothing after the pass began, so no edit; the open-ended range is served last (no tail read)
    served = "Sat, 01 Jun 2024 00:00:00 GMT"
    http_mocker.get(
        list_request("vendors", filters=gte("2024-02-01T00:00:00.000Z") + ',updatedTime:lt:"2024-03-01T00:00:00.000Z"'),
        page_response([record(1, "2024-02-15T00:00:00.000+00:00")], date=served),
    )
    http_mocker.get(
        list_request("vendors", filters=gte("2024-04-01T00:00:00.000Z") + ',updatedTime:lt:"2024-05-01T00:00:00.000Z"'),
        page_response([record(2, "2024-04-15T00:00:00.000+00:00")], date=served),
    )
    http_mocker.get(
        list_request("vendors", filters=gte("2024-05-10T00:00:00.000Z")),
        page_response([record(3, "2024-05-20T00:00:00.000+00:00")], date="Sat, 01 Jun 2024 00:00:01 GMT"),
    )

    output = read(source(), config(), catalog("vendors", mode=INCREMENTAL), state)

    assert not output.errors
    assert sorted(r.record.data["id"] for r in output.records) == [record(n)["id"] for n in (1, 2, 3)]
    assert output.is_in_logs(re.escape("2 updatedTime range(s) above 2024-02-01T00:00:00.000Z were read in full"))
    assert not output.is_in_logs("catch-up")
    assert states(output)[-1] == {"updatedTime": "2024-05-20T00:00:00.000Z"}
    mid = [s for s in states(output) if "pass" in s]
    assert mid
    for state_ in mid:  # no mid-pass state forgets a finished range: it is above the cursor or merged into it
        ranges = state_["pass"].get("read", [])
        assert state_["updatedTime"] >= "2024-05-10T00:00:00.000Z" or any(
            low <= "2024-05-01T00:00:00.000Z" and high >= "2024-05-10T00:00:00.000Z" for low, high in ranges
        ), state_


def test_given_mid_pass_state_with_finished_ranges_and_an_edit_seen_when_resumed_then_finished_ranges_reread(
    http_mocker: HttpMocker,
) -> None:
    """The interrupted pass saw an edit (pass.edit): rows may have been skipped at page boundaries inside the ranges
    it had finished, whose page timings are gone. The resumed pass reads the gaps, then re-reads everything that
    pass covered: its lower bound to the cursor, and each finished range."""
    state = vendors_state(
        "2024-02-01T00:00:00.000Z",
        started="2024-06-01T00:00:00.000Z",
        lower="2024-01-01T00:00:00.000Z",
        read=[["2024-03-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"]],
        edit="2024-06-01T00:05:00.000Z",
    )
    http_mocker.post(login_request(), login_response())
    served = "Sat, 01 Jun 2024 00:10:00 GMT"
    lt = ',updatedTime:lt:"2024-03-01T00:00:00.000Z"'
    http_mocker.get(
        list_request("vendors", filters=gte("2024-02-01T00:00:00.000Z") + lt),
        page_response([record(1, "2024-02-15T00:00:00.000+00:00")], date=served),
    )
    http_mocker.get(
        list_request("vendors", filters=gte("2024-04-01T00:00:00.000Z")),  # served last: no tail read
        page_response([record(2, "2024-06-01T00:05:00.000+00:00")], date="Sat, 01 Jun 2024 00:10:01 GMT"),
    )
    for low, high, n in (("2024-01-01", "2024-02-01", 3), ("2024-03-01", "2024-04-01", 4)):
        http_mocker.get(
            list_request("vendors", filters=gte(f"{low}T00:00:00.000Z") + f',updatedTime:lte:"{high}T00:00:00.000Z"'),
            page_response([record(n, f"{low}T12:00:00.000+00:00")], date=served),
        )

    output = read(source(), config(), catalog("vendors", mode=INCREMENTAL), state)

    assert not output.errors
    assert sorted(r.record.data["id"] for r in output.records) == [record(n)["id"] for n in (1, 2, 3, 4)]
    assert output.is_in_logs("catch-up pass 1")
    assert states(output)[-1] == {"updatedTime": "2024-06-01T00:05:00.000Z"}


def test_given_cursor_in_the_future_when_read_then_warns_and_reads_from_start_date(http_mocker: HttpMocker) -> None:
    state = vendors_state("2999-01-01T00:00:00.000Z")
    http_mocker.post(login_request(), login_response())
    http_mocker.get(
        list_request("vendors", filters=gte("2024-01-01T00:00:00.000Z")),
        page_response([record(1, "2024-02-01T00:00:00.000+00:00")]),
    )

    output = read(source(), config(start_date="2024-01-01T00:00:00Z"), catalog("vendors", mode=INCREMENTAL), state)

    assert len(output.records) == 1
    assert output.is_in_logs("in the future")


def test_given_mid_pass_state_when_resumed_and_an_edit_happened_during_the_interrupted_pass_then_reads_from_its_start(
    http_mocker: HttpMocker,
) -> None:
    """The interrupted pass began at 00:00:00 from 2024-01-01; its page timings are gone. A record edited since
    it began may have shifted rows under it, so the connector re-reads what it covered: from its lower bound to the
    cursor it saved."""
    state = (
        StateBuilder()
        .with_stream_state(
            "bills",
            {
                "updatedTime": "2024-03-01T00:00:00.000Z",
                "pass": {"started": "2024-10-01T00:00:00.000Z", "lower": "2024-01-01T00:00:00.000Z"},
            },
        )
        .build()
    )
    late = record(7, "2024-10-01T00:00:40.000+00:00")
    http_mocker.post(login_request(), login_response())
    http_mocker.get(
        list_request("bills", filters=gte("2024-03-01T00:00:00.000Z")),
        page_response([record(3, "2024-03-02T00:00:00.000+00:00"), late], date="Tue, 01 Oct 2024 00:05:00 GMT"),
    )
    http_mocker.get(
        list_request("bills", filters=gte("2024-01-01T00:00:00.000Z") + ',updatedTime:lte:"2024-03-01T00:00:00.000Z"'),
        page_response([record(1, "2024-02-01T00:00:00.000+00:00")], date="Tue, 01 Oct 2024 00:06:00 GMT"),
    )

    output = read(source(), config(), catalog("bills", mode=INCREMENTAL), state)

    assert {r.record.data["id"] for r in output.records} >= {record(1)["id"], record(3)["id"], late["id"]}
    assert states(output)[-1] == {"updatedTime": "2024-10-01T00:00:40.000Z"}
