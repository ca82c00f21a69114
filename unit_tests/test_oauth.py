"""OAuth client credentials through the entrypoint: the token request, Bearer on every call, renewal, refusals."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import urlencode

import pytest
import requests
import requests_mock
from airbyte_cdk.models import AirbyteMessageSerializer, ConfiguredAirbyteCatalogSerializer, FailureType, Status
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, _run_command, read
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets

from source_bill import SourceBill
from source_bill.auth import BillOAuthAuthenticator
from source_bill.client import MAX_RELOGINS
from source_bill.config import TOKEN_URLS, BillConfig
from unit_tests.builders import BASE, catalog, list_request, page_response, records

TOKEN_URL = "https://auth.stage.bill.com/authx/token"
CLIENT_ID = "placeholder-client-id"
CLIENT_SECRET = "placeholder-client-secret-789"


def oauth_config(**overrides: Any) -> Dict[str, Any]:
    return {
        "credentials": {
            "auth_type": "oauth_client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        "organization_id": "00801PLACEHOLDER00",
        "environment": "sandbox",
        **overrides,
    }


def token_request(url: str = TOKEN_URL) -> HttpRequest:
    form = urlencode({"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    return HttpRequest(url, headers={"Content-Type": "application/x-www-form-urlencoded"}, body=form)


def token_response(token: str, expires_in: Optional[int] = 3600) -> HttpResponse:
    body: Dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    return HttpResponse(json.dumps(body))


def bearer(request: HttpRequest, token: str) -> HttpRequest:
    return HttpRequest(
        request._parsed_url.geturl(), headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
    )


@pytest.fixture(autouse=True)
def _token_request() -> None:
    """A fresh token request matcher per test (HttpMocker counts calls per registered object)."""
    global TOKEN
    TOKEN = token_request()


TOKEN = token_request()


class FakeClock:
    """Wall clock that moves only when the connector sleeps."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        self.slept: List[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def source(clock: Optional[FakeClock] = None) -> SourceBill:
    clock = clock or FakeClock()
    return SourceBill(sleep=clock.sleep, wall_clock=clock)


def error_of(output: EntrypointOutput) -> Any:
    assert output.errors, "expected an error trace"
    return output.errors[0].trace.error


def test_given_oauth_when_read_then_one_form_token_request_and_bearer_on_every_page(http_mocker: HttpMocker) -> None:
    http_mocker.post(TOKEN, token_response("tok-A"))
    http_mocker.get(bearer(list_request("vendors"), "tok-A"), page_response(records(0, 100), "t1"))
    http_mocker.get(bearer(list_request("vendors", page="t1"), "tok-A"), page_response(records(100, 5)))
    http_mocker.get(bearer(list_request("customers"), "tok-A"), page_response(records(200, 3)))

    output = read(source(), oauth_config(max_concurrent_requests=1), catalog("vendors", "customers"))

    assert not output.errors
    assert len(output.records) == 108
    http_mocker.assert_number_of_calls(TOKEN, 1)


def test_given_oauth_when_read_then_no_request_carries_a_session_or_dev_key_and_none_logs_in() -> None:
    with requests_mock.Mocker() as mock:
        mock.post(TOKEN_URL, json={"access_token": "tok-A", "expires_in": 3600})
        mock.get(f"{BASE}/v3/vendors", json={"results": records(0, 3)})
        mock.get(f"{BASE}/v3/bills", json={"results": records(10, 2)})

        output = read(source(), oauth_config(), catalog("vendors", "bills"))

        assert len(output.records) == 5
        data_requests = [r for r in mock.request_history if r.url.startswith(BASE)]
        assert len(data_requests) == 2
        for sent in data_requests:
            assert sent.headers["Authorization"] == "Bearer tok-A"
            assert "sessionId" not in sent.headers and "devKey" not in sent.headers
        assert [r.url for r in mock.request_history if "login" in r.url] == []


@pytest.mark.parametrize(
    "retry_after,tokens",
    [(500, 1), (560, 2)],
    ids=["100s-left-keeps-the-token", "40s-left-renews-first"],
)
def test_given_a_wait_that_leaves_the_token_close_to_expiry_when_retried_then_renewed_before_it_runs_out(
    http_mocker: HttpMocker, retry_after: int, tokens: int
) -> None:
    clock = FakeClock()
    http_mocker.post(TOKEN, [token_response(f"tok-{n}", expires_in=600) for n in "AB"[:tokens]])
    http_mocker.get(bearer(list_request("vendors"), "tok-A"), page_response(records(0, 100), "t1"))
    late = "tok-A" if tokens == 1 else "tok-B"
    http_mocker.get(
        bearer(list_request("vendors", page="t1"), "tok-A"),
        [HttpResponse("", status_code=503, headers={"Retry-After": str(retry_after)})]
        + ([page_response(records(100, 1))] if tokens == 1 else []),
    )
    if tokens == 2:
        http_mocker.get(bearer(list_request("vendors", page="t1"), late), page_response(records(100, 1)))

    output = read(source(clock), oauth_config(), catalog("vendors"))

    assert not output.errors
    assert len(output.records) == 101
    assert clock.slept == [retry_after]
    http_mocker.assert_number_of_calls(TOKEN, tokens)


def test_given_bill_rejects_the_token_when_read_then_one_new_token_and_the_page_replayed(
    http_mocker: HttpMocker,
) -> None:
    http_mocker.post(TOKEN, [token_response("tok-A"), token_response("tok-B")])
    http_mocker.get(
        bearer(list_request("vendors"), "tok-A"), HttpResponse('{"message": "Unauthorized"}', status_code=401)
    )
    http_mocker.get(bearer(list_request("vendors"), "tok-B"), page_response(records(0, 4)))

    output = read(source(), oauth_config(), catalog("vendors"))

    assert not output.errors
    assert len(output.records) == 4
    http_mocker.assert_number_of_calls(TOKEN, 2)


def test_given_three_workers_rejected_with_the_same_token_when_they_go_on_then_one_new_token() -> None:
    issued: List[str] = []
    barrier = threading.Barrier(3)

    def post_token(url: str, form: Mapping[str, str]) -> Mapping[str, Any]:
        issued.append(url)
        return {"access_token": f"tok-{len(issued)}", "expires_in": 3600}

    auth = BillOAuthAuthenticator(token_url=TOKEN_URL, client_id="c", client_secret="s", post_token=post_token)
    rejected = auth(requests.Request("GET", f"{BASE}/v3/vendors").prepare())
    sent: List[str] = []

    def worker() -> None:
        barrier.wait()
        auth.reject(rejected)  # each saw BILL answer 401 to tok-1
        sent.append(auth(requests.Request("GET", f"{BASE}/v3/vendors").prepare()).headers["Authorization"])

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(issued) == 2  # the first token, then one renewal for all three
    assert sent == ["Bearer tok-2"] * 3


@pytest.mark.parametrize(
    "answer,words",
    [
        (HttpResponse('{"error": "invalid_client"}', status_code=401), "client_id and client_secret"),
        (HttpResponse('{"error": "unauthorized_client"}', status_code=400), "client-credentials grant"),
        (HttpResponse('[{"code": "BDC_9999", "message": "Nope"}]', status_code=400), "oauth_token_url"),
    ],
    ids=["invalid_client", "unauthorized_client", "bill-error-array"],
)
def test_given_the_token_endpoint_refuses_the_client_when_check_then_failed_as_config_error_without_retries(
    http_mocker: HttpMocker, tmp_path: Path, answer: HttpResponse, words: str
) -> None:
    http_mocker.post(TOKEN, answer)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(oauth_config()))

    output = _run_command(source(), ["check", "--config", str(path)])

    status = output.connection_status_messages[0].connectionStatus
    assert status.status == Status.FAILED
    assert words in status.message
    http_mocker.assert_number_of_calls(TOKEN, 1)


def test_given_a_refused_client_when_read_then_config_error_and_the_token_asked_once(http_mocker: HttpMocker) -> None:
    http_mocker.post(TOKEN, HttpResponse('{"error": "invalid_client"}', status_code=401))

    output = read(source(), oauth_config(max_concurrent_requests=1), catalog("vendors", "bills"))

    assert error_of(output).failure_type == FailureType.config_error
    assert not output.records
    http_mocker.assert_number_of_calls(TOKEN, 1)


def test_given_token_endpoint_server_errors_when_read_then_retried_with_backoff(http_mocker: HttpMocker) -> None:
    clock = FakeClock()
    http_mocker.post(
        TOKEN,
        [HttpResponse("", status_code=503), HttpResponse("<html>502</html>", status_code=502), token_response("tok")],
    )
    http_mocker.get(bearer(list_request("vendors"), "tok"), page_response(records(0, 2)))

    output = read(source(clock), oauth_config(), catalog("vendors"))

    assert len(output.records) == 2
    assert len(clock.slept) == 2 and 0.5 <= clock.slept[0] <= 1.0 and 1.0 <= clock.slept[1] <= 2.0
    http_mocker.assert_number_of_calls(TOKEN, 3)


def test_given_debug_when_read_with_oauth_then_neither_client_secret_nor_token_in_any_output(
    http_mocker: HttpMocker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "tok-Secret-Walrus-6603"
    tries = MAX_RELOGINS + 1  # the first token, then one new token per rejection, until the client gives up
    http_mocker.post(TOKEN, [token_response(token)] * tries)
    http_mocker.get(
        bearer(list_request("vendors"), token), [HttpResponse(f'{{"message": "bad {token}"}}', 401)] * tries
    )
    config_path, catalog_path = tmp_path / "config.json", tmp_path / "catalog.json"
    config_path.write_text(json.dumps(oauth_config()))
    catalog_path.write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(catalog("vendors"))))

    output = _run_command(source(), ["read", "--config", str(config_path), "--catalog", str(catalog_path), "--debug"])

    printed = capsys.readouterr()
    messages = [json.dumps(AirbyteMessageSerializer.dump(m)) for m in output.get_message_iterator()]
    text = "\n".join([*messages, printed.out, printed.err])
    assert "rejected new sessions or tokens repeatedly" in error_of(output).message  # the run reached BILL
    assert CLIENT_SECRET not in text and token not in text


def test_given_environments_when_no_token_url_then_sandbox_and_production_defaults() -> None:
    sandbox = BillConfig.from_mapping(oauth_config())
    production = BillConfig.from_mapping(oauth_config(environment="production"))

    assert sandbox.token_url == TOKEN_URLS["sandbox"] == "https://auth.stage.bill.com/authx/token"
    assert production.token_url == TOKEN_URLS["production"] == "https://auth.prod.bill.com/authx/token"


@pytest.mark.parametrize(
    "url,accepted",
    [
        ("http://auth.example.com/authx/token", False),
        ("ftp://127.0.0.1/authx/token", False),
        ("http://127.0.0.1:9/authx/token", True),
        ("https://auth.example.com/authx/token", True),
    ],
)
def test_given_an_oauth_token_url_when_config_checked_then_plain_http_only_to_loopback(
    url: str, accepted: bool
) -> None:
    if accepted:
        assert BillConfig.from_mapping(oauth_config(oauth_token_url=url)).token_url == url
    else:
        with pytest.raises(Exception) as raised:
            BillConfig.from_mapping(oauth_config(oauth_token_url=url))
        assert "oauth_token_url" in str(raised.value)


def test_given_an_overridden_token_url_when_read_then_the_token_comes_from_there(http_mocker: HttpMocker) -> None:
    url = "https://auth.example.com/authx/token"
    http_mocker.post(token_request(url), token_response("tok"))
    http_mocker.get(bearer(list_request("vendors"), "tok"), page_response(records(0, 1)))

    output = read(source(), oauth_config(oauth_token_url=url), catalog("vendors"))

    assert len(output.records) == 1


def test_given_an_oauth_authenticator_when_built_then_its_client_secret_is_filtered_before_any_request() -> None:
    secret = "built-alone-Secret-Heron-1187"  # not from a config the CDK's entrypoint has read

    BillOAuthAuthenticator(token_url=TOKEN_URL, client_id="c", client_secret=secret, post_token=lambda u, f: {})

    assert filter_secrets(f"form client_secret={secret}") == "form client_secret=****"
