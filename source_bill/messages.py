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
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import orjson
from airbyte_cdk.models import AirbyteMessage, AirbyteRecordMessage
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
