"""A page of records as one RecordBatch: written byte for byte as the CDK writes each record, counted truly.

The tests run the connector through ``BillEntrypoint`` (the root conftest hands it to the CDK's test wrapper);
here the same reads also run through the CDK's own ``AirbyteEntrypoint``, where streams yield one message per
record, and the two outputs must agree message for message.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List

import orjson
import pytest
from airbyte_cdk import entrypoint as cdk_entrypoint
from airbyte_cdk.models import AirbyteMessage, AirbyteRecordMessage, SyncMode
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.test import entrypoint_wrapper
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.mock_http import HttpMocker
from hypothesis import given, settings
from hypothesis import strategies as st

import tests_support
from source_bill import jsonparse
from source_bill.config_messages import BillEntrypoint
from source_bill.messages import RECORD_COUNT_LINE, RecordBatch, TrueRecordCount
from unit_tests.builders import (
    catalog,
    config,
    list_request,
    login_request,
    login_response,
    page_response,
    records,
    source,
)

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    stream=st.text(min_size=1, max_size=20),
    data=st.lists(st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=6), min_size=1, max_size=5),
    emitted_at=st.integers(min_value=0, max_value=2**53),
)
def test_given_any_records_when_written_as_a_batch_then_each_line_is_what_the_cdk_writes(
    stream: str, data: List[Dict[str, Any]], emitted_at: int
) -> None:
    """Breaks if the batch writes a key, a separator or a value differently from the CDK's serializer."""
    batch = RecordBatch.of(stream, data, emitted_at)
    expected = [
        cdk_entrypoint.AirbyteEntrypoint.airbyte_message_to_string(
            AirbyteMessage(
                type=MessageType.RECORD,
                record=AirbyteRecordMessage(stream=stream, data=record, emitted_at=emitted_at),
            )
        )
        for record in data
    ]
    assert batch.lines().decode().split("\n") == expected


def test_given_exact_numbers_when_written_as_a_batch_then_they_stay_exact() -> None:
    page = b'{"results": [{"id": "v1", "big": 123456789012345678901234567890, "money": 12345678901234567.89}]}'
    batch = RecordBatch.of("vendors", jsonparse.loads(page)["results"], 1)
    line = json.loads(batch.lines(), parse_float=Decimal)
    assert line["record"]["data"] == {
        "id": "v1",
        "big": 123456789012345678901234567890,
        "money": Decimal("12345678901234567.89"),
    }


def test_given_a_batch_when_a_consumer_that_does_not_know_batches_counts_it_then_it_fails_loudly() -> None:
    """A batch has no ``record``: the CDK's own counter refuses it instead of writing one record of the page."""
    counts: Dict[Any, float] = defaultdict(float)
    with pytest.raises(ValueError, match="record attribute"):
        cdk_entrypoint.AirbyteEntrypoint.handle_record_counts(RecordBatch.of("vendors", [{"id": 1}], 1), counts)
    BillEntrypoint.handle_record_counts(RecordBatch.of("vendors", [{"id": 1}, {"id": 2}], 1), counts)
    assert list(counts.values()) == [2.0]


# --- the same read through both entrypoints ----------------------------------------------------------------
def _mock_three_pages(http_mocker: HttpMocker) -> None:
    http_mocker.post(login_request(), login_response())
    http_mocker.get(list_request("vendors"), page_response(records(0, 100), "t1"))
    http_mocker.get(list_request("vendors", page="t1"), page_response(records(100, 100), "t2"))
    http_mocker.get(list_request("vendors", page="t2"), page_response(records(200, 37)))


def _through(entrypoint: type, mode: SyncMode) -> EntrypointOutput:
    """A read through ``entrypoint``; for BillEntrypoint, the root conftest's line splitter around it."""
    saved = entrypoint_wrapper.AirbyteEntrypoint
    if not issubclass(saved, entrypoint):
        entrypoint_wrapper.AirbyteEntrypoint = entrypoint  # type: ignore[misc]
    try:
        return read(source(), config(), catalog("vendors", mode=mode))
    finally:
        entrypoint_wrapper.AirbyteEntrypoint = saved  # type: ignore[misc]


def _comparable(output: EntrypointOutput) -> List[Dict[str, Any]]:
    """Every RECORD, STATE and TRACE message, and the record-count log lines, as dicts; times left out."""
    out: List[Dict[str, Any]] = []
    for message in output._messages:
        doc = json.loads(cdk_entrypoint.AirbyteEntrypoint.airbyte_message_to_string(message))
        if doc["type"] == "RECORD":
            doc["record"].pop("emitted_at")
        elif doc["type"] == "TRACE":
            doc["trace"].pop("emitted_at")
        elif doc["type"] == "LOG":
            if not doc["log"]["message"].startswith("Read "):
                continue
        elif doc["type"] == "STATE":
            doc["state"]["stream"]["stream_state"].get("pass", {}).pop("started", None)  # this machine's clock
        else:
            continue
        out.append(doc)
    return out


@pytest.mark.parametrize("mode", [SyncMode.full_refresh, SyncMode.incremental])
def test_given_pages_when_read_through_the_cdk_entrypoint_and_through_bills_then_the_outputs_agree(
    mode: SyncMode,
) -> None:
    """Breaks if a batch is counted as one record in the states' recordCount, if the CDK's "Read N records" line
    counts pages, or if any record or state differs between the two ways of writing."""
    outputs = []
    for entrypoint in (cdk_entrypoint.AirbyteEntrypoint, BillEntrypoint):
        with HttpMocker() as http_mocker:
            _mock_three_pages(http_mocker)
            outputs.append(_through(entrypoint, mode))
    per_record, batched = (_comparable(output) for output in outputs)
    assert batched == per_record
    assert sum(1 for doc in batched if doc["type"] == "RECORD") == 237
    counts = [doc["state"]["sourceStats"]["recordCount"] for doc in batched if doc["type"] == "STATE"]
    assert sum(counts) == 237.0
    if mode == SyncMode.incremental:
        assert counts == [100.0, 100.0, 37.0, 0.0]  # a state per page, and the final one
    logs = [doc["log"]["message"] for doc in batched if doc["type"] == "LOG"]
    assert logs == [RECORD_COUNT_LINE.format(count=237, stream="vendors")]


def test_given_the_record_count_filter_then_it_drops_only_the_cdks_count_line() -> None:
    kept = TrueRecordCount()

    def record(message: str, **extra: Any) -> logging.LogRecord:
        rec = logging.LogRecord("airbyte", logging.INFO, __file__, 1, message, None, None)
        rec.__dict__.update(extra)
        return rec

    assert not kept.filter(record("Read 5 records from vendors stream"))
    assert kept.filter(record("Read 500 records from vendors stream", bill_record_count=True))
    assert kept.filter(record("Read the docs"))
    assert kept.filter(record("Syncing stream: vendors "))


def test_given_bill_entrypoint_when_reading_then_a_page_is_one_string_of_lines() -> None:
    """The CLI writes what run() yields, a newline after each: a page of 100 records is one string of 100 lines."""
    with HttpMocker() as http_mocker:
        _mock_three_pages(http_mocker)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = tests_support.write_json(Path(tmp) / "config.json", config())
            cat = tests_support.write_json(
                Path(tmp) / "catalog.json", tests_support.configured_catalog_json(["vendors"])
            )
            entrypoint = BillEntrypoint(source())
            texts = list(entrypoint.run(entrypoint.parse_args(["read", "--config", str(cfg), "--catalog", str(cat)])))
    record_texts = [t for t in texts if t.startswith('{"type":"RECORD"')]
    assert [t.count("\n") + 1 for t in record_texts] == [100, 100, 37]
    ids = [orjson.loads(line)["record"]["data"]["id"] for t in record_texts for line in t.split("\n")]
    assert ids == [r["id"] for r in records(0, 237)]


# --- pages written as bytes pass the same secret filter --------------------------------------------------------
SECRET_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=3, max_size=12)


@settings(max_examples=200, deadline=None)
@given(secrets_=st.lists(SECRET_TEXT, min_size=1, max_size=3), pieces=st.lists(st.text(max_size=20), max_size=6))
def test_given_any_secrets_when_a_page_is_masked_as_bytes_then_it_equals_masking_the_text(
    secrets_: List[str], pieces: List[str]
) -> None:
    """Breaks if mask_bytes misses a registered form (JSON-escaped, URL-encoded) or a non-ASCII secret."""
    from airbyte_cdk.utils import airbyte_secrets_utils

    from source_bill.secrets import forms, mask, mask_bytes, register

    saved = list(getattr(airbyte_secrets_utils, "__SECRETS_FROM_CONFIG"))
    try:
        airbyte_secrets_utils.update_secrets([])
        for secret in secrets_:
            register(secret)
        text = ""
        for i, piece in enumerate(pieces):
            every_form = sorted(forms(secrets_[i % len(secrets_)]))
            text += piece + every_form[i % len(every_form)]
        assert mask_bytes(text.encode("utf-8")) == mask(text).encode("utf-8")
    finally:
        airbyte_secrets_utils.update_secrets(saved)


def test_given_a_page_with_a_secret_when_the_cli_writes_it_as_bytes_then_the_secret_is_masked() -> None:
    from source_bill.output import LineOutput
    from source_bill.secrets import register

    register("placeholder-session-secret-789")
    read_end, write_end = os.pipe()
    out = LineOutput(write_end, flush_interval=0)
    batch = RecordBatch.of("vendors", [{"id": "a", "note": "placeholder-session-secret-789"}, {"id": "b"}], 5)
    out.write_bytes(batch.lines() + b"\n")
    out.write('{"type":"LOG","log":{"level":"INFO","message":"placeholder-session-secret-789"}}\n')
    out.close()
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        written = pipe.read().decode()
    assert "placeholder-session-secret-789" not in written
    assert written.count("****") == 2
    assert [json.loads(line)["type"] for line in written.splitlines()] == ["RECORD", "RECORD", "LOG"]
