"""Helpers shared by unit_tests/ and integration_tests/: the CLI locator, catalog builders, a strict HttpMocker,
a fake clock and record comparison. Stream names, keys and cursors come from ``source_bill.declarations``.

Import from here instead of copying a helper into a test file (both test packages can, from the repo root).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import pytest
import requests_mock
from airbyte_cdk.models import AirbyteStateMessage, ConfiguredAirbyteCatalog, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput
from airbyte_cdk.test.mock_http import HttpMocker, HttpRequest, HttpResponse

from source_bill import SourceBill
from source_bill.declarations import StreamDeclaration, declaration, declarations

ROOT = Path(__file__).resolve().parent
FULL = SyncMode.full_refresh
INCREMENTAL = SyncMode.incremental

STREAMS: List[str] = [d.name for d in declarations()]
INCREMENTAL_STREAMS: List[str] = [d.name for d in declarations() if d.incremental]
FULL_REFRESH_ONLY: List[str] = [d.name for d in declarations() if not d.incremental]


# --- running the connector ---------------------------------------------------------------------------------
def cli_command() -> List[str]:
    """The installed ``source-bill`` console script next to this interpreter (else on PATH), else the same entry
    point through this interpreter."""
    exe = Path(sys.executable).with_name("source-bill")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("source-bill")
    if found:
        return [found]
    return [sys.executable, "-c", "from source_bill.run import run; run()"]


def fast_source() -> SourceBill:
    """A source whose backoff waits cost nothing (in-process reads)."""
    return SourceBill(sleep=lambda seconds: None)


# --- catalogs ----------------------------------------------------------------------------------------------
def catalog(names: Iterable[str], mode: SyncMode = FULL) -> ConfiguredAirbyteCatalog:
    """A configured catalog of ``names`` in ``mode``, for in-process reads."""
    builder = CatalogBuilder()
    for name in names:
        builder.with_stream(name, mode)
    return builder.build()


def configured_catalog_json(names: Iterable[str], mode: str = "full_refresh") -> Dict[str, Any]:
    """A configured catalog as the CLI reads it from a file, keys and cursors as the connector declares them.

    ``mode`` "incremental" applies to streams with a cursor; the others stay full refresh. A name the connector
    does not declare (a test of bad input) is written like a stream keyed by ``id`` with an ``updatedTime`` cursor.
    """
    streams = []
    for name in names:
        try:
            declared = declaration(name)
        except KeyError:
            declared = StreamDeclaration(name, name, ("id",), "updatedTime")
        incremental = mode == "incremental" and declared.incremental
        cursor = [declared.cursor_field] if declared.cursor_field else []
        stream: Dict[str, Any] = {
            "name": name,
            "json_schema": {},
            "supported_sync_modes": ["full_refresh", "incremental"] if declared.incremental else ["full_refresh"],
            "source_defined_primary_key": [[k] for k in declared.primary_key],
        }
        if declared.incremental:
            stream["source_defined_cursor"] = True
            stream["default_cursor_field"] = cursor
        streams.append(
            {
                "stream": stream,
                "sync_mode": "incremental" if incremental else "full_refresh",
                "destination_sync_mode": "append_dedup" if incremental else "overwrite",
                "cursor_field": cursor if incremental else [],
                "primary_key": [[k] for k in declared.primary_key],
            }
        )
    return {"streams": streams}


def write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj, indent=2))
    return path


# --- HTTP mocked exactly ------------------------------------------------------------------------------------
class ExactHttpMocker(HttpMocker):
    """The CDK's HttpMocker, strict: every registered request is answered exactly as many times as it has
    responses, and a request that matches nothing is recorded and fails the test.

    The CDK's own check is "at least" (and requests-mock repeats the last response), so a connector that logs
    in before every request would still pass a test that registered one login; and a request that matches
    nothing only raises inside the connector, where it becomes an error trace a test may never look at.
    The CDK gives no public way to do either: this subclass uses HttpMocker's private ``_mocker``,
    ``_mock_request_method`` and ``_get_matchers``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.registered: List[Tuple[HttpRequest, int]] = []
        self.unmatched: List[str] = []

    def __enter__(self) -> ExactHttpMocker:
        super().__enter__()
        # requests-mock tries matchers newest first: registered first, this one is tried last, only when no
        # registered request matched. It records the request and matches nothing, so the request still fails.
        self._mocker.register_uri(requests_mock.ANY, requests_mock.ANY, additional_matcher=self._record_unmatched)
        return self

    def _record_unmatched(self, request: Any) -> bool:
        self.unmatched.append(f"{request.method} {request.url}")
        return False

    def _mock_request_method(self, method: Any, request: HttpRequest, responses: Any) -> None:
        count = 1 if isinstance(responses, HttpResponse) else len(responses)
        self.registered.append((request, count))
        super()._mock_request_method(method, request, responses)

    def calls(self, request: HttpRequest) -> int:
        """How many times the connector sent ``request`` (the object given to get/post)."""
        return next(m.actual_number_of_matches for m in self._get_matchers() if m.request is request)

    def clear_all_matchers(self) -> None:
        super().clear_all_matchers()
        self.registered = []

    def validate(self) -> None:
        problems = [f"unexpected request (no registered request matches it): {u}" for u in self.unmatched]
        for request, expected in self.registered:
            actual = self.calls(request)
            if actual != expected:
                problems.append(f"{request} was sent {actual} times, expected exactly {expected}")
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


# --- a clock the test moves --------------------------------------------------------------------------------
class FakeClock:
    """A clock (call it for the time) that moves only when told: ``advance`` or ``sleep`` (which also records
    each wait in ``slept``)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept: List[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# --- records -----------------------------------------------------------------------------------------------
def pk(stream: str, record: Mapping[str, Any]) -> Any:
    """The record's primary key as the connector declares it (a value, or a tuple for a composite key)."""
    return declaration(stream).key_of(record)


def by_stream(output: EntrypointOutput) -> Dict[str, List[Dict[str, Any]]]:
    """The records of an in-process read, per stream, in the order emitted."""
    out: Dict[str, List[Dict[str, Any]]] = {}
    for message in output.records:
        out.setdefault(message.record.stream, []).append(message.record.data)
    return out


def stream_states(output: EntrypointOutput, stream: str) -> List[AirbyteStateMessage]:
    return [m.state for m in output.state_messages if m.state.stream.stream_descriptor.name == stream]


def state_dict(message: AirbyteStateMessage) -> Dict[str, Any]:
    return dict(message.stream.stream_state.__dict__)


def by_pk(
    stream: str, records: Iterable[Mapping[str, Any]], *, identical_twice_ok: bool = False
) -> Dict[Any, Mapping[str, Any]]:
    """Records by primary key; a key read twice fails, unless ``identical_twice_ok`` and both copies are equal."""
    out: Dict[Any, Mapping[str, Any]] = {}
    for record in records:
        key = pk(stream, record)
        if key in out:
            assert identical_twice_ok, f"{stream}: record {key!r} read twice"
            assert out[key] == record, f"{stream}: record {key!r} read twice, differently: {out[key]} / {record}"
        out[key] = record
    return out


def assert_records_equal(
    stream: str, got: Iterable[Mapping[str, Any]], expected: Iterable[Mapping[str, Any]], *, twice_ok: bool = False
) -> None:
    """``got`` holds exactly the records of ``expected``: none missing, none extra, none read twice (unless
    ``twice_ok`` and identical), every field equal."""
    got_by = by_pk(stream, got, identical_twice_ok=twice_ok)
    expected_by = by_pk(stream, expected)
    missing = set(expected_by) - set(got_by)
    extra = set(got_by) - set(expected_by)
    assert not missing and not extra, (
        f"{stream}: {len(missing)} of {len(expected_by)} missing (e.g. {sorted(map(str, missing))[:3]}), "
        f"{len(extra)} unexpected (e.g. {sorted(map(str, extra))[:3]})"
    )
    for key, record in expected_by.items():
        assert got_by[key] == record, f"{stream} {key!r}: read {got_by[key]} but BILL has {record}"


def assert_exact(emu: Any, got: Mapping[str, List[Dict[str, Any]]], streams: Iterable[str]) -> None:
    """Every stream's records equal the emulator's: no record missing, none twice, every field the same."""
    for stream in streams:
        records = got.get(stream, [])
        duplicates = [k for k, n in Counter(pk(stream, r) for r in records).items() if n > 1]
        assert not duplicates, f"{stream}: {len(duplicates)} records emitted more than once, e.g. {duplicates[:3]}"
        assert_records_equal(stream, records, emu.records(stream))


def assert_latest(emu: Any, stream: str, runs: Iterable[Iterable[Mapping[str, Any]]]) -> None:
    """Across the runs, in order, the last version seen of every record is the emulator's current one."""
    last: Dict[Any, Mapping[str, Any]] = {}
    for records in runs:
        for record in records:
            last[pk(stream, record)] = record
    expected = {pk(stream, r): r for r in emu.records(stream)}
    missing = set(expected) - set(last)
    assert not missing, f"{stream}: {len(missing)} records never arrived, e.g. {sorted(missing, key=str)[:3]}"
    stale = [k for k, r in expected.items() if last[k] != r]
    assert not stale, f"{stream}: the last version seen of {len(stale)} records is not the latest, e.g. {stale[:3]}"


def ids(output: EntrypointOutput, streams: Optional[Iterable[str]] = None) -> Dict[str, List[Any]]:
    """The primary keys read, per stream, in the order emitted."""
    wanted = set(streams) if streams is not None else None
    seen: Dict[str, List[Any]] = {}
    for message in output.records:
        stream = message.record.stream
        if wanted is None or stream in wanted:
            seen.setdefault(stream, []).append(pk(stream, message.record.data))
    return seen
