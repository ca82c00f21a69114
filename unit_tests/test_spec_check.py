"""spec, check and discover through the entrypoint, and config validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest
from airbyte_cdk.models import Status
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, _run_command, discover
from airbyte_cdk.test.mock_http import HttpMocker

from source_bill import SourceBill
from source_bill.declarations import declaration, declarations
from unit_tests.builders import (
    BASE,
    config,
    error_response,
    login_request,
    login_response,
    page_response,
    records,
    source,
)

CONTRACT_STREAMS = {
    "vendors": "vendors",
    "customers": "customers",
    "bills": "bills",
    "invoices": "invoices",
    "payments": "payments",
    "receivable_payments": "receivable-payments",
    "credit_memos": "credit-memos",
    "vendor_credits": "vendor-credits",
    "recurring_bills": "recurringbills",
    "recurring_invoices": "recurring-invoices",
    "chart_of_accounts": "classifications/chart-of-accounts",
    "accounting_classes": "classifications/accounting-classes",
    "departments": "classifications/departments",
    "employees": "classifications/employees",
    "items": "classifications/items",
    "jobs": "classifications/jobs",
    "locations": "classifications/locations",
    "users": "users",
    "roles": "roles",
    "bank_accounts": "funding-accounts/banks",
    "bank_account_users": "funding-accounts/banks/users",
    "card_account_users": "funding-accounts/cards/users",
}


def run_check(cfg: Dict[str, Any], tmp_path: Path, src: SourceBill | None = None) -> EntrypointOutput:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return _run_command(src or source(), ["check", "--config", str(path)])


def status_of(output: EntrypointOutput) -> Any:
    statuses = output.connection_status_messages
    assert len(statuses) == 1, output.errors
    return statuses[0].connectionStatus


def test_when_spec_then_contract_keys_secrets_and_order() -> None:
    output = _run_command(SourceBill(), ["spec"])
    spec = output.spec_messages[0].spec.connectionSpecification
    props = spec["properties"]
    assert set(spec["required"]) == {"credentials", "organization_id"}
    for key in ("credentials", "organization_id", "environment", "start_date", "base_url", "oauth_token_url"):
        assert key in props
    assert props["environment"]["enum"] == ["production", "sandbox"]
    assert props["environment"]["default"] == "production"
    assert props["organization_id"]["pattern"].startswith("^008")
    assert props["base_url"]["airbyte_hidden"] is True
    assert props["oauth_token_url"]["airbyte_hidden"] is True
    assert props["start_date"]["examples"]
    orders = [p["order"] for p in props.values()]
    assert sorted(orders) == list(range(len(props)))
    assert props["max_concurrent_requests"]["maximum"] == 3


def test_given_good_credentials_when_check_then_succeeded(http_mocker: HttpMocker, tmp_path: Path) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(_probe("vendors"), page_response([]))

    assert status_of(run_check(config(), tmp_path)).status == Status.SUCCEEDED


def _probe(path: str) -> Any:
    from airbyte_cdk.test.mock_http import HttpRequest

    return HttpRequest(f"{BASE}/v3/{path}", query_params={"max": "1"})


@pytest.mark.parametrize(
    "fixture,words",
    [
        ("error_bdc_1101", "username or password"),
        ("error_bdc_1102", "developer key"),
        ("error_bdc_1123", "organization ID"),
    ],
)
def test_given_login_rejected_when_check_then_failed_with_bill_message_and_advice(
    http_mocker: HttpMocker, tmp_path: Path, fixture: str, words: str
) -> None:
    http_mocker.post(login_request(), error_response(fixture, 400))

    status = status_of(run_check(config(), tmp_path))

    assert status.status == Status.FAILED
    assert words in status.message
    assert fixture.upper().replace("ERROR_", "") in status.message  # BILL's own code is shown


def test_given_no_readable_stream_when_check_then_failed(http_mocker: HttpMocker, tmp_path: Path) -> None:
    http_mocker.post(login_request(), login_response())
    for path in CONTRACT_STREAMS.values():
        http_mocker.get(_probe(path), error_response("error_forbidden", 403))

    status = status_of(run_check(config(), tmp_path))

    assert status.status == Status.FAILED
    assert "none of the 22" in status.message


def test_given_first_stream_forbidden_when_check_then_tries_the_next(http_mocker: HttpMocker, tmp_path: Path) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(_probe("vendors"), error_response("error_forbidden", 403))
    http_mocker.get(_probe("customers"), page_response(records(0, 1)))

    assert status_of(run_check(config(), tmp_path)).status == Status.SUCCEEDED


@pytest.mark.parametrize(
    "overrides,words",
    [
        # The spec's JSON schema rejects most of these first, in words that name the key (BillEntrypoint);
        # the rest get the connector's own checks, which name the key too.
        ({"organization_id": "12345"}, "008"),
        ({"environment": "staging"}, "environment (Environment) must be one of 'production', 'sandbox', not 'staging'"),
        ({"base_url": "http://bill.example.com/connect"}, "loopback"),
        ({"base_url": "ftp://127.0.0.1/connect"}, "base_url"),
        ({"start_date": "last tuesday"}, "last tuesday"),
        ({"start_date": "2024-13-45T00:00:00Z"}, "start_date"),
        (
            {"max_concurrent_requests": 4},
            "max_concurrent_requests (Requests in Flight) must be a whole number from 1 to 3",
        ),
        (
            {"requests_per_hour": 0},
            "requests_per_hour (Requests per Hour) must be a whole number from 1 to 20000, not 0",
        ),
    ],
)
def test_given_malformed_config_when_check_then_failed_with_actionable_message(
    tmp_path: Path, overrides: Dict[str, Any], words: str
) -> None:
    status = status_of(run_check(config(**overrides), tmp_path))

    assert status.status == Status.FAILED
    assert words in status.message


def test_given_missing_keys_when_check_then_failed_naming_them(tmp_path: Path) -> None:
    cfg = config()
    del cfg["organization_id"]
    status = status_of(run_check(cfg, tmp_path))
    assert status.status == Status.FAILED
    assert "organization_id" in status.message


def test_given_config_file_not_json_when_check_then_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("username: not json")

    output = _run_command(source(), ["check", "--config", str(path)])

    messages: List[str] = [m.trace.error.message for m in output.errors] + [
        s.connectionStatus.message for s in output.connection_status_messages
    ]
    assert any("not valid JSON" in m for m in messages), messages


def test_given_loopback_http_base_url_when_config_then_accepted(http_mocker: HttpMocker, tmp_path: Path) -> None:
    from airbyte_cdk.test.mock_http import HttpRequest, HttpResponse

    base = "http://127.0.0.1:9/connect"
    cfg = config(base_url=base)
    body = {"username": cfg["username"], "password": cfg["password"], "organizationId": cfg["organization_id"]}
    http_mocker.post(HttpRequest(f"{base}/v3/login", body={**body, "devKey": cfg["dev_key"]}), login_response())
    http_mocker.get(HttpRequest(f"{base}/v3/vendors", query_params={"max": "1"}), HttpResponse('{"results": []}'))

    assert status_of(run_check(cfg, tmp_path)).status == Status.SUCCEEDED


def test_when_discover_then_every_contract_stream_with_keys_modes_and_cursor() -> None:
    output = discover(source(), config())
    every = {s.name: s for s in output.catalog.catalog.streams}
    streams = {name: s for name, s in every.items() if name in CONTRACT_STREAMS}

    assert set(streams) == set(CONTRACT_STREAMS)  # the streams beyond the 22: unit_tests/test_more_streams.py
    for name, stream in streams.items():
        if name == "card_account_users":
            assert stream.source_defined_primary_key == [["cardAccountId"], ["userId"]]
            assert [m.value for m in stream.supported_sync_modes] == ["full_refresh"]
        else:
            assert stream.source_defined_primary_key == [["id"]]
            assert {m.value for m in stream.supported_sync_modes} == {"full_refresh", "incremental"}
            assert stream.default_cursor_field == ["updatedTime"]
            assert stream.source_defined_cursor
        assert stream.json_schema["properties"]


def test_given_the_stream_declarations_then_names_and_paths_match_the_contract() -> None:
    # CONTRACT_STREAMS is the public contract written out on purpose: the declarations must agree with it
    assert {d.name: d.path for d in declarations()} == CONTRACT_STREAMS
    keys = {d.name: d.primary_key for d in declarations() if d.primary_key != ("id",)}
    assert keys == {"card_account_users": ("cardAccountId", "userId")}
    assert [d.name for d in declarations() if d.cursor_field != "updatedTime"] == ["card_account_users"]
    assert declaration("card_account_users").cursor_field is None
    assert {d.name: dict(d.extra_params) for d in declarations() if d.extra_params} == {
        "bank_account_users": {"currentUser": "false"},
        "card_account_users": {"currentUser": "false"},
    }
