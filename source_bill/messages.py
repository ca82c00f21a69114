"""The records of one page as one message, written as many RECORD lines at once.

The CDK turns every record into two dataclasses, counts it, serializes it through its message serializer and
hands it to the output one by one: several times the CPU of parsing and writing the record itself. A stream
whose reader knows batches (``BillEntrypoint``, which the CLI, the Docker image and PyAirbyte run) yields one
:class:`RecordBatch` per page instead. The CDK's read loop passes it on like any message of type RECORD (it
looks at nothing else), ``BillEntrypoint`` counts its records for the state messages' ``recordCount`` and writes
it as one RECORD line per record, byte for byte what the CDK would have written for each.

Under any other entrypoint (the CDK's own, as some test harnesses use), streams yield one message per record as
usual: ``batch_records`` is off unless ``BillEntrypoint`` turns it on.

The CDK's read loop also logs "Read N records from S stream", counting messages; with batches that would be the
number of pages, so :class:`TrueRecordCount` drops that line and the stream logs its own, with the records.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional, Sequence

import orjson
from airbyte_cdk.models import AirbyteMessage, AirbyteRecordMessage, AirbyteRecordMessageFileReference
from airbyte_cdk.models import Type as MessageType


@dataclass
class RecordBatch(AirbyteMessage):
    """RECORD messages of one stream sharing one ``emitted_at``. Its ``record`` stays None, so a consumer that
    does not know batches fails loudly (the CDK's record counter refuses it) instead of writing one record."""

    stream: str = ""
    records: Sequence[Mapping[str, Any]] = field(default_factory=list)
    emitted_at: int = 0

    @classmethod
    def of(cls, stream: str, records: Sequence[Mapping[str, Any]], emitted_at: int) -> RecordBatch:
        return cls(type=MessageType.RECORD, stream=stream, records=records, emitted_at=emitted_at)

    def lines(self) -> bytes:
        """The RECORD lines in UTF-8, joined by newlines (no newline after the last): the CDK's serialization of
        each, top-level null fields left out as it does."""
        head = b'{"type":"RECORD","record":{"stream":' + orjson.dumps(self.stream) + b',"data":'
        tail = b',"emitted_at":' + str(self.emitted_at).encode() + b"}}"
        dumps = orjson.dumps
        return b"\n".join([head + dumps(_without_nulls(record)) + tail for record in self.records])

    def messages(self) -> Iterator[AirbyteMessage]:
        """One ordinary RECORD message per record."""
        for record in self.records:
            yield AirbyteMessage(
                type=MessageType.RECORD,
                record=AirbyteRecordMessage(stream=self.stream, data=record, emitted_at=self.emitted_at),  # type: ignore[arg-type]
            )


def _without_nulls(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The CDK's serializer leaves out a record's top-level fields that are null (nested nulls stay)."""
    if None in record.values():
        return {key: value for key, value in record.items() if value is not None}
    return record


RECORD_COUNT_LINE = "Read {count} records from {stream} stream"
RECORD_COUNT_MARK = {"bill_record_count": True}  # marks the stream's own line, which the filter keeps
_CDK_COUNT = re.compile(r"Read \d+ records from .+ stream")


class TrueRecordCount(logging.Filter):
    """Drops the CDK's per-stream record count, which counts a batch as one record (see above)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "bill_record_count", False):
            return True
        return not (isinstance(record.msg, str) and _CDK_COUNT.fullmatch(record.msg))


def count_records_truly(logger: logging.Logger) -> None:
    if not any(isinstance(f, TrueRecordCount) for f in logger.filters):
        logger.addFilter(TrueRecordCount())


class RecordWriter:
    """What every stream's ``read`` does with its pages: RECORD messages (one RecordBatch a page when the entrypoint
    writes batches), STATE messages through the state manager's public methods, and the true record count."""

    def __init__(self, stream: str, namespace: Optional[str], batch: bool, state_manager: Any) -> None:
        self.stream = stream
        self.namespace = namespace
        self.batch = batch
        self.state_manager = state_manager
        self.count = 0

    def records(
        self,
        records: Sequence[Mapping[str, Any]],
        files: Optional[Sequence[Optional[AirbyteRecordMessageFileReference]]] = None,
    ) -> Iterator[AirbyteMessage]:
        """One page's records; a record with a staged file goes as its own message, with its file reference."""
        if not records:
            return
        self.count += len(records)
        batch = RecordBatch.of(self.stream, records, time.time_ns() // 1_000_000)
        if files and any(files):
            for message, file in zip(batch.messages(), files, strict=True):
                if file is not None:
                    assert message.record is not None
                    message.record.file_reference = file
                yield message
        elif self.batch:
            yield batch
        else:
            yield from batch.messages()

    def state(self, state: Mapping[str, Any]) -> Iterator[AirbyteMessage]:
        """The STATE message for ``state`` (none when the CDK reads without a state manager)."""
        if self.state_manager is not None:
            self.state_manager.update_state_for_stream(self.stream, self.namespace, state)
            yield self.state_manager.create_state_message(self.stream, self.namespace)

    def log_count(self, logger: logging.Logger) -> None:
        """Says how many records the stream read (with batches, in place of the CDK's line, which counts pages)."""
        if self.batch:
            logger.info(RECORD_COUNT_LINE.format(count=self.count, stream=self.stream), extra=RECORD_COUNT_MARK)
