"""A child stream synced with its parent stream takes the parents from that stream's read: the parent list is read
once. Otherwise (another sync mode, another saved place) the child reads it itself and says why; a parent read that
stops part way is finished by the child, a refused one skips or fails the child, never leaves parents out."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest
from airbyte_cdk.models import AirbyteStateMessage, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpResponse
from airbyte_cdk.test.state_builder import StateBuilder

from tests_support import ExactHttpMocker, by_stream, state_dict, stream_states
from unit_tests.builders import (
    catalog,
    config,
    error_response,
    list_request,
    login_request,
    login_response,
    page_response,
    record,
    source,
)

FULL = SyncMode.full_refresh
INCREMENTAL = SyncMode.incremental
T1 = "2024-01-01T00:00:00.000+00:00"
T2 = "2024-01-02T00:00:00.000+00:00"
T3 = "2024-01-03T00:00:00.000+00:00"
# page 1 holds one updatedTime: no read of it is cut into slices (their requests would depend on timing)
PAGE_1 = [record(1, T1), record(2, T1), record(3, T1)]
PAGE_2 = [record(4, T3), record(5, T3)]
BILLS = PAGE_1 + PAGE_2
AFTER_PAGE_1 = 'updatedTime:gte:"2024-01-01T00:00:00.000Z"'  # the bills' state once page 1 is emitted (gte)
SEQUENTIAL_AND_PARALLEL = pytest.mark.parametrize("slots", [1, 3], ids=["sequential", "parallel"])


def doc(n: int) -> Dict[str, Any]:
    return {"id": f"00h{n:05d}", "name": f"d{n}.pdf", "createdTime": T1}


def docs_request(bill: Dict[str, Any], page: Optional[str] = None) -> Any:
    return list_request(f"documents/bills/{bill['id']}", sort=None, page=page)


def expect_documents(http_mocker: ExactHttpMocker, bills: List[Dict[str, Any]]) -> List[str]:
    """One document list per bill (the first one two pages long), each asked exactly once; their ids."""
    expected = []
    for n, bill in enumerate(bills):
        if n == 0:
            http_mocker.get(docs_request(bill), page_response([doc(100)], "d2"))
            http_mocker.get(docs_request(bill, page="d2"), page_response([doc(101)]))
            expected += [doc(100)["id"], doc(101)["id"]]
        else:
            http_mocker.get(docs_request(bill), page_response([doc(n)]))
            expected.append(doc(n)["id"])
    return expected


def states(**by_stream_name: Dict[str, Any]) -> List[AirbyteStateMessage]:
    builder = StateBuilder()
    for name, value in by_stream_name.items():
        builder = builder.with_stream_state(name, value)
    return builder.build()


def bill_ids(output: EntrypointOutput) -> List[str]:
    return [r["id"] for r in by_stream(output).get("bills", [])]


def document_ids(output: EntrypointOutput) -> List[str]:
    return [r["id"] for r in by_stream(output).get("bill_documents", [])]


# --- one read of the parent list -----------------------------------------------------------------------------


@SEQUENTIAL_AND_PARALLEL
@pytest.mark.parametrize("mode", [FULL, INCREMENTAL], ids=["full_refresh", "incremental_first_sync"])
def test_given_bills_and_bill_documents_in_one_sync_when_read_then_the_bills_list_is_read_once(
    http_mocker: ExactHttpMocker, slots: int, mode: SyncMode
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills"), page_response(PAGE_1, "p2"))  # each page exactly once (strict mocker)
    http_mocker.get(list_request("bills", page="p2"), page_response(PAGE_2))
    documents = expect_documents(http_mocker, BILLS)

    # the child first in the catalog: the connector reads the parent first
    output = read(source(), config(max_concurrent_requests=slots), catalog("bill_documents", "bills", mode=mode))

    assert bill_ids(output) == [b["id"] for b in BILLS]
    assert sorted(document_ids(output)) == sorted(documents)
    assert output.is_in_logs("bill_documents: takes the bills from the bills stream of this sync")
    assert not output.is_in_logs("reads bills itself")
    if mode == INCREMENTAL:
        child = state_dict(stream_states(output, "bill_documents")[-1])
        assert (
            child["parents"]
            == state_dict(stream_states(output, "bills")[-1])
            == {"updatedTime": "2024-01-03T00:00:00.000Z"}
        )
        assert child["done"] == [[PAGE_2[0]["id"], T3], [PAGE_2[1]["id"], T3]]


@SEQUENTIAL_AND_PARALLEL
def test_given_both_states_at_the_same_place_when_incremental_then_the_changed_bills_are_listed_once(
    http_mocker: ExactHttpMocker, slots: int
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills", filters='updatedTime:gte:"2024-01-02T00:00:00.000Z"'), page_response(PAGE_2))
    documents = expect_documents(http_mocker, PAGE_2)

    saved = {"updatedTime": "2024-01-02T00:00:00.000Z"}
    output = read(
        source(),
        config(max_concurrent_requests=slots),
        catalog("bills", "bill_documents", mode=INCREMENTAL),
        states(bills=saved, bill_documents={"parents": saved}),
    )

    assert bill_ids(output) == [b["id"] for b in PAGE_2]
    assert sorted(document_ids(output)) == sorted(documents)


# --- when the child reads its parents itself ----------------------------------------------------------------


@SEQUENTIAL_AND_PARALLEL
def test_given_the_child_state_behind_the_parent_state_when_incremental_then_the_child_reads_bills_itself(
    http_mocker: ExactHttpMocker, slots: int
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills", filters='updatedTime:gte:"2024-01-03T00:00:00.000Z"'), page_response(PAGE_2))
    http_mocker.get(list_request("bills", filters=AFTER_PAGE_1), page_response(BILLS))
    documents = expect_documents(http_mocker, BILLS)

    output = read(
        source(),
        config(max_concurrent_requests=slots),
        catalog("bills", "bill_documents", mode=INCREMENTAL),
        states(bills={"updatedTime": "2024-01-03T00:00:00.000Z"}, bill_documents={"parents": {"updatedTime": T1}}),
    )

    assert sorted(document_ids(output)) == sorted(documents)
    assert output.is_in_logs("bill_documents reads bills itself: its state is behind the bills stream's")


def test_given_other_sync_modes_when_read_then_the_child_reads_bills_itself_and_says_why(
    http_mocker: ExactHttpMocker,
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills"), [page_response(BILLS), page_response(BILLS)])  # once each stream
    documents = expect_documents(http_mocker, BILLS)
    mixed = CatalogBuilder().with_stream("bills", FULL).with_stream("bill_documents", INCREMENTAL).build()

    output = read(source(), config(max_concurrent_requests=1), mixed)

    assert sorted(document_ids(output)) == sorted(documents)
    assert output.is_in_logs("bill_documents reads bills itself: bills is synced full_refresh and bill_documents incr")


# --- the parent's read stops part way ------------------------------------------------------------------------

MALFORMED = HttpResponse("<html>bad gateway</html>", status_code=200)


@SEQUENTIAL_AND_PARALLEL
def test_given_the_bills_stream_fails_after_a_page_when_full_refresh_then_the_child_reads_the_rest_itself(
    http_mocker: ExactHttpMocker, slots: int
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills"), [page_response(PAGE_1, "p2"), page_response(PAGE_1, "p2")])
    http_mocker.get(list_request("bills", page="p2"), [MALFORMED, page_response(PAGE_2)])
    documents = expect_documents(http_mocker, BILLS)  # each bill's documents once: page 1's are not asked again

    output = read(
        source(), config(max_concurrent_requests=slots), catalog("bills", "bill_documents"), expecting_exception=True
    )

    assert sorted(document_ids(output)) == sorted(documents)
    assert [e.trace.error.stream_descriptor.name for e in output.errors if e.trace.error.stream_descriptor] == ["bills"]  # type: ignore[union-attr]
    assert output.is_in_logs("bill_documents reads bills itself from here: the bills stream of this sync handed on 1")


@SEQUENTIAL_AND_PARALLEL
def test_given_the_bills_stream_fails_after_a_page_when_incremental_then_the_child_goes_on_from_that_page(
    http_mocker: ExactHttpMocker, slots: int
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills"), page_response(PAGE_1, "p2"))
    http_mocker.get(list_request("bills", page="p2"), MALFORMED)
    # the child goes on from the bills' state after page 1 (gte: page 1's bills come again, not asked twice)
    http_mocker.get(list_request("bills", filters=AFTER_PAGE_1), page_response(BILLS))
    documents = expect_documents(http_mocker, BILLS)

    output = read(
        source(),
        config(max_concurrent_requests=slots),
        catalog("bills", "bill_documents", mode=INCREMENTAL),
        expecting_exception=True,
    )

    assert sorted(document_ids(output)) == sorted(documents)
    assert [e.trace.error.stream_descriptor.name for e in output.errors if e.trace.error.stream_descriptor] == ["bills"]  # type: ignore[union-attr]
    final = state_dict(stream_states(output, "bill_documents")[-1])
    assert final["parents"] == {"updatedTime": "2024-01-03T00:00:00.000Z"}


@SEQUENTIAL_AND_PARALLEL
def test_given_bill_refuses_the_bills_list_when_read_then_both_streams_skipped_and_the_child_asks_nothing(
    http_mocker: ExactHttpMocker, slots: int
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills"), error_response("error_forbidden", 403))  # once: the child does not ask

    output = read(source(), config(max_concurrent_requests=slots), catalog("bills", "bill_documents"))

    assert not output.errors and not output.records
    assert output.is_in_logs("Skipping stream bills:")
    assert output.is_in_logs("Skipping stream bill_documents: it lists the children of bills:")


@SEQUENTIAL_AND_PARALLEL
def test_given_bill_refuses_the_bills_list_part_way_when_read_then_the_child_fails_naming_the_bills_list(
    http_mocker: ExactHttpMocker, slots: int
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills"), page_response(PAGE_1, "p2"))
    http_mocker.get(list_request("bills", page="p2"), error_response("error_forbidden", 403))
    documents = expect_documents(http_mocker, PAGE_1)

    output = read(
        source(), config(max_concurrent_requests=slots), catalog("bills", "bill_documents"), expecting_exception=True
    )

    assert sorted(document_ids(output)) == sorted(documents)
    failed = {
        e.trace.error.stream_descriptor.name: e.trace.error.message  # type: ignore[union-attr]
        for e in output.errors
        if e.trace.error.stream_descriptor  # type: ignore[union-attr]
    }
    assert set(failed) == {"bills", "bill_documents"}
    assert failed["bill_documents"].startswith("BILL stopped letting this user read bills in the middle of the sync.")
