"""source-bill: spec, check, and the list of streams."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Iterator, List, Mapping, MutableMapping, Optional, Tuple

from airbyte_cdk.config_observation import emit_configuration_as_airbyte_control_message
from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    AirbyteStateMessageSerializer,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
    ConfiguredAirbyteStream,
    FailureType,
    Status,
)
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from . import errors, fanin, secrets, spend
from .children import CHILD_STREAM_CLASSES, share_parent_reads
from .client import CHECK_DEADLINE_S, Backoff, BillClient
from .config import BillConfig, config_error, upgrade
from .config_messages import explain
from .messages import RecordBatch, count_records_truly
from .more_streams import MORE_STREAM_CLASSES
from .sharing import ParentFeed
from .streams import PAGE_SIZE, STREAM_CLASSES, BillStream

BATCH = 200  # records (in messages) handed from a stream's worker to the output at a time


class SourceBill(AbstractSource):
    def __init__(self, **client_options: Any) -> None:
        """``client_options`` (clock, sleep, wall_clock, backoff) exist for tests; the CLI passes none."""
        super().__init__()
        self._client_options = client_options
        self.client: Optional[BillClient] = None
        self._prebuilt: Optional[List[Stream]] = None  # the streams of the read under way (one client)
        self.batch_records = False  # set by BillEntrypoint, which writes a RecordBatch as many RECORD lines

    # --- check ----------------------------------------------------------------------------------------
    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        ok, message = self.check_connection(logger, config)
        if ok:
            return AirbyteConnectionStatus(status=Status.SUCCEEDED)
        return AirbyteConnectionStatus(status=Status.FAILED, message=secrets.mask(str(message)))

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> Tuple[bool, Optional[Any]]:
        """Log in, then read one record of the first stream this user may read."""
        try:
            streams = self._build_streams(config)
            client = self.client
            assert client is not None
            client.deadline_s = CHECK_DEADLINE_S  # a person is waiting: no long retries or waits
            client.auth.sign_in()
            refused = []
            lists = [stream for stream in streams if isinstance(stream, BillStream)][: len(STREAM_CLASSES)]
            for stream in lists:  # the 22 lists: one page of max=1 each
                try:
                    client.get(stream.path(), {"max": 1}, context=f"check: {stream.name}")
                    return spend.check(client, streams)
                except errors.StreamUnavailable as exc:
                    refused.append(stream.name)
                    logger.warning(f"check: cannot read {stream.name}: {exc}")
            return False, (
                f"Signed in to BILL, but this user may read none of the {len(refused)} objects. "
                "Give the user a role that can read them (e.g. Administrator or Accountant)."
            )
        except AirbyteTracedException as exc:
            return False, exc.message
        except Exception as exc:  # anything else still becomes a readable FAILED status
            logger.exception("check failed")
            return False, f"Could not reach BILL at {config.get('base_url') or 'the gateway'}: {type(exc).__name__}"

    # --- streams --------------------------------------------------------------------------------------
    def streams(self, config: Mapping[str, Any]) -> List[Stream]:
        return list(self._prebuilt or self._build_streams(config))

    def _build_streams(self, config: Mapping[str, Any]) -> List[Stream]:
        bill_config = BillConfig.from_mapping(config)
        secrets.register(bill_config.spend_api_token)  # the sign-in secrets are registered by the authenticator
        options = dict(self._client_options)
        backoff = options.pop("backoff", None) or Backoff()
        self.client = BillClient(bill_config, logging.getLogger("airbyte"), backoff=backoff, **options)
        bill_streams: List[Stream] = [
            cls(self.client, bill_config) for cls in (*STREAM_CLASSES, *MORE_STREAM_CLASSES, *CHILD_STREAM_CLASSES)
        ]
        streams = bill_streams + spend.spend_streams(self.client, bill_config, options.get("wall_clock"))
        for stream in streams:
            if isinstance(stream, (BillStream, spend.SpendStream)):
                stream.batch_records = self.batch_records
        return streams

    @property
    def raise_exception_on_missing_stream(self) -> bool:
        return True  # a catalog naming a stream we do not have is a config error, not a silent skip

    # --- inputs, with errors a person can act on ------------------------------------------------------
    @staticmethod
    def read_config(config_path: str) -> MutableMapping[str, Any]:
        """The config, in its current form: an older flat config is rewritten into ``credentials``, written back
        to its file, and announced with a CONTROL message (connector config) so the platform stores it."""
        config = _read_json(config_path, "config")
        if not isinstance(config, MutableMapping):
            raise config_error(f"The config file {config_path} must hold a JSON object, not {type(config).__name__}.")
        if "credentials" in config:
            return config  # current form (a config with both forms fails in BillConfig, naming the conflict)
        upgraded, migrated = upgrade(config)
        if migrated and explain(upgraded, _spec_schema()) is None:  # an invalid config is reported, not stored
            logger = logging.getLogger("airbyte")
            try:
                SourceBill.write_config(upgraded, config_path)
            except OSError as exc:
                logger.warning(f"Could not write the migrated config back to {config_path}: {exc.strerror}.")
            emit_configuration_as_airbyte_control_message(upgraded)
            logger.info("Moved the config's sign-in keys into credentials (auth_type user_login).")
        return upgraded

    @classmethod
    def read_state(cls, state_path: str) -> List[AirbyteStateMessage]:
        if not state_path:
            return []
        raw = _read_json(state_path, "state")
        if raw in (None, [], {}):
            return []
        if isinstance(raw, dict) and "type" not in raw:  # legacy form {"stream": {...}}
            raw = [
                {"type": "STREAM", "stream": {"stream_descriptor": {"name": k}, "stream_state": v}}
                for k, v in raw.items()
            ]
        if not isinstance(raw, list):
            raw = [raw]
        messages = []
        for item in raw:
            kind = item.get("type") if isinstance(item, Mapping) else None
            if kind is not None and kind not in ("STREAM", "LEGACY"):
                raise config_error(
                    f"The state file {state_path} holds a {kind} state message; this connector keeps one state per "
                    "stream (type STREAM). Pass the STATE messages this connector emitted, or no state to start over."
                )
            try:
                message = AirbyteStateMessageSerializer.load(item)
            except Exception as exc:
                raise config_error(
                    f"The state file {state_path} is not a list of Airbyte per-stream state messages ({exc}). "
                    "Pass the STATE messages this connector emitted, or no state to start over."
                ) from None
            messages.append(message)
        return messages

    @classmethod
    def read_catalog(cls, catalog_path: str) -> ConfiguredAirbyteCatalog:
        raw = _read_json(catalog_path, "catalog")
        try:
            return ConfiguredAirbyteCatalogSerializer.load(raw)
        except Exception as exc:
            raise config_error(f"The catalog file {catalog_path} is not a configured catalog: {exc}") from None

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: Optional[List[AirbyteStateMessage]] = None,
    ) -> Iterator[AirbyteMessage]:
        """Streams run side by side, up to ``max_concurrent_requests`` at once, over one shared client.

        Each stream is read by the CDK's own per-stream loop (statuses, state, errors) in a worker thread;
        its messages keep their order. With one worker, or one stream, it is the plain sequential read.
        """
        self._prebuilt = self._build_streams(config)
        try:
            assert self.client is not None  # built with the streams
            # a child stream synced with its parent stream takes the parents from that stream's read
            catalog, feeds = share_parent_reads({s.name: s for s in self._prebuilt}, catalog, state)
            workers = min(self.client.config.max_concurrent_requests, len(catalog.streams))
            catalog = spend.arrange(self._prebuilt, catalog, state, parallel=workers > 1)
            known = {stream.name for stream in self._prebuilt}
            if catalog.streams and all(c.stream.name in known for c in catalog.streams):
                self.client.auth.sign_in()  # a refused or failing sign-in fails the sync once, before any stream
            logger.info(f"Reading {len(catalog.streams)} BILL streams, {PAGE_SIZE} records a page, {workers} at once.")
            if self.batch_records:
                count_records_truly(logger)
            if workers <= 1:
                yield from super().read(logger, config, catalog, state)
            else:
                yield from self._read_parallel(logger, config, catalog, state, workers, feeds)
        finally:
            self._prebuilt = None

    def _read_parallel(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: Optional[List[AirbyteStateMessage]],
        workers: int,
        feeds: Mapping[str, ParentFeed],
    ) -> Iterator[AirbyteMessage]:
        client = self.client
        assert client is not None
        failures: List[str] = []
        stream_logger = _once_per_sync(logger, self.name)
        if self.batch_records:
            count_records_truly(stream_logger)
        logger.info(f"Starting syncing {self.name}")
        # streams read side by side each hold a request slot: a stream slices itself only into the slots left free
        active = [0]
        active_lock = threading.Lock()
        for stream in self._prebuilt or []:
            if isinstance(stream, BillStream):
                stream.others = lambda: max(0, active[0] - 1)

        def batches(configured: ConfiguredAirbyteStream) -> Iterator[List[AirbyteMessage]]:
            """The CDK's read of one stream, in batches of messages (a failure noted, its details already emitted)."""
            batch: List[AirbyteMessage] = []
            records = 0
            feed = feeds.get(configured.stream.name)  # a child stream waits for this stream's pages
            if feed is not None:
                feed.started()
            with active_lock:
                active[0] += 1
            try:
                if client.auth.failed is not None:  # the sign-in failed for good: start no more streams
                    return
                for message in AbstractSource.read(
                    self, stream_logger, config, ConfiguredAirbyteCatalog(streams=[configured]), state
                ):
                    batch.append(message)
                    records += len(message.records) if isinstance(message, RecordBatch) else 1
                    if records >= BATCH or message.type != MessageType.RECORD:
                        yield batch
                        batch, records = [], 0
            except AirbyteTracedException as exc:  # the CDK's "stream failed" summary; the details were emitted
                failures.append(exc.message or configured.stream.name)
            except Exception as exc:
                failures.append(f"{configured.stream.name}: {exc!r}")
            finally:
                with active_lock:
                    active[0] -= 1
                if feed is not None:
                    feed.close()
            if batch:
                yield batch

        for feed in feeds.values():
            feed.expect()  # each parent's reader starts before its child's (the catalog has the parent first)

        readers = [spend.watched(self._prebuilt or [], c.stream.name, batches(c)) for c in catalog.streams]
        # batches of messages, at most 64 waiting: memory stays flat
        for _, batch in fanin.side_by_side(readers, limit=workers, buffer=64, name="bill-stream"):
            if batch is not None:
                yield from batch
        if client.auth.failed is not None:
            raise client.auth.failed  # one failure, said once, whatever the streams it stopped
        if failures:
            raise AirbyteTracedException(
                message="Some BILL streams failed; see the errors above. " + " | ".join(failures),
                failure_type=FailureType.config_error,
            )
        logger.info(f"Finished syncing {self.name}")


class _SyncStartAndEnd(logging.Filter):
    """Drops the CDK's "Starting/Finished syncing <source>" lines, which it logs once per call of its read."""

    def __init__(self, source_name: str) -> None:
        super().__init__()
        self.lines = {f"Starting syncing {source_name}", f"Finished syncing {source_name}"}

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.lines


def _once_per_sync(logger: logging.Logger, source_name: str) -> logging.Logger:
    """The logger for the per-stream reads of a parallel read: each is one call of the CDK's read, but the
    sync starts and finishes once, and says so once (``_read_parallel``)."""
    child = logger.getChild("streams")  # its records go to the parent's handlers, at the parent's level
    if not any(isinstance(f, _SyncStartAndEnd) for f in child.filters):
        child.addFilter(_SyncStartAndEnd(source_name))
    return child


def _spec_schema() -> Mapping[str, Any]:
    schema: Mapping[str, Any] = json.loads((Path(__file__).parent / "spec.json").read_text())["connectionSpecification"]
    return schema


def _read_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise config_error(f"The {what} file {path} does not exist.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise config_error(f"The {what} file {path} is not valid JSON: {exc}.") from None
