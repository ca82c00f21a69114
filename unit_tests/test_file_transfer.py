"""Airbyte file transfer of documents and attachments: bytes, sizes, paths, infected files, expired links.

Against the bundled emulator (a real HTTP server on 127.0.0.1) through the entrypoint; the size-mismatch and
foreign-host cases through HttpMocker. The staging directory is the CDK's (files_directory), pointed at a
temporary folder the way AIRBYTE_STAGING_DIRECTORY points it on the platform.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from airbyte_cdk.models import Level, SyncMode
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.sources.utils import files_directory
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, discover, read
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse

from integration_tests.bill_emulator import BillEmulator
from source_bill import SourceBill
from unit_tests.builders import BASE, catalog, config, list_request, login_request, login_response, page_response

FILES = {"delivery_method": {"delivery_type": "use_file_transfer"}}
CHILDREN = ["bill_documents", "vendor_attachments", "customer_attachments", "invoice_attachments"]


@pytest.fixture
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "staging"
    folder.mkdir()
    monkeypatch.setattr(files_directory, "AIRBYTE_STAGING_DIRECTORY", str(folder))
    return folder


@pytest.fixture
def emu() -> Iterator[BillEmulator]:
    with BillEmulator(seed=31, sizes={"bills": 12, "vendors": 6}) as emulator:
        for bill in emulator.records("bills")[:4]:
            emulator.more.add_child("bills", bill["id"])
        yield emulator


def files_in(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def warnings(output: EntrypointOutput) -> List[str]:
    return [
        m.log.message  # type: ignore[union-attr]
        for m in output._messages
        if m.type == MessageType.LOG and m.log.level == Level.WARN  # type: ignore[union-attr]
    ]


def test_given_file_transfer_when_read_then_every_file_arrives_byte_for_byte_with_its_reference(
    emu: BillEmulator, staging: Path
) -> None:
    output = read(SourceBill(), emu.config(**FILES), catalog("bill_documents"))

    assert not output.errors
    records = [m.record for m in output.records]
    expected = [d for b in emu.records("bills") for d in emu.more.children("bills", b["id"])]
    assert sorted(r.data["id"] for r in records) == sorted(d["id"] for d in expected)  # type: ignore[union-attr]
    relative_paths = set()
    for record in records:
        ref = record.file_reference  # type: ignore[union-attr]
        assert ref is not None
        data = emu.more.file_bytes(record.data["id"])  # type: ignore[union-attr]
        on_disk = Path(ref.staging_file_url).read_bytes()
        assert hashlib.sha256(on_disk).hexdigest() == hashlib.sha256(data).hexdigest()
        assert ref.file_size_bytes == len(data)
        assert Path(ref.staging_file_url) == staging / ref.source_file_relative_path
        assert ref.source_file_relative_path.startswith(f"{emu.credentials['organization_id']}/bill_documents/")
        assert record.data["id"] in ref.source_file_relative_path  # type: ignore[union-attr]
        relative_paths.add(ref.source_file_relative_path)
    assert len(relative_paths) == len(records)
    assert len(files_in(staging)) == len(records) == emu.more.downloads


def test_given_records_transfer_when_read_then_no_file_is_downloaded(emu: BillEmulator, staging: Path) -> None:
    output = read(SourceBill(), emu.config(), catalog("bill_documents", "vendor_attachments"))

    assert output.records and not output.errors
    assert all(m.record.file_reference is None for m in output.records)  # type: ignore[union-attr]
    assert emu.more.downloads == 0
    assert files_in(staging) == []
    assert not any(p.startswith("/v3/files/") for _, p, _, _ in emu.request_log)


def test_given_an_infected_file_when_read_then_warning_record_kept_and_no_download(
    emu: BillEmulator, staging: Path
) -> None:
    bill = emu.records("bills")[0]
    infected = emu.more.children("bills", bill["id"])[-1]["id"]
    emu.more.set_scan_status(infected, "INFECTED")

    output = read(SourceBill(), emu.config(**FILES), catalog("bill_documents"))

    by_id = {m.record.data["id"]: m.record for m in output.records}  # type: ignore[union-attr]
    assert by_id[infected].file_reference is None
    assert by_id[infected].data["scanStatus"] == "INFECTED"
    assert [w for w in warnings(output) if infected in w and "INFECTED" in w]
    assert not [p for _, p, _, _ in emu.request_log if p == f"/v3/files/{infected}"]
    assert all(r.file_reference is not None for i, r in by_id.items() if i != infected)


def test_given_an_expired_link_when_read_then_the_row_is_read_again_and_the_file_arrives(
    emu: BillEmulator, staging: Path
) -> None:
    emu.more.expired_links = 1  # the first row served carries a link that has expired

    output = read(SourceBill(), emu.config(**FILES), catalog("bill_documents"))

    assert not output.errors
    assert all(m.record.file_reference is not None for m in output.records)  # type: ignore[union-attr]
    bill_lists = [p for _, p, _, _ in emu.request_log if p.startswith("/v3/documents/bills/")]
    assert len(bill_lists) == len(emu.records("bills")) + 1  # one list read again, for a fresh link
    assert len(files_in(staging)) == len(output.records)


def test_given_a_session_that_expires_during_downloads_when_read_then_login_again_and_every_file_arrives(
    emu: BillEmulator, staging: Path
) -> None:
    emu.inject("expire", "/v3/files/", times=1)

    output = read(SourceBill(), emu.config(**FILES), catalog("bill_documents"))

    assert not output.errors
    assert emu.stats.login_count == 2
    assert len(files_in(staging)) == len(output.records) == emu.more.downloads


def test_given_file_transfer_when_discover_then_the_child_streams_are_file_based() -> None:
    with_files = {s.name: s for s in discover(SourceBill(), config(**FILES)).catalog.catalog.streams}  # type: ignore[union-attr]
    without = {s.name: s for s in discover(SourceBill(), config()).catalog.catalog.streams}  # type: ignore[union-attr]
    assert {n for n, s in with_files.items() if s.is_file_based} == set(CHILDREN)
    assert not any(s.is_file_based for s in without.values())


# --- HttpMocker: what the emulator does not do -------------------------------------------------------------

DOC = {"id": "00h001", "name": "invoice scan.pdf", "createdTime": "2024-01-01T00:00:00.000+00:00"}
BILL_ROW = {"id": "00n001", "updatedTime": "2024-01-01T00:00:00.000+00:00"}


def _mock_one_document(http_mocker: HttpMocker, link: str) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills"), page_response([BILL_ROW]))
    http_mocker.get(list_request("documents/bills/00n001", sort=None), page_response([{**DOC, "downloadLink": link}]))


def test_given_a_body_shorter_than_announced_when_read_then_error_naming_the_file_and_no_partial_file(
    http_mocker: HttpMocker, staging: Path
) -> None:
    link = f"{BASE}/v3/files/00h001"
    _mock_one_document(http_mocker, link)
    short = HttpResponse("only part of it", headers={"Content-Length": "4096"})
    http_mocker.get(HttpRequest(link), [short, short, short])

    output = read(SourceBill(), config(**FILES), catalog("bill_documents"), expecting_exception=True)

    messages = [e.trace.error.message or "" for e in output.errors]  # type: ignore[union-attr]
    assert any("00h001" in m and "4096" in m for m in messages), messages
    assert files_in(staging) == []
    assert not output.records


def test_given_a_link_on_another_host_when_read_then_no_credentials_go_there_and_the_record_is_kept(
    http_mocker: HttpMocker, staging: Path
) -> None:
    _mock_one_document(http_mocker, "https://files.example.com/00h001")  # no mock there: any request would fail

    output = read(SourceBill(), config(**FILES), catalog("bill_documents"))

    assert [m.record.data["id"] for m in output.records] == ["00h001"]  # type: ignore[union-attr]
    assert output.records[0].record.file_reference is None  # type: ignore[union-attr]
    assert any("files.example.com" in w for w in warnings(output))
    assert files_in(staging) == []


def test_given_a_file_name_with_path_parts_when_staged_then_it_stays_inside_the_staging_folder(
    http_mocker: HttpMocker, staging: Path
) -> None:
    link = f"{BASE}/v3/files/00h002"
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("bills"), page_response([BILL_ROW]))
    row: Dict[str, Any] = {**DOC, "id": "00h002", "name": "../../etc/passwd", "downloadLink": link}
    http_mocker.get(list_request("documents/bills/00n001", sort=None), page_response([row]))
    http_mocker.get(HttpRequest(link), HttpResponse(json.dumps({"x": 1})))

    output = read(SourceBill(), config(**FILES), catalog("bill_documents", mode=SyncMode.full_refresh))

    ref = output.records[0].record.file_reference  # type: ignore[union-attr]
    assert ref is not None and ".." not in ref.source_file_relative_path
    assert Path(ref.staging_file_url).resolve().is_relative_to(staging.resolve())


def test_given_a_download_that_redirects_when_read_then_not_followed_and_the_sync_says_so(
    http_mocker: HttpMocker, staging: Path
) -> None:
    link = f"{BASE}/v3/files/00h001"
    _mock_one_document(http_mocker, link)
    http_mocker.get(HttpRequest(link), HttpResponse("", 302, headers={"Location": "https://files.example.com/x"}))

    output = read(SourceBill(), config(**FILES), catalog("bill_documents"), expecting_exception=True)

    messages = [e.trace.error.message or "" for e in output.errors]  # type: ignore[union-attr]
    assert any("302" in m for m in messages), messages
    assert files_in(staging) == []
