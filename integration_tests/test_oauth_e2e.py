"""Both sign-in methods end to end: the ``source-bill`` CLI against the bundled emulator on 127.0.0.1.

* OAuth client credentials: check, discover and a full read of the 22 streams, record for record; one token
  for the whole run (not per request, not per worker); no request carries a sessionId or devKey and none logs
  in; a token revoked mid-read is replaced once; token endpoint outages are retried; a refused client is a
  FAILED check that says what to check; with ``--debug`` neither the client secret nor any token is printed.
* A config written before ``credentials`` (flat username/password/dev_key): check migrates it (file rewritten,
  one CONTROL message), and the migrated file reads exactly.
* The PyAirbyte main job with BILL_CLIENT_ID / BILL_CLIENT_SECRET.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Collection, Iterator, List

import pytest

from integration_tests.bill_emulator import PRIMARY_KEYS, STREAMS, BillEmulator
from integration_tests.test_cli_e2e import assert_records_equal, configured_catalog, ok, run_cli, write_json
from source_bill.children import CHILD_STREAM_CLASSES
from source_bill.more_streams import MORE_STREAM_CLASSES
from source_bill.spend import SPEND_STREAM_CLASSES
from source_bill.streams import STREAM_CLASSES
from tests_support import FakeClock

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
OAUTH = "oauth_client_credentials"


@pytest.fixture(scope="module")
def emu() -> Iterator[BillEmulator]:
    with BillEmulator(seed=3, host="127.0.0.1", port=0) as emulator:
        yield emulator


def full_catalog(tmp_path: Path, streams: Collection[str] = tuple(STREAMS)) -> Path:
    catalog = configured_catalog(full_refresh=True)
    catalog["streams"] = [s for s in catalog["streams"] if s["stream"]["name"] in streams]
    return write_json(tmp_path / "catalog.json", catalog)


def data_requests(emu: BillEmulator) -> List[tuple]:
    return [entry for entry in emu.request_log if entry[1].startswith("/v3/")]


def test_given_oauth_when_check_discover_and_read_all_then_exact_with_one_token_and_no_session_headers(
    emu: BillEmulator, tmp_path: Path
) -> None:
    config = write_json(tmp_path / "config.json", emu.config(OAUTH))
    emu.reset_stats()

    check = ok(run_cli("check", "--config", str(config)))
    assert [s["connectionStatus"]["status"] for s in check.of_type("CONNECTION_STATUS")] == ["SUCCEEDED"]
    discover = ok(run_cli("discover", "--config", str(config)))
    streams = {s["name"]: s for s in discover.of_type("CATALOG")[0]["catalog"]["streams"]}
    ap_ar = [*STREAM_CLASSES, *MORE_STREAM_CLASSES, *CHILD_STREAM_CLASSES]
    spend = {name for name in streams if name.startswith("spend_")}
    assert set(STREAMS) <= set(streams) and len(streams) == len(ap_ar) + len(SPEND_STREAM_CLASSES)
    assert len(spend) == len(SPEND_STREAM_CLASSES)  # the OAuth token serves Spend & Expense too
    assert emu.stats.token_count == 1  # check's token; discover reads nothing
    emu.reset_stats()

    run = ok(run_cli("read", "--config", str(config), "--catalog", str(full_catalog(tmp_path))))

    records = run.records()
    for stream in STREAMS:
        assert_records_equal(stream, records.get(stream, []), emu.records(stream))
    assert emu.stats.token_count == 1 and emu.stats.token_attempts == 1  # one token for three workers
    assert emu.stats.login_attempts == 0
    sent = data_requests(emu)
    assert len(sent) >= len(STREAMS)
    for method, path, _query, headers in sent:
        assert "Authorization" in headers, path
        assert "sessionId" not in headers and "devKey" not in headers, f"{method} {path} carried {headers}"


def test_given_tokens_revoked_mid_read_when_read_with_debug_then_one_new_token_exact_and_no_secret_printed(
    emu: BillEmulator, tmp_path: Path
) -> None:
    config = write_json(tmp_path / "config.json", emu.config(OAUTH))
    issued: List[str] = []
    grant = emu._grant_token

    def recording_grant(headers: Any, body: bytes) -> Any:
        answer = grant(headers, body)
        if answer.status == 200:
            issued.append(json.loads(answer.body)["access_token"])
        return answer

    seen: List[int] = []  # vendors list requests of this read (the emulator's index counts since it started)
    revoked: List[int] = []

    def revoke_once(emu_: BillEmulator, stream: str, index: int) -> None:
        if stream == "vendors":
            seen.append(index)
            if len(seen) == 2:  # before the second page
                revoked.append(index)
                emu_.revoke_tokens()

    emu._grant_token = recording_grant  # type: ignore[method-assign]
    emu.before_list(revoke_once)
    emu.reset_stats()
    try:
        streams = ["vendors", "bills", "invoices", "customers"]
        run = ok(run_cli("read", "--config", str(config), "--catalog", str(full_catalog(tmp_path, streams)), "--debug"))
    finally:
        emu.remove_before_list(revoke_once)
        del emu._grant_token

    assert len(revoked) == 1
    assert len(issued) == 2 and emu.stats.token_count == 2  # the first token, then one for every worker
    for stream in streams:
        assert_records_equal(stream, run.records().get(stream, []), emu.records(stream))
    output = run.stdout + run.stderr
    for secret in [emu.oauth_client["client_secret"], *issued]:
        assert secret not in output


def test_given_token_endpoint_outages_when_read_then_retried_and_one_token(emu: BillEmulator, tmp_path: Path) -> None:
    config = write_json(tmp_path / "config.json", emu.config(OAUTH))
    emu.reset_stats()
    emu.inject("500_json", "/authx/token")
    emu.inject("drop", "/authx/token")
    emu.inject("502_html", "/authx/token")

    run = ok(run_cli("read", "--config", str(config), "--catalog", str(full_catalog(tmp_path, ["vendors"]))))

    assert_records_equal("vendors", run.records()["vendors"], emu.records("vendors"))
    assert emu.stats.faults_injected == {"500_json": 1, "drop": 1, "502_html": 1}
    assert emu.stats.requests_by_path["/authx/token"] == 4  # three faults, then the token
    assert emu.stats.token_attempts == 1 and emu.stats.token_count == 1


def test_given_a_wrong_client_secret_when_check_then_failed_with_what_to_check_and_the_secret_not_printed(
    emu: BillEmulator, tmp_path: Path
) -> None:
    wrong = "Wrong-Secret-Pelican-5521"
    config = write_json(tmp_path / "config.json", emu.config(OAUTH, client_secret=wrong))
    emu.reset_stats()

    run = run_cli("check", "--config", str(config), "--debug")

    assert run.returncode == 0, run.describe()
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED"
    assert "invalid_client" in status["message"] and "client_id and client_secret" in status["message"]
    assert emu.stats.token_attempts == 1
    assert wrong not in run.stdout + run.stderr


def test_given_a_flat_config_when_check_then_migrated_file_and_control_message_then_read_exact(
    emu: BillEmulator, tmp_path: Path
) -> None:
    flat = emu.flat_config(start_date="2020-01-01T00:00:00Z")
    config = write_json(tmp_path / "config.json", flat)

    check = ok(run_cli("check", "--config", str(config)))

    assert [s["connectionStatus"]["status"] for s in check.of_type("CONNECTION_STATUS")] == ["SUCCEEDED"]
    migrated = emu.config(start_date="2020-01-01T00:00:00Z")
    assert json.loads(config.read_text()) == migrated
    controls = [m["control"] for m in check.of_type("CONTROL")]
    assert [(c["type"], c["connectorConfig"]["config"]) for c in controls] == [("CONNECTOR_CONFIG", migrated)]

    run = ok(run_cli("read", "--config", str(config), "--catalog", str(full_catalog(tmp_path, ["vendors", "users"]))))
    assert run.of_type("CONTROL") == []
    for stream in ("vendors", "users"):
        assert_records_equal(stream, run.records()[stream], emu.records(stream))


def test_given_oauth_env_when_main_job_runs_then_every_stream_lands_in_duckdb(tmp_path: Path) -> None:
    try:
        import duckdb
    except ImportError:
        pytest.skip("duckdb/PyAirbyte not installed in this interpreter; run `bash scripts/sync.sh` once")
    with BillEmulator(seed=4, host="127.0.0.1", port=0) as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BILL_")}
        env.update(
            BILL_CLIENT_ID=emu.oauth_client["client_id"],
            BILL_CLIENT_SECRET=emu.oauth_client["client_secret"],
            BILL_ORGANIZATION_ID=emu.credentials["organization_id"],
            BILL_BASE_URL=emu.base_url,
            BILL_OAUTH_TOKEN_URL=emu.token_url,
            NO_PROXY="127.0.0.1,localhost",
        )
        db = tmp_path / "bill.duckdb"
        proc = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "sync_to_duckdb.py"), "--duckdb", str(db)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "BILL_* environment variables" in proc.stdout
        assert emu.stats.login_attempts == 0 and emu.stats.token_count >= 1
        assert emu.oauth_client["client_secret"] not in proc.stdout + proc.stderr
        with duckdb.connect(str(db), read_only=True) as conn:
            for stream in STREAMS:
                rows = conn.sql(f'select count(*) from main."{stream}"').fetchone()
                assert rows is not None and rows[0] == len(
                    {tuple(r[k] for k in PRIMARY_KEYS[stream]) for r in emu.records(stream)}
                ), stream


def test_given_a_budget_of_two_requests_an_hour_when_read_then_the_token_request_counts_against_it() -> None:
    from airbyte_cdk.models import SyncMode
    from airbyte_cdk.test.catalog_builder import CatalogBuilder
    from airbyte_cdk.test.entrypoint_wrapper import read

    from source_bill import SourceBill

    clock = FakeClock(100.0)
    with BillEmulator(seed=5, host="127.0.0.1", port=0, sizes={"vendors": 150}) as emu:
        source = SourceBill(clock=clock, sleep=clock.sleep)
        catalog = CatalogBuilder().with_stream("vendors", SyncMode.full_refresh).build()

        output = read(source, emu.config(OAUTH, requests_per_hour=2), catalog)

        assert len(output.records) == 150
        assert emu.stats.requests_by_path == {"/authx/token": 1, "/v3/vendors": 2}
    assert clock.slept == [3600.0]  # the token and page 1 used the hour's budget: page 2 waited
