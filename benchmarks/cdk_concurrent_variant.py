"""source-bill built the airbyte-cdk concurrent way, for benchmarks/bench.py --cdk-concurrent.

    python benchmarks/cdk_concurrent_variant.py spec
    python benchmarks/cdk_concurrent_variant.py check --config CONFIG.json
    python benchmarks/cdk_concurrent_variant.py discover --config CONFIG.json
    python benchmarks/cdk_concurrent_variant.py read --config CONFIG.json --catalog CATALOG.json [--state STATE.json]

Not the shipped connector (that is source_bill.source.SourceBill, which reads streams side by side in its own
threads and slices a large stream itself). This is the same connector as the CDK's concurrent framework wants it,
so the benchmark can measure the framework on the same data:

* ``SourceBillConcurrent`` subclasses ``ConcurrentSourceAdapter``; its ``ConcurrentSource.create(num_workers,
  1, ...)`` pool has ``max_concurrent_requests + 1`` workers: one partition generator (generating a partition
  makes no request) and ``max_concurrent_requests`` partition readers.
* Every stream is wrapped as a ``StreamFacade`` (a ``DefaultStream`` over the legacy stream's
  ``stream_slices``/``read_records``).
  * Full refresh: ``FinalStateCursor``, one partition per stream.
  * Incremental, for streams with ``updatedTime``: ``ConcurrentCursor`` on ``updatedTime`` with
    ``IsoMillisConcurrentStreamStateConverter``, ``start = start_date``, ``slice_range =
    slice_range_days`` and ``cursor_granularity = 1 ms``. The cursor cuts ``[start, now]`` into windows
    ``[lower, upper]`` that touch but do not overlap (upper is the next lower minus 1 ms), and each
    window is one partition. So a large stream is read as several partitions in flight.
* What is reused from source_bill: ``BillConfig`` (config checks), ``BillClient`` (the one HTTP path: login,
  retries, and the shared limiter that keeps at most ``max_concurrent_requests`` requests in flight, whatever
  the number of workers), and the stream classes (path, extra parameters, ``nextPage`` and ``results``
  validation). Each partition is one query: ``max=100``, and for a window also
  ``filters=updatedTime:gte:"lower",updatedTime:lte:"upper"`` with ``sort=updatedTime:asc``. It follows
  ``nextPage`` and yields the records of ``results`` as plain dicts. Everything per record after that is the
  framework's.

Config keys only this variant reads (both optional):

* ``slice_range_days`` (number): the ``slice_range`` of ``ConcurrentCursor``. It slices only when
  ``start_date`` is set as well. Without a start the cursor would start at year 1, so without both keys
  an incremental stream is one partition.
* ``num_workers`` (integer): the size of the framework's pool. Default ``max_concurrent_requests + 1``.

What this variant does NOT do that source_bill does: no catch-up pass for rows shifted by edits under offset
paging, no STATE per page (the framework emits state when a partition closes), and no resuming inside a
slice (a partition that fails is read again from its lower bound).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, MutableMapping, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout: import source_bill from it
    sys.path.insert(0, str(ROOT))

from airbyte_cdk.entrypoint import AirbyteEntrypoint, launch  # noqa: E402
from airbyte_cdk.models import (  # noqa: E402
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
    ConnectorSpecification,
    ConnectorSpecificationSerializer,
    SyncMode,
)
from airbyte_cdk.sources.concurrent_source.concurrent_source import ConcurrentSource  # noqa: E402
from airbyte_cdk.sources.concurrent_source.concurrent_source_adapter import ConcurrentSourceAdapter  # noqa: E402
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager  # noqa: E402
from airbyte_cdk.sources.message import InMemoryMessageRepository  # noqa: E402
from airbyte_cdk.sources.streams import Stream  # noqa: E402
from airbyte_cdk.sources.streams.concurrent.cursor import ConcurrentCursor, CursorField  # noqa: E402
from airbyte_cdk.sources.streams.concurrent.state_converters.datetime_stream_state_converter import (  # noqa: E402
    IsoMillisConcurrentStreamStateConverter,
)
from airbyte_cdk.sources.utils.schema_helpers import ResourceSchemaLoader  # noqa: E402

from source_bill import errors  # noqa: E402
from source_bill.client import BillClient  # noqa: E402
from source_bill.config import BillConfig  # noqa: E402
from source_bill.source import SourceBill  # noqa: E402
from source_bill.streams import CURSOR, STREAM_CLASSES, BillStream  # noqa: E402

START, END = "start", "end"  # the slice keys ConcurrentCursor writes (and its state keeps)
GRANULARITY = timedelta(milliseconds=1)  # BILL's updatedTime has millisecond resolution
LOGGER = logging.getLogger("airbyte")


class PartitionedBillStream(BillStream):
    """A source_bill stream that reads one partition per call: the whole list, or one updatedTime window."""

    def __init__(self, client: BillClient, config: BillConfig) -> None:
        super().__init__(client, config)
        self._schema: Optional[Mapping[str, Any]] = None

    def get_json_schema(self) -> Mapping[str, Any]:
        # The schemas live in source_bill (this class is defined in a script); StreamPartition asks for the schema
        # once per record, so it is loaded once.
        if self._schema is None:
            self._schema = ResourceSchemaLoader("source_bill").get_schema(self.name)
        return self._schema

    def stream_slices(
        self,
        *,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Optional[Mapping[str, Any]]]:
        if isinstance(self.cursor, ConcurrentCursor):  # set by convert_to_concurrent_stream for incremental
            yield from self.cursor.stream_slices()
        else:
            yield {}

    def read_records(  # type: ignore[override]
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        params: Dict[str, Any] = {}
        if stream_slice and START in stream_slice:
            params["sort"] = f"{CURSOR}:asc"
            params["filters"] = f'{CURSOR}:gte:"{stream_slice[START]}",{CURSOR}:lte:"{stream_slice[END]}"'
        started = False
        try:
            for records in self.walk(params):  # the connector's paging (max, nextPage, checks), no tracking
                started = True
                yield from records
        except errors.StreamUnavailable as exc:
            if started:
                raise
            LOGGER.warning(f"Skipping {self.name} partition {stream_slice or ''}: {exc}")


def _stream_classes() -> List[type[PartitionedBillStream]]:
    return [type(cls.__name__, (PartitionedBillStream, cls), {}) for cls in STREAM_CLASSES]


def _number(config: Mapping[str, Any], key: str) -> Optional[float]:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"'{key}' must be a positive number, got {value!r}")
    return float(value)


class SourceBillConcurrent(ConcurrentSourceAdapter):
    message_repository = InMemoryMessageRepository()

    def __init__(
        self,
        config: Optional[Mapping[str, Any]],
        catalog: Optional[ConfiguredAirbyteCatalog],
        state: Optional[List[AirbyteStateMessage]],
    ) -> None:
        config = config or {}
        slots = int(config.get("max_concurrent_requests") or 3)
        workers = int(_number(config, "num_workers") or slots + 1)
        concurrent_source = ConcurrentSource.create(workers, 1, LOGGER, self._slice_logger, self.message_repository)
        super().__init__(concurrent_source)
        self.num_workers = workers
        self._catalog = catalog
        self._state = state
        self._streams: Optional[List[Stream]] = None

    # --- spec and check: the connector's, plus this variant's two keys ------------------------------------
    def spec(self, logger: logging.Logger) -> ConnectorSpecification:
        spec = json.loads(resources.files("source_bill").joinpath("spec.json").read_text(encoding="utf-8"))
        spec["connectionSpecification"]["properties"].update(
            {
                "slice_range_days": {
                    "type": "number",
                    "title": "Slice range (days), CDK-concurrent variant only",
                    "description": "ConcurrentCursor slice_range; slices only together with start_date.",
                },
                "num_workers": {
                    "type": "integer",
                    "title": "Workers, CDK-concurrent variant only",
                    "description": "ConcurrentSource pool size; default max_concurrent_requests + 1.",
                },
            }
        )
        return ConnectorSpecificationSerializer.load(spec)

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> Tuple[bool, Optional[Any]]:
        return SourceBill().check_connection(logger, config)

    # --- streams, wrapped for the framework ---------------------------------------------------------------
    def streams(self, config: Mapping[str, Any]) -> List[Stream]:
        if self._streams is None:
            self._streams = self._build(config)
        return self._streams

    def _build(self, config: Mapping[str, Any]) -> List[Stream]:
        bill_config = BillConfig.from_mapping(config)
        client = BillClient(bill_config, LOGGER)
        days = _number(config, "slice_range_days")
        slice_range = timedelta(days=days) if days and bill_config.start_date is not None else None
        incremental = {
            configured.stream.name
            for configured in (self._catalog.streams if self._catalog else [])
            if configured.sync_mode == SyncMode.incremental
        }
        state_manager = ConnectorStateManager(state=self._state)
        wrapped: List[Stream] = []
        for cls in _stream_classes():
            stream = cls(client, bill_config)
            cursor = None
            if stream.name in incremental and stream.cursor_field:
                converter = IsoMillisConcurrentStreamStateConverter()
                cursor = ConcurrentCursor(
                    stream_name=stream.name,
                    stream_namespace=stream.namespace,
                    stream_state=state_manager.get_stream_state(stream.name, stream.namespace),
                    message_repository=self.message_repository,
                    connector_state_manager=state_manager,
                    connector_state_converter=converter,
                    cursor_field=CursorField(CURSOR),
                    slice_boundary_fields=(START, END),
                    start=bill_config.start_date,
                    end_provider=converter.get_end_provider(),
                    lookback_window=timedelta(0),
                    slice_range=slice_range,
                    cursor_granularity=GRANULARITY,
                )
            wrapped.append(self.convert_to_concurrent_stream(LOGGER, stream, state_manager, cursor))
        return wrapped


def main(argv: Optional[List[str]] = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    config_path = AirbyteEntrypoint.extract_config(args)
    catalog_path = AirbyteEntrypoint.extract_catalog(args)
    state_path = AirbyteEntrypoint.extract_state(args)
    config: MutableMapping[str, Any] = SourceBill.read_config(config_path) if config_path else {}
    catalog = SourceBill.read_catalog(catalog_path) if catalog_path else None
    state = SourceBill.read_state(state_path) if state_path else []
    launch(SourceBillConcurrent(config, catalog, state), args)


if __name__ == "__main__":
    main()
