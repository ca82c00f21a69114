"""The streams of other shapes (one object, bare arrays, {rates, cards}, {bills}), through the entrypoint."""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from airbyte_cdk.models import Level
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.test.entrypoint_wrapper import discover, read
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse

from unit_tests.builders import (
    BASE,
    CONFIG,
    catalog,
    config,
    error_response,
    list_request,
    login_request,
    login_response,
    page_response,
    source,
)

ORG = CONFIG["organization_id"]


def get(path: str, params: Optional[Dict[str, str]] = None) -> HttpRequest:
    return HttpRequest(f"{BASE}/v3/{path}", query_params=params or {})


def body(value: Any) -> HttpResponse:
    return HttpResponse(json.dumps(value))


def warnings(output: Any) -> list[str]:
    return [
        m.log.message
        for m in output._messages
        if m.type == MessageType.LOG and m.log.level == Level.WARN  # type: ignore[union-attr]
    ]


def test_given_one_object_when_read_organization_then_one_record_without_paging(http_mocker: HttpMocker) -> None:
    http_mocker.post(login_request(), login_response())
    org = {"id": ORG, "name": "Acme", "address": {"city": "Austin"}}
    http_mocker.get(get(f"organizations/{ORG}"), body(org))

    output = read(source(), config(), catalog("organization"))

    assert [r.record.data for r in output.records] == [org]
    assert not output.errors


def test_given_pages_when_read_billing_statements_then_every_page_once(http_mocker: HttpMocker) -> None:
    http_mocker.post(login_request(), login_response())
    rows = [{"id": f"bst{i}", "amount": i} for i in range(5)]
    path = f"organizations/{ORG}/billing-statements"
    http_mocker.get(list_request(path, sort=None), page_response(rows[:3], "p2"))
    http_mocker.get(list_request(path, sort=None, page="p2"), page_response(rows[3:]))

    output = read(source(), config(), catalog("billing_statements"))

    assert [r.record.data for r in output.records] == rows


def test_given_a_user_without_admin_role_when_read_organization_then_skipped_with_warning_and_rest_goes_on(
    http_mocker: HttpMocker,
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(get(f"organizations/{ORG}"), error_response("error_forbidden", 403))
    http_mocker.get(get("funding-accounts/ap-cards"), body([{"id": "apc1"}]))

    output = read(source(), config(max_concurrent_requests=1), catalog("organization", "ap_cards"))

    assert [r.record.data["id"] for r in output.records] == ["apc1"]
    assert any("Skipping stream organization" in w and "role" in w for w in warnings(output))
    assert not output.errors


def test_given_both_statuses_when_read_card_accounts_then_cards_of_each_once_and_rates_not_a_record(
    http_mocker: HttpMocker,
) -> None:
    http_mocker.post(login_request(), login_response())
    rates = {"cardFeePercent": 2.9}
    verified = [{"id": "cat1", "status": "ACTIVE"}, {"id": "cat2", "status": "ACTIVE"}]
    nominated = [{"id": "cat3", "status": "PENDING"}, {"id": "cat2", "status": "ACTIVE"}]
    cards = "funding-accounts/cards"
    http_mocker.get(get(cards, {"cardUserStatus": "VERIFIED"}), body({"rates": rates, "cards": verified}))
    http_mocker.get(get(cards, {"cardUserStatus": "NOMINATED"}), body({"rates": rates, "cards": nominated}))

    output = read(source(), config(), catalog("card_accounts"))

    assert [r.record.data["id"] for r in output.records] == ["cat1", "cat2", "cat3"]


def test_given_bare_arrays_when_read_ap_cards_and_policies_then_each_element_is_a_record(
    http_mocker: HttpMocker,
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(get("funding-accounts/ap-cards"), body([{"id": "apc1"}, {"id": "apc2"}]))
    http_mocker.get(get("bill-approvals/policies"), body([{"id": "apl1", "approvers": {"users": []}}]))

    output = read(source(), config(max_concurrent_requests=1), catalog("ap_cards", "bill_approval_policies"))

    assert [(r.record.stream, r.record.data["id"]) for r in output.records] == [
        ("ap_cards", "apc1"),
        ("ap_cards", "apc2"),
        ("bill_approval_policies", "apl1"),
    ]


def test_given_an_object_where_an_array_is_expected_when_read_then_error_not_silence(http_mocker: HttpMocker) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(get("funding-accounts/ap-cards"), body({"results": [{"id": "apc1"}]}))

    output = read(source(), config(), catalog("ap_cards"), expecting_exception=True)

    assert not output.records
    assert any("not a list" in (e.trace.error.message or "") for e in output.errors)  # type: ignore[union-attr]


def test_given_pending_approvals_when_read_then_rows_from_bills_keyed_by_bill_id(http_mocker: HttpMocker) -> None:
    http_mocker.post(login_request(), login_response())
    rows = [{"billId": "00n1", "vendorId": "0091", "amount": 5.0, "dueDate": "2024-02-01"}]
    http_mocker.get(get("bill-approvals/pending-user-approvals"), body({"bills": rows}))

    output = read(source(), config(), catalog("bills_pending_approval"))

    assert [r.record.data for r in output.records] == rows


def test_given_a_sync_token_when_pending_approvals_refused_with_bdc_1302_then_skipped_with_reason_and_rest_goes_on(
    http_mocker: HttpMocker,
) -> None:
    http_mocker.post(login_request(), login_response())
    refusal = [{"code": "BDC_1302", "message": "entity type of id syu01 does not match the expected type User"}]
    http_mocker.get(get("bill-approvals/pending-user-approvals"), HttpResponse(json.dumps(refusal), 400))
    http_mocker.get(get("bill-approvals/policies"), body([{"id": "apl1"}]))

    output = read(
        source(), config(max_concurrent_requests=1), catalog("bills_pending_approval", "bill_approval_policies")
    )

    assert [r.record.data["id"] for r in output.records] == ["apl1"]
    skipped = [w for w in warnings(output) if "Skipping stream bills_pending_approval" in w]
    assert len(skipped) == 1 and "sync token" in skipped[0] and "BDC_1302" in skipped[0]
    assert not output.errors


def test_discover_lists_the_new_streams_with_keys_and_modes() -> None:
    output = discover(source(), config())
    streams = {s.name: s for s in output.catalog.catalog.streams}  # type: ignore[union-attr]
    expected = {
        "organization": [["id"]],
        "billing_statements": [["id"]],
        "card_accounts": [["id"]],
        "ap_cards": [["id"]],
        "bill_approval_policies": [["id"]],
        "bills_pending_approval": [["billId"]],
        "bill_documents": [["id"]],
        "vendor_attachments": [["id"]],
        "customer_attachments": [["id"]],
        "invoice_attachments": [["id"]],
    }
    for name, key in expected.items():
        assert streams[name].source_defined_primary_key == key
        modes = {m.value for m in streams[name].supported_sync_modes}
        wanted = {"full_refresh", "incremental"} if name.endswith(("documents", "attachments")) else {"full_refresh"}
        assert modes == wanted, name
        assert not streams[name].is_file_based
