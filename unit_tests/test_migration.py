"""Configs written before the sign-in choice: migrated into ``credentials``, written back, announced by CONTROL."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List

import pytest
from airbyte_cdk.models import Status, SyncMode
from airbyte_cdk.test.entrypoint_wrapper import _run_command
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest

from unit_tests.builders import (
    BASE,
    CONFIG,
    SESSION,
    catalog,
    list_request,
    login_request,
    login_response,
    page_response,
    records,
    source,
)

FLAT = {**CONFIG, "start_date": "2024-01-01T00:00:00Z", "requests_per_hour": 900, "x_kept": {"any": ["thing"]}}
MIGRATED = {
    "credentials": {
        "auth_type": "user_login",
        "username": CONFIG["username"],
        "password": CONFIG["password"],
        "dev_key": CONFIG["dev_key"],
    },
    "organization_id": CONFIG["organization_id"],
    "environment": "sandbox",
    "start_date": "2024-01-01T00:00:00Z",
    "requests_per_hour": 900,
    "x_kept": {"any": ["thing"]},
}


def control_configs(printed: str) -> List[Dict[str, Any]]:
    messages = [json.loads(line) for line in printed.splitlines() if line.startswith("{")]
    return [m["control"]["connectorConfig"]["config"] for m in messages if m["type"] == "CONTROL"]


def probe() -> HttpRequest:
    return HttpRequest(f"{BASE}/v3/vendors", query_params={"max": "1"})


def test_given_a_flat_config_when_check_then_same_login_file_rewritten_and_one_control_message(
    http_mocker: HttpMocker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    http_mocker.post(login_request(), login_response())  # the same login body as before the migration
    http_mocker.get(probe(), page_response([]))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(FLAT))

    output = _run_command(source(), ["check", "--config", str(path)])

    assert output.connection_status_messages[0].connectionStatus.status == Status.SUCCEEDED
    assert json.loads(path.read_text()) == MIGRATED
    assert control_configs(capsys.readouterr().out) == [MIGRATED]


def test_given_a_migrated_config_when_run_again_then_no_control_message_and_file_unchanged(
    http_mocker: HttpMocker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(probe(), page_response([]))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(MIGRATED))
    before = path.read_text()

    output = _run_command(source(), ["check", "--config", str(path)])

    assert output.connection_status_messages[0].connectionStatus.status == Status.SUCCEEDED
    assert path.read_text() == before
    assert control_configs(capsys.readouterr().out) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write a read-only file")
def test_given_a_read_only_flat_config_when_check_then_migrated_in_memory_with_a_warning(
    http_mocker: HttpMocker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(probe(), page_response([]))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(FLAT))
    path.chmod(0o444)

    output = _run_command(source(), ["check", "--config", str(path)])

    assert output.connection_status_messages[0].connectionStatus.status == Status.SUCCEEDED
    assert json.loads(path.read_text()) == FLAT
    assert control_configs(capsys.readouterr().out) == [MIGRATED]
    assert output.is_in_logs("Could not write the migrated config back")


def test_given_a_flat_config_and_an_old_state_when_read_then_the_state_is_honoured(
    http_mocker: HttpMocker, tmp_path: Path
) -> None:
    http_mocker.post(login_request(), login_response())
    flt = 'updatedTime:gte:"2024-05-01T00:00:00.000Z"'
    http_mocker.get(list_request("vendors", filters=flt, session_id=SESSION), page_response(records(0, 2)))
    config_path, catalog_path, state_path = (tmp_path / n for n in ("config.json", "catalog.json", "state.json"))
    config_path.write_text(json.dumps(CONFIG))
    configured = catalog("vendors", mode=SyncMode.incremental)
    catalog_path.write_text(json.dumps({"streams": [_stream_json(s) for s in configured.streams]}))
    state_path.write_text(json.dumps({"vendors": {"updatedTime": "2024-05-01T00:00:00.000Z"}}))  # the legacy form

    output = _run_command(
        source(),
        ["read", "--config", str(config_path), "--catalog", str(catalog_path), "--state", str(state_path)],
    )

    assert not output.errors
    assert len(output.records) == 2


def _stream_json(stream: Any) -> Dict[str, Any]:
    from airbyte_cdk.models import ConfiguredAirbyteStreamSerializer

    return ConfiguredAirbyteStreamSerializer.dump(stream)  # type: ignore[no-any-return]
