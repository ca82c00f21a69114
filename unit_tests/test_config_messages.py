"""Invalid configs are answered with the key's name, what it must be and where to find the value.

Through the ``source-bill`` console entry (``source_bill.run.run``, in-process, and once as a real
process): the spec's JSON-schema check answers before the connector's own checks, so its words are what
the user sees. No jsonschema wording (``does not match '^008...'``, ``is not of type``), no secret value.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping

import pytest
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_bill import SourceBill
from source_bill import run as run_module
from source_bill.run import launch
from unit_tests.builders import config

ROOT = Path(__file__).resolve().parents[1]
SPEC = json.loads((ROOT / "source_bill" / "spec.json").read_text())
CDK_WORDS = ("does not match", "is not of type", "is a required property", "is not one of", "Config validation error")


@contextlib.contextmanager
def run_in_process() -> Iterator[None]:
    """``run`` routes stdout, stderr, the log handlers and SIGTERM through its own output: undo that afterwards."""
    handlers = logging.getLogger().handlers + logging.getLogger("airbyte").handlers
    streams = [(h, h.stream) for h in handlers if isinstance(h, logging.StreamHandler)]
    saved = (sys.stdout, sys.stderr, signal.getsignal(signal.SIGTERM))
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved[0], saved[1]
        signal.signal(signal.SIGTERM, saved[2])
        for handler, stream in streams:
            handler.setStream(stream)


def cli(argv: List[str], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> List[Dict[str, Any]]:
    monkeypatch.setattr(sys, "argv", ["source-bill", *argv])
    with run_in_process():
        run_module.run()
    return [
        json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")
    ]  # not pytest's log lines


def check_message(cfg: Mapping[str, Any], tmp_path: Path, monkeypatch: Any, capfd: Any) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    messages = cli(["check", "--config", str(path)], monkeypatch, capfd)
    statuses = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
    assert len(statuses) == 1, messages
    assert statuses[0]["status"] == "FAILED"
    return str(statuses[0]["message"])


@pytest.mark.parametrize(
    "overrides, key, must, where",
    [
        (
            {"organization_id": "01EMULATOR0001"},
            "organization_id (Organization ID)",
            "must look like 008... (e.g. 00801ABCDEFGHIJKLMNO), not '01EMULATOR0001'",
            "Settings > Profiles > Organization",
        ),
        (
            {"max_concurrent_requests": "3"},
            "max_concurrent_requests (Requests in Flight)",
            "must be a whole number from 1 to 3, not '3' (text)",
            "BILL allows 3 per developer key",
        ),
        (
            {"requests_per_hour": 0},
            "requests_per_hour (Requests per Hour)",
            "must be a whole number from 1 to 20000, not 0",
            "BILL allows 20,000 per developer key",
        ),
        (
            {"environment": "prod"},
            "environment (Environment)",
            "must be one of 'production', 'sandbox', not 'prod'",
            "gateway.stage.bill.com",
        ),
        (
            {"start_date": "01/02/2024"},
            "start_date (Start Date)",
            "must look like YYYY-MM-DDTHH:mm:ssZ (e.g. 2024-01-01T00:00:00Z), not '01/02/2024'",
            "leave empty to copy all history",
        ),
        (
            {"password": 987654321},
            "password (Password)",
            "must be text, not a number (hidden: a secret)",
            "The value of the sync token",
        ),
        (
            {"dev_key": ["placeholder-dev-key-456"]},
            "dev_key (Developer Key)",
            "must be text, not a list (hidden: a secret)",
            "Settings > Sync & Integrations > Manage Developer Keys",
        ),
    ],
)
def test_given_invalid_value_when_check_then_failed_naming_key_rule_and_where_to_look(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: Any,
    overrides: Dict[str, Any],
    key: str,
    must: str,
    where: str,
) -> None:
    message = check_message(config(**overrides), tmp_path, monkeypatch, capfd)

    assert f"{key} {must}." in message
    assert where in message
    assert not any(words in message for words in CDK_WORDS), message
    assert "^008" not in message and "[0-9]" not in message  # no regular expression
    assert "987654321" not in message and "****" not in message  # a secret is described, never quoted


def test_given_missing_keys_when_check_then_each_named_with_where_to_find_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: Any
) -> None:
    cfg = config()
    del cfg["dev_key"], cfg["organization_id"]

    message = check_message(cfg, tmp_path, monkeypatch, capfd)

    assert message.startswith("The config has 2 problems. (1) organization_id (Organization ID) is missing.")
    assert "(2) credentials.dev_key (Developer Key) is missing. Your BILL developer key" in message, message
    assert "Settings > Profiles > Organization" in message
    assert not any(words in message for words in CDK_WORDS), message


def test_given_invalid_config_when_read_then_config_error_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: Any
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(organization_id="12345")))
    catalog = ROOT / "integration_tests" / "configured_catalog.json"

    with pytest.raises(AirbyteTracedException) as raised:
        cli(["read", "--config", str(path), "--catalog", str(catalog)], monkeypatch, capfd)

    assert raised.value.failure_type.value == "config_error"
    assert str(raised.value.message).startswith("organization_id (Organization ID) must look like 008...")


@pytest.mark.parametrize(
    "credentials, expected",
    [
        (
            {"auth_type": "user_login", "username": "u", "password": 1234, "dev_key": "k"},
            ["credentials.password (Password) must be text, not a number (hidden: a secret)."],
        ),
        (
            {"auth_type": "user_login", "username": "u"},
            [
                "(1) credentials.password (Password) is missing. The value of the sync token, or the password",
                "(2) credentials.dev_key (Developer Key) is missing. Your BILL developer key",
            ],
        ),
        (
            {"auth_type": "oauth_client_credentials", "client_id": "c", "client_secret": 77},
            ["credentials.client_secret (Client Secret) must be text, not a number (hidden: a secret)."],
        ),
        (
            {"auth_type": "oauth"},
            [
                "credentials.auth_type must be one of 'user_login' (BILL user or AP & AR sync token), "
                "'oauth_client_credentials' (OAuth client credentials), not 'oauth'"
            ],
        ),
    ],
)
def test_given_nested_choice_when_check_then_the_key_path_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: Any, credentials: Dict[str, Any], expected: List[str]
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credentials": credentials, "organization_id": "00801ABC"}))
    monkeypatch.setattr(sys, "argv", ["source-bill", "check", "--config", str(path)])

    with run_in_process():
        launch(SourceBill(), sys.argv[1:])
    messages = [
        json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")
    ]  # not pytest's log lines

    status = next(m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS")
    assert status["status"] == "FAILED"
    for words in expected:
        assert words in status["message"]
    assert "is not valid under any of the given schemas" not in status["message"]
    assert "1234" not in status["message"] and "77" not in status["message"]


@pytest.mark.slow  # a real process
def test_given_invalid_config_when_cli_check_then_one_failed_status_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(organization_id="01EMULATOR0001", password=55555)))

    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )

    assert proc.returncode == 0, proc.stderr
    statuses = [json.loads(x) for x in proc.stdout.splitlines() if '"CONNECTION_STATUS"' in x]
    assert len(statuses) == 1
    message = statuses[0]["connectionStatus"]["message"]
    assert message.startswith(
        "The config has 2 problems. (1) credentials.password (Password) must be text, not a number"
    )
    assert "(2) organization_id (Organization ID) must look like 008..." in message
    assert "55555" not in proc.stdout + proc.stderr
