"""Airbyte file transfer of BILL documents and attachments: each file's bytes under the staging directory.

A document row carries BILL's ``downloadLink``; the file is a GET of that link with the session headers,
through the client's one path (limiter, retries, re-login), streamed to disk in chunks. A link that no
longer works (403) is refreshed once by reading the row again. A file BILL flags as INFECTED or
REJECTED is not downloaded: a warning, and the record goes out without a file. A body whose size differs
from the ``Content-Length`` BILL sent is read again, then fails the sync naming the file (never a silent
truncation).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import requests
from airbyte_cdk.models import AirbyteRecordMessageFileReference
from airbyte_cdk.sources.utils.files_directory import get_files_directory

from . import errors
from .client import BillClient, ForeignLink
from .config import BillConfig
from .errors import Action, Rule

REFUSED_SCANS = ("INFECTED", "REJECTED")
SIZE_ATTEMPTS = 3  # reads of a file whose size does not match before the sync fails
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FileStager:
    """Downloads the files of one stream's rows under ``<staging>/<organization>/<stream>/<parent>/<id>/``."""

    def __init__(self, client: BillClient, config: BillConfig, stream: str, logger: logging.Logger) -> None:
        self._client = client
        self._config = config
        self._stream = stream
        self._logger = logger
        self._root = Path(get_files_directory())

    def relative_path(self, row: Mapping[str, Any], parent_id: str) -> str:
        name = _safe(str(row.get("name") or "file"))
        parts = (self._config.organization_id, self._stream, parent_id, str(row["id"]), name)
        return "/".join(_safe(p) for p in parts)

    def stage(
        self, row: Mapping[str, Any], parent_id: str, reread: Callable[[str], Optional[Mapping[str, Any]]]
    ) -> Optional[AirbyteRecordMessageFileReference]:
        """Download the row's file; its file reference, or None when there is no file to copy."""
        what = f"{self._stream} {row['id']}"
        scan = row.get("scanStatus")
        if scan in REFUSED_SCANS:
            self._logger.warning(f"{what}: BILL flags the file as {scan}; it is not downloaded (the record is kept).")
            return None
        link = row.get("downloadLink")
        if not isinstance(link, str) or not link:
            self._logger.warning(f"{what}: BILL gave no downloadLink; no file is copied (the record is kept).")
            return None
        relative = self.relative_path(row, parent_id)
        target = self._root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        refreshed = False
        attempts = 0
        while True:
            attempts += 1
            try:
                size = self._download(link, target, what)
                break
            except ForeignLink as foreign:
                self._logger.warning(f"{what}: {foreign}; no file is copied (the record is kept).")
                return None
            except _LinkGone as gone:
                if refreshed:
                    raise errors.traced(
                        Rule(
                            Action.FAIL,
                            f"BILL refused the download of {what} even with a fresh link.",
                            errors._TRANSIENT,
                        ),
                        str(gone),
                    ) from None
                refreshed = True
                fresh = reread(str(row["id"]))
                if fresh is None:
                    self._logger.warning(f"{what}: the row is gone from BILL; no file is copied (the record is kept).")
                    return None
                if fresh.get("scanStatus") in REFUSED_SCANS:
                    self._logger.warning(
                        f"{what}: BILL now flags the file as {fresh.get('scanStatus')}; not downloaded."
                    )
                    return None
                link = str(fresh.get("downloadLink") or "")
                self._logger.info(
                    f"{what}: the download link no longer works ({gone}); read the row again for a new one."
                )
            except _SizeMismatch as mismatch:
                if attempts >= SIZE_ATTEMPTS:
                    raise errors.traced(
                        Rule(Action.FAIL, f"The file of {what} did not arrive whole.", errors._TRANSIENT),
                        f"{mismatch} after {attempts} attempts. Nothing was skipped; the sync stops here.",
                    ) from None
                self._logger.info(f"{what}: {mismatch}; reading it again.")
        return AirbyteRecordMessageFileReference(
            staging_file_url=str(target), source_file_relative_path=relative, file_size_bytes=size
        )

    def _download(self, link: str, target: Path, what: str) -> int:
        """The file at ``link`` into ``target`` (written as ``<target>.part`` first: a file that did not arrive
        whole never stands under its final name, and no partial file is left behind)."""
        partial = target.with_name(target.name + ".part")
        try:
            try:
                with open(partial, "wb") as sink:
                    written, declared = self._client.download(link, sink, context=f"download of {what}")
            except errors.StreamUnavailable as exc:  # 403: for a link, most likely expired
                raise _LinkGone(str(exc)) from None
            except requests.RequestException as exc:  # the body broke off (urllib3 checks Content-Length too)
                raise _SizeMismatch(f"the download broke off ({type(exc).__name__})") from None
            if declared is not None and written != declared:
                raise _SizeMismatch(f"BILL announced {declared} bytes and sent {written}")
            os.replace(partial, target)
            return written
        finally:
            partial.unlink(missing_ok=True)


class _LinkGone(Exception):
    pass


class _SizeMismatch(Exception):
    pass


def _safe(part: str) -> str:
    cleaned = _UNSAFE.sub("_", part).strip("._") or "file"
    return cleaned[:120]
