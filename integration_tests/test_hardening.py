"""Hardening against servers that misbehave on purpose (``hardening_server.Server`` on 127.0.0.1).

Credentials go only to the configured origin (no redirect is followed, whatever its code or target); nothing
BILL echoes reaches the output (every message type, the installed CLI); a sign-in outage is one bounded failure;
odd Retry-After values fail or wait within bounds; exact numbers and odd JSON; SIGTERM leaves whole lines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, _run_command, read

from integration_tests.hardening_server import Reply, Seen, Server, login_ok, page
from source_bill import SourceBill
from source_bill.declarations import stream_names

PASSWORD = "Pw-Okapi7Heron-20931"
DEV_KEY = "DK-Tapir3Marmot-77154"
SESSION = "SESSION-Quetzal-62817"
STREAM_NAMES = sorted(stream_names())  # the 22 lists, from the connector's declarations


def config(base_url: str, **overrides: Any) -> Dict[str, Any]:
    """A config in the current form. (A flat one would be migrated, and the migration's CONTROL message carries the
    whole config, secrets included, by design: the platform stores the config from it.)"""
    return {
        "credentials": {
            "auth_type": "user_login",
            "username": "robot@example.com",
            "password": PASSWORD,
            "dev_key": DEV_KEY,
        },
        "organization_id": "00801HARDENING01",
        "base_url": base_url,
        **overrides,
    }


def catalog(names: List[str]) -> Any:
    builder = CatalogBuilder()
    for name in names:
        builder.with_stream(name, SyncMode.full_refresh)
    return builder.build()


def catalog_json(names: List[str]) -> Dict[str, Any]:
    return {
        "streams": [
            {
                "stream": {"name": n, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
                "sync_mode": "full_refresh",
                "destination_sync_mode": "overwrite",
            }
            for n in names
        ]
    }


def quiet_source(sleeps: Optional[List[float]] = None) -> SourceBill:
    return SourceBill(sleep=(sleeps if sleeps is not None else []).append)


def run_check(cfg: Dict[str, Any], tmp_path: Path, src: Optional[SourceBill] = None) -> EntrypointOutput:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return _run_command(src or quiet_source(), ["check", "--config", str(path)])


def cli(*args: str, timeout: float = 120) -> Tuple[int, str]:
    script = Path(sys.executable).parent / "source-bill"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "source_bill.run"]
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    proc = subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout, env=env)
    return proc.returncode, proc.stdout + "\n" + proc.stderr


def secret_forms(secret: str) -> List[str]:
    from urllib.parse import quote

    return sorted({secret, json.dumps(secret)[1:-1], quote(secret, safe="")})


def assert_no_secret(text: str, secrets: List[str]) -> None:
    for secret in secrets:
        for form in secret_forms(secret):
            assert form not in text, f"{form!r} leaked"
        for n in range(6, len(secret)):  # no piece of it either (an excerpt cut in the middle)
            for start in range(0, len(secret) - n + 1):
                piece = secret[start : start + n]
                assert piece not in text, f"a piece of a secret leaked: {piece!r}"


# --- 1. redirects --------------------------------------------------------------------------------------------
REDIRECT_CODES = [301, 302, 303, 307, 308]


@pytest.mark.parametrize("code", REDIRECT_CODES)
@pytest.mark.parametrize("where", ["login", "list", "check"])
def test_given_a_redirect_to_another_host_when_syncing_then_nothing_reaches_it_and_the_error_says_why(
    code: int, where: str, tmp_path: Path
) -> None:
    """Breaks if any redirect is followed (requests' default), on the login (body with password and dev key), on a
    list page (session headers) or in check, to another host (localhost vs 127.0.0.1: another origin)."""
    with Server(lambda seen: (200, {}, "{}")) as elsewhere:
        target = f"http://localhost:{elsewhere.port}/v3/steal"

        def answer(seen: Seen) -> Reply:
            if seen.path.startswith("/v3/login") and where != "login":
                return login_ok()
            return code, {"Location": target}, ""

        with Server(answer) as gateway:
            if where == "check":
                output = run_check(config(gateway.base_url), tmp_path)
                status = output.connection_status_messages[0].connectionStatus
                message = status.message
            else:
                output = read(quiet_source(), config(gateway.base_url), catalog(["vendors"]))
                message = output.errors[-1].trace.error.message
                assert output.errors[-1].trace.error.failure_type.value == "config_error"
                assert output.records == []
            assert elsewhere.seen == []  # no credential, no request at all
            assert f"HTTP {code} redirect to http://localhost:{elsewhere.port}" in message
            assert "never follows" in message
            assert gateway.paths().count("/v3/login") == 1


@pytest.mark.parametrize("code", REDIRECT_CODES)
def test_given_a_redirect_to_the_same_origin_when_reading_then_it_is_not_followed_either(code: int) -> None:
    """No redirect is followed, even one to the same host: BILL never needs one, and a gateway that redirects (e.g.
    to plain http on another port, or to a login page) is not BILL's API."""

    def answer(seen: Seen) -> Reply:
        if seen.path.startswith("/v3/login"):
            return login_ok()
        if seen.path.startswith("/v3/moved"):
            return page([{"id": "00901X", "updatedTime": "2024-01-01T00:00:00.000Z"}])
        return code, {"Location": "/v3/moved"}, ""

    with Server(answer) as gateway:
        output = read(quiet_source(), config(gateway.base_url), catalog(["vendors"]))
        assert "/v3/moved" not in gateway.paths()
        assert output.records == []
        assert "redirect" in output.errors[-1].trace.error.message


# --- 2. one origin, parsed once -------------------------------------------------------------------------------
REFUSED_URLS = [
    "http://127.0.0.1@evil.example/connect",
    "http://evil.example@127.0.0.1/connect",
    "http://user:pw@127.0.0.1:8080/",
    "http://127.0.0.1\\@evil.example/",
    "http://evil.example\\@127.0.0.1/",
    "http://127.0.0.1:80\\@evil.example:80/",
    "http://127.0.0.1%2f@evil.example/",
    "http://127.0.0.1%00.evil.example/",
    "http://127.0.0.1 .evil.example/",
    "http://127.0.0.1\t/",
    "http://127.0.0.1\n.evil.example/",
    "http://evil.example#@127.0.0.1/",
    "http://evil.example?@127.0.0.1/",
    "http://127.0.0.1/connect?x=1",
    "http://127.0.0.1/connect#frag",
    "http://0x7f.0.0.1/",
    "http://127.1/",
    "http://[::ffff:7f00:1]/",
    "http://evil.example/",
    "https://gateway.prod.bill.com:99999/",
    "ftp://127.0.0.1/",
    "http:/127.0.0.1/",
    "http://[::1/",
    "http://127.0.0.1:8080:9090/",
    "http://\u217cocalhost/",  # a Roman numeral fifty that NFKC-normalises to "l"
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_given_a_base_url_parsers_could_read_differently_when_checking_then_config_error_and_no_request(
    url: str, tmp_path: Path
) -> None:
    """Breaks if the config check reads a host that requests would not connect to (userinfo, backslash,
    percent-escapes, whitespace, fragments) or accepts plain http to a host that is not plainly loopback."""
    output = run_check(config(url), tmp_path)
    status = output.connection_status_messages[0].connectionStatus
    assert status.status.value == "FAILED"
    assert "base_url" in status.message


@pytest.mark.parametrize(
    "url, origin",
    [
        ("HTTP://127.0.0.1:{port}/", "http://127.0.0.1:{port}"),
        ("http://LOCALHOST:{port}", "http://localhost:{port}"),
        ("http://[::1]:{port}//", "http://[::1]:{port}"),
        ("Http://127.0.0.1:{port}/connect/", "http://127.0.0.1:{port}/connect"),
    ],
)
def test_given_a_plain_loopback_base_url_when_checking_then_it_works_and_names_one_origin(
    url: str, origin: str
) -> None:
    from source_bill.config import BillConfig
    from source_bill.origin import origin_of

    normalised = BillConfig.from_mapping(config(url.format(port=8123))).base_url
    assert normalised == origin.format(port=8123)
    assert str(origin_of(normalised + "/v3/login")) == origin.format(port=8123).removesuffix("/connect")


def test_given_every_accepted_url_when_parsed_by_requests_urllib3_and_the_stdlib_then_all_agree_on_the_host() -> None:
    """Exhaustive over a grammar of confusing pieces: whatever checked_url accepts, the three parsers agree."""
    import itertools
    from urllib.parse import urlsplit

    from urllib3.util import parse_url

    from source_bill.origin import UnsafeUrl, checked_url, origin_of

    schemes = ["http://", "https://", "HTTP://"]
    hosts = ["127.0.0.1", "localhost", "[::1]", "evil.example", "a.b", "127.0.0.1.", "xn--e1a.example"]
    middles = ["", "@", "\\", "%40", "#", "?", ":", " ", "\t", ".", "/", "@evil.example", "\\@evil.example"]
    tails = ["", ":8080", "/connect", "/", ":1/x/", "@127.0.0.1", "#@127.0.0.1"]
    accepted = 0
    for scheme, host, middle, tail in itertools.product(schemes, hosts, middles, tails):
        url = f"{scheme}{host}{middle}{tail}"
        try:
            normalised, origin = checked_url(url)
        except UnsafeUrl:
            continue
        accepted += 1
        hostname = (urlsplit(url.strip()).hostname or "").rstrip(".")
        assert hostname.lower() == origin.host or f"[{hostname}]" == f"[{origin.host}]", url
        assert (parse_url(url.strip()).host or "").strip("[]").lower().rstrip(".") == origin.host, url
        assert origin_of(normalised + "/v3/login") == origin, url
        assert origin.scheme == "https" or origin.host in ("127.0.0.1", "localhost", "::1"), url
    assert accepted > 20  # the grammar does reach accepted URLs


# --- 3 and 4. nothing BILL echoes reaches the output ---------------------------------------------------------
class EchoLogin:
    """Answers every login with ``status`` and the request body as BILL's message; a 5xx only once, then 400, so
    the retried login ends fast."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.logins = 0

    def __call__(self, seen: Seen) -> Reply:
        self.logins += 1
        status = self.status if self.status < 500 or self.logins == 1 else 400
        message = seen.body.decode()
        return status, {"Content-Type": "application/json"}, json.dumps([{"code": "BDC_9999", "message": message}])


def echo_list(seen: Seen) -> Reply:
    """Signs in, then answers every list request with 400 echoing the session id and developer key."""
    if seen.path.startswith("/v3/login"):
        return login_ok(SESSION)
    echoed = f"bad session {seen.headers.get('sessionId')} key {seen.headers.get('devKey')}"
    return 400, {"Content-Type": "application/json"}, json.dumps([{"code": "BDC_9998", "message": echoed}])


@pytest.mark.slow
@pytest.mark.parametrize("debug", [False, True])
def test_given_bill_echoes_credentials_when_check_and_read_run_then_no_output_line_holds_them(
    debug: bool, tmp_path: Path
) -> None:
    """Breaks if any message type (CONNECTION_STATUS, TRACE, LOG) is written without the secret filter: logins
    answered 400, 403 and 500 (then 400) that echo the login body, and a list 400 that echoes the session headers;
    ``check`` and ``read`` of each, through the installed CLI."""
    answers = {"login-400": EchoLogin(400), "login-403": EchoLogin(403), "login-500": EchoLogin(500)}
    answers["list-400"] = echo_list  # type: ignore[assignment]
    flags = ["--debug"] if debug else []
    catalog_path = tmp_path / "catalog.json"
    catalog_path.write_text(json.dumps(catalog_json(["vendors", "users"])))
    servers = {name: Server(answer) for name, answer in answers.items()}
    runs = {}
    with ThreadPoolExecutor(4) as pool:
        for name, server in servers.items():
            server.__enter__()
            path = tmp_path / f"{name}.json"
            path.write_text(json.dumps(config(server.base_url)))
            runs[name, "check"] = pool.submit(cli, "check", "--config", str(path), *flags)
            runs[name, "read"] = pool.submit(cli, "read", "--config", str(path), "--catalog", str(catalog_path), *flags)
        outputs = {key: future.result()[1] for key, future in runs.items()}
    for server in servers.values():
        server.__exit__()
    for (name, command), out in outputs.items():
        assert ('"CONNECTION_STATUS"' if command == "check" else '"TRACE"') in out, (name, command, out[-2000:])
        assert_no_secret(out, [PASSWORD, DEV_KEY, SESSION])
    for server in servers.values():
        assert any(PASSWORD.encode() in s.body for s in server.seen)  # each server did see (and echo) them


@pytest.mark.parametrize("offset", range(100, 128))
def test_given_an_answer_quoted_in_part_when_a_secret_straddles_the_cut_then_no_piece_of_it_is_shown(
    offset: int, tmp_path: Path
) -> None:
    """Breaks if an error quotes the first bytes of an answer before masking: the part of the secret before the
    cut would escape the filter."""
    body = "<" + "x" * (offset - 1) + PASSWORD + "x" * 50  # not JSON: quoted as "starts with ..."

    with Server(lambda seen: (200, {"Content-Type": "text/html"}, body)) as gateway:
        output = run_check(config(gateway.base_url), tmp_path)
    status = output.connection_status_messages[0].connectionStatus
    logs = [m.log.message for m in output.logs] + [m.trace.error.message or "" for m in output.errors]
    assert "not JSON" in status.message
    assert "x" * 20 in status.message  # the answer is quoted, masked
    assert_no_secret("\n".join([status.message, *logs]), [PASSWORD])


# --- 5. a sign-in outage is one bounded failure; 12: refused once, unreachable named -------------------------
def login_always(status: int, body: str = "") -> Any:
    def answer(seen: Seen) -> Reply:
        if seen.path.startswith("/v3/login"):
            return status, {"Content-Type": "application/json"}, body
        return page([{"id": "00901A", "updatedTime": "2024-01-01T00:00:00.000Z"}])

    return answer


def test_given_login_answers_500_when_reading_every_stream_then_one_bounded_failure_and_no_stream_is_read() -> None:
    """Breaks if each stream retries the whole login schedule on its own (154 logins for 22 streams), or if the
    schedule is longer than 5 attempts."""
    sleeps: List[float] = []
    with Server(login_always(500, '[{"code": "BDC_1001", "message": "Unexpected system error."}]')) as gateway:
        output = read(quiet_source(sleeps), config(gateway.base_url), catalog(STREAM_NAMES))
    assert gateway.paths() == ["/v3/login"] * 5
    assert len(sleeps) == 4 and sum(sleeps) < 60
    assert output.records == []
    assert len(output.errors) == 1
    assert output.errors[0].trace.error.failure_type.value == "transient_error"
    assert "BILL had a server error" in output.errors[0].trace.error.message


def test_given_a_wrong_password_when_reading_22_streams_then_one_login_one_config_error_and_no_stream() -> None:
    refused = '[{"code": "BDC_1101", "message": "Invalid username or password"}]'
    with Server(login_always(400, refused)) as gateway:
        output = read(quiet_source(), config(gateway.base_url), catalog(STREAM_NAMES))
    assert gateway.paths() == ["/v3/login"]
    assert len(output.errors) == 1
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error"
    assert error.message.count("BILL rejected the username or password") == 1
    assert [m for m in output.logs if m.log.level.value == "ERROR"] == []


def test_given_login_fails_for_good_mid_sync_when_other_streams_wait_then_none_of_them_starts() -> None:
    """The session ends mid-sync and every new login fails: the streams not yet started are not attempted, and
    the sync reports the sign-in failure once at the end."""
    logins: List[Seen] = []
    lists: List[Seen] = []

    def answer(seen: Seen) -> Reply:
        if seen.path.startswith("/v3/login"):
            logins.append(seen)
            if len(logins) == 1:
                return login_ok()
            return 500, {}, ""
        lists.append(seen)
        if len(lists) > 1:  # the first stream reads; then the session ends
            return 401, {"Content-Type": "application/json"}, '[{"code": "BDC_1109", "message": "Session expired"}]'
        return page([{"id": "00901A", "updatedTime": "2024-01-01T00:00:00.000Z"}])

    with Server(answer) as gateway:
        output = read(quiet_source(), {**config(gateway.base_url), "max_concurrent_requests": 1}, catalog(STREAM_NAMES))
    assert len(logins) == 6  # the first, then one schedule of 5 attempts for the whole sync
    assert len(lists) == 2  # no stream after the second one is attempted
    assert len(output.records) == 1
    assert "BILL had a server error" in output.errors[-1].trace.error.message


@pytest.mark.slow
def test_given_login_never_answers_when_checking_then_check_answers_within_a_minute(tmp_path: Path) -> None:
    """Breaks if the login's read timeout is long (60 s) or check retries the whole read schedule (467 s)."""
    with Server(lambda seen: None) as gateway:
        started = time.monotonic()
        output = run_check(config(gateway.base_url), tmp_path, SourceBill())
        took = time.monotonic() - started
        attempts = len(gateway.seen)
    status = output.connection_status_messages[0].connectionStatus
    assert took < 70, took
    assert 2 <= attempts <= 4
    assert f"127.0.0.1:{gateway.port}" in status.message
    assert "no answer within 15 s" in status.message


@pytest.mark.parametrize(
    "base_url, cause",
    [
        ("http://127.0.0.1:{dead}", "the connection was refused"),
        ("https://nonexistent.invalid", "could not be resolved"),
    ],
)
def test_given_bill_unreachable_when_checking_then_the_message_names_host_and_cause(
    base_url: str, cause: str, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    url = base_url.format(dead=dead)
    output = run_check(config(url), tmp_path)
    message = output.connection_status_messages[0].connectionStatus.message
    assert url.removeprefix("https://").removeprefix("http://") in message
    assert cause in message


# --- 8. numbers and JSON the fast parser refuses ------------------------------------------------------------
EXACT_PAGE = (
    '{"results": ['
    '{"id": "00901N1", "updatedTime": "2024-01-01T00:00:00.000Z", "big": 123456789012345678901234567890, '
    '"money": 12345678901234567.89, "small": 0.1, "count": 7},'
    '{"id": "00901N2", "updatedTime": "2024-01-01T00:00:01.000Z", "huge": 1e309, "text": "a\\ud800b"},'
    '{"id": "00901N3", "updatedTime": "2024-01-01T00:00:02.000Z", "deep": ' + "[" * 1500 + "1.5" + "]" * 1500 + "}"
    '], "nextPage": null}'
)


@pytest.mark.slow
def test_given_numbers_beyond_floats_and_json_orjson_refuses_when_reading_then_records_are_exact(
    tmp_path: Path,
) -> None:
    """Breaks if big integers or 17-digit money are rounded (orjson alone), or if the page with 1e309, a lone
    surrogate or 1,500 levels of nesting fails the stream ("not JSON") instead of taking the exact slow path."""

    def answer(seen: Seen) -> Reply:
        if seen.path.startswith("/v3/login"):
            return login_ok()
        return 200, {"Content-Type": "application/json"}, EXACT_PAGE

    with Server(answer) as gateway:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config(gateway.base_url)))
        catalog_path = tmp_path / "catalog.json"
        catalog_path.write_text(json.dumps(catalog_json(["vendors"])))
        code, out = cli("read", "--config", str(path), "--catalog", str(catalog_path))
    lines = [line for line in out.splitlines() if line.startswith('{"type":"RECORD"')]
    assert code == 0, out[-3000:]
    assert len(lines) == 3
    assert '"big":123456789012345678901234567890' in lines[0]
    assert '"money":12345678901234567.89' in lines[0]
    assert '"small":0.1,"count":7' in lines[0]
    assert '"huge":1E+309' in lines[1] and '"text":"a\\ud800b"' in lines[1]
    assert '"deep":' + "[" * 1500 + "1.5" + "]" * 1500 in lines[2]
    for line in lines[:2]:
        json.loads(line)  # valid JSON (the 1,500-deep line is beyond the json module's recursion limit)


# --- 9. SIGTERM ---------------------------------------------------------------------------------------------
def many_records(seen: Seen) -> Reply:
    if seen.path.startswith("/v3/login"):
        return login_ok()
    query = seen.path.partition("?")[2]
    page_no = int(dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("page", "0") or 0)
    results = [
        {
            "id": f"00901P{page_no:04d}{i:03d}",
            "updatedTime": f"2024-01-01T00:{page_no // 60:02d}:{page_no % 60:02d}.000Z",
            "name": "n" * 400,
        }
        for i in range(100)
    ]
    body = {"results": results, "nextPage": str(page_no + 1) if page_no < 400 else None}
    return 200, {"Content-Type": "application/json"}, json.dumps(body)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0])
def test_given_sigterm_while_stdout_is_blocked_when_reading_then_whole_lines_valid_state_and_exit_143(
    delay: float, tmp_path: Path
) -> None:
    """Nobody reads stdout, so the connector blocks in the middle of a write; SIGTERM then arrives. Breaks if the
    process dies at once (the pipe then ends with a cut-off line) or exits 0."""
    with Server(many_records) as gateway:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config(gateway.base_url)))
        catalog_path = tmp_path / "catalog.json"
        catalog_path.write_text(json.dumps(catalog_json(["vendors", "bills", "invoices"])))
        for stream in (catalog := json.loads(catalog_path.read_text()))["streams"]:
            stream["sync_mode"] = "incremental"
        catalog_path.write_text(json.dumps(catalog))
        script = Path(sys.executable).parent / "source-bill"
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        proc = subprocess.Popen(
            [str(script), "read", "--config", str(path), "--catalog", str(catalog_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(gateway.seen) < 8:  # reading has begun and the pipe is filling
            time.sleep(0.1)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143
    text = out.decode()
    assert text.endswith("\n")
    lines = text.splitlines()
    messages = [json.loads(line) for line in lines]  # every line whole
    states = [m for m in messages if m["type"] == "STATE"]
    assert states, "the read got far enough to checkpoint"
    assert states[-1]["state"]["stream"]["stream_state"]["updatedTime"]


def test_given_a_url_of_another_origin_when_the_client_is_asked_to_send_it_then_nothing_is_sent() -> None:
    """The last line of defence: whatever builds a URL (a stream, a page token, a future token endpoint), no
    request leaves for an origin outside the allowed ones (scheme, host and port)."""
    import logging

    from airbyte_cdk.utils.traced_exception import AirbyteTracedException

    from source_bill.client import BillClient
    from source_bill.config import BillConfig

    with Server(lambda seen: page([])) as elsewhere, Server(lambda seen: login_ok()) as gateway:
        client = BillClient(BillConfig.from_mapping(config(gateway.base_url)), logging.getLogger("test"))
        client.auth.session_id()
        for url in (
            f"http://localhost:{elsewhere.port}/v3/vendors",
            f"http://127.0.0.1:{elsewhere.port}/v3/vendors",
            f"http://localhost:{gateway.port}/v3/vendors",
        ):
            with pytest.raises(AirbyteTracedException, match="refused before it was sent"):
                client.send_request("GET", url, {})
        assert elsewhere.seen == []
        assert gateway.paths() == ["/v3/login"]
