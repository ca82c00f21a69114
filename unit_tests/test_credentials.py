"""The user_login sign-in (a BILL user or an AP & AR sync token) through the entrypoint, and the credentials block."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import pytest
from airbyte_cdk.models import FailureType
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.mock_http import HttpMocker, HttpResponse

from source_bill import SourceBill
from source_bill.config import BillConfig, ClientCredentials, UserLogin
from source_bill.config_messages import BillEntrypoint
from tests_support import FakeClock
from unit_tests.builders import (
    CONFIG,
    SESSION,
    catalog,
    error_response,
    list_request,
    login_request,
    page_response,
    records,
    response_body,
)

IDLE_WAIT_S = 31 * 60  # longer than a user session is trusted idle (30 min), far shorter than a sync token's 48 h


def login_config(**credentials: Any) -> Dict[str, Any]:
    return {
        "credentials": {
            "auth_type": "user_login",
            "username": CONFIG["username"],
            "password": CONFIG["password"],
            "dev_key": CONFIG["dev_key"],
            **credentials,
        },
        "organization_id": CONFIG["organization_id"],
        "environment": "sandbox",
    }


def login_answer(session_id: str, user_id: str) -> HttpResponse:
    body = json.loads(response_body("login_ok"))
    body.update(sessionId=session_id, userId=user_id)
    return HttpResponse(json.dumps(body))


@pytest.mark.parametrize(
    "is_sync_token,user_id,logins",
    [
        (False, "00601PLACEHOLDER00", 2),  # a user's session: renewed after 30 idle minutes
        (True, "00601PLACEHOLDER00", 1),  # the user says it is a sync token
        (False, "syu01PLACEHOLDER00", 1),  # BILL's login answer says so (a sync token's system user)
    ],
    ids=["user", "user-says-sync-token", "bill-says-sync-token"],
)
def test_given_a_31_minute_wait_mid_read_when_the_read_goes_on_then_only_a_user_session_is_renewed(
    http_mocker: HttpMocker, is_sync_token: bool, user_id: str, logins: int
) -> None:
    clock = FakeClock(1000.0)
    login = login_request()
    http_mocker.post(login, [login_answer(SESSION, user_id), login_answer("SESSION-2", user_id)][:logins])
    http_mocker.get(list_request("vendors"), page_response(records(0, 100), "t1"))
    waits = error_response("error_bdc_1144", 429, headers={"Retry-After": str(IDLE_WAIT_S)})
    http_mocker.get(list_request("vendors", page="t1"), [waits, page_response(records(100, 2))])

    output = read(
        SourceBill(clock=clock, sleep=clock.sleep), login_config(is_sync_token=is_sync_token), catalog("vendors")
    )

    assert not output.errors
    assert len(output.records) == 102
    assert clock.slept == [IDLE_WAIT_S]
    http_mocker.assert_number_of_calls(login, logins)


def test_given_a_user_login_config_when_read_then_session_headers_as_before(http_mocker: HttpMocker) -> None:
    http_mocker.post(login_request(), login_answer(SESSION, "00601PLACEHOLDER00"))
    http_mocker.get(list_request("vendors", session_id=SESSION), page_response(records(0, 3)))

    output = read(SourceBill(sleep=lambda s: None), login_config(), catalog("vendors"))

    assert [r.record.data["id"] for r in output.records] == [r["id"] for r in records(0, 3)]


def test_given_both_credentials_and_flat_keys_when_read_then_config_error_naming_the_conflict() -> None:
    both = {**login_config(), "username": CONFIG["username"], "dev_key": CONFIG["dev_key"]}

    output = read(SourceBill(sleep=lambda s: None), both, catalog("vendors"))

    error = output.errors[0].trace.error
    assert error.failure_type == FailureType.config_error
    assert "both 'credentials' and the older top-level username, dev_key" in error.message


@pytest.mark.parametrize(
    "credentials,words",
    [
        ({"auth_type": "user_login", "username": "u", "password": "p"}, "credentials.dev_key"),
        ({"auth_type": "oauth_client_credentials", "client_id": "c"}, "credentials.client_secret"),
        ({"auth_type": "api_key"}, "'user_login' or 'oauth_client_credentials'"),
        ({"auth_type": "user_login", "username": "u", "password": 5, "dev_key": "k"}, "'credentials.password'"),
        ({"auth_type": "user_login", "username": "u", "password": "p", "dev_key": "k", "is_sync_token": "y"}, "true"),
        ("user:password", "choose a sign-in method"),
    ],
)
def test_given_incomplete_credentials_when_config_read_then_config_error_naming_the_key(
    credentials: Any, words: str
) -> None:
    with pytest.raises(Exception) as raised:
        BillConfig.from_mapping({"credentials": credentials, "organization_id": "00801X"})
    assert words in str(raised.value)
    assert getattr(raised.value, "failure_type", None) == FailureType.config_error


def test_given_each_option_when_config_read_then_its_credentials() -> None:
    login = BillConfig.from_mapping(login_config(is_sync_token=True)).credentials
    oauth = BillConfig.from_mapping(
        {"credentials": {"auth_type": "oauth_client_credentials", "client_id": "c", "client_secret": "s"}, **_org()}
    ).credentials

    assert login == UserLogin(CONFIG["username"], CONFIG["password"], CONFIG["dev_key"], is_sync_token=True)
    assert oauth == ClientCredentials("c", "s")


def _org() -> Dict[str, str]:
    return {"organization_id": "00801X"}


@pytest.mark.parametrize(
    "cfg",
    [
        {k: v for k, v in CONFIG.items() if k != "dev_key"},  # the older flat form
        {**login_config(), "credentials": {"auth_type": "user_login", "username": "u", "password": "p"}},
    ],
    ids=["flat", "credentials"],
)
def test_given_a_config_without_dev_key_when_check_then_failed_status_naming_it(
    tmp_path: Path, cfg: Dict[str, Any]
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    entrypoint = BillEntrypoint(SourceBill(sleep=lambda s: None))  # what the source-bill command runs

    messages = [json.loads(m) for m in entrypoint.run(entrypoint.parse_args(["check", "--config", str(path)]))]

    statuses = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
    assert [(s["status"], "credentials.dev_key" in s["message"]) for s in statuses] == [("FAILED", True)]
