"""Everything the connector writes to stdout: whole lines, through the secret filter, and a clean stop on SIGTERM.

The CDK's print buffer writes whatever it holds and dies wherever SIGTERM finds it, so the last line can be a
cut-off RECORD. ``LineOutput`` takes its place (for ``print``, ``sys.stderr`` and the CDK's log handler): it
masks every registered secret in every message, whatever its type (RECORD, LOG, TRACE, STATE, CONNECTION_STATUS,
SPEC, CONTROL), writes only complete lines, and on SIGTERM finishes the write under way, writes the complete
lines it holds, and exits with 143 (128 + SIGTERM). The last STATE written is then whole, and so is every
record before it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any, List, Optional

from .secrets import mask, mask_bytes

SIGTERM_EXIT_CODE = 128 + signal.SIGTERM
MAX_PENDING_BYTES = 1 << 20  # written out at once past this, however recent the last write: memory stays flat


class LineOutput:
    """A file-like stdout that masks secrets, buffers for at most ``flush_interval`` s and writes whole lines."""

    def __init__(self, fd: int, flush_interval: float = 0.1) -> None:
        self._fd = fd
        self._flush_interval = flush_interval
        self._lock = threading.Lock()  # not re-entrant: a signal handler in the writing thread must not enter
        self._pending: List[bytes] = []
        self._pending_bytes = 0
        self._last_flush = time.monotonic()
        self._terminating = False

    # --- the file interface that print(), logging and sys.stderr use -----------------------------------
    def write(self, text: str) -> int:
        self._add(mask(text).encode("utf-8", "replace"))
        return len(text)

    def write_bytes(self, data: bytes) -> int:
        """``write`` for UTF-8 text that is already bytes (pages of records)."""
        self._add(mask_bytes(data))
        return len(data)

    def _add(self, masked: bytes) -> None:
        with self._lock:
            self._pending.append(masked)
            self._pending_bytes += len(masked)
            now = time.monotonic()
            if now - self._last_flush >= self._flush_interval or self._pending_bytes >= MAX_PENDING_BYTES:
                self._write_out(whole_lines_only=False)
                self._last_flush = now
        if self._terminating:
            self._stop()

    def flush(self) -> None:
        with self._lock:
            self._write_out(whole_lines_only=False)
        if self._terminating:
            self._stop()

    def close(self) -> None:
        """Write everything still pending, an unfinished last line included (at exit)."""
        with self._lock:
            data, self._pending = b"".join(self._pending), []
            self._pending = [data] if data else []
            if data:
                self._pending = []
                self._write_raw(data)

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    @property
    def encoding(self) -> str:
        return "utf-8"

    # --- SIGTERM ---------------------------------------------------------------------------------------
    def on_sigterm(self, signum: int, frame: Optional[FrameType]) -> None:
        """Runs in the main thread between two bytecodes: stop now if no write is under way, else after it."""
        self._terminating = True
        self._stop()

    def _stop(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # a write is under way (here or in another thread); it stops when it is done
        try:
            self._write_out(whole_lines_only=True)
        finally:
            os._exit(SIGTERM_EXIT_CODE)

    # --- internals -------------------------------------------------------------------------------------
    def _write_out(self, *, whole_lines_only: bool) -> None:
        """Write what is pending (the caller holds the lock); with ``whole_lines_only``, up to the last newline."""
        data = b"".join(self._pending)
        self._pending = []
        self._pending_bytes = 0
        if whole_lines_only:
            data = data[: data.rfind(b"\n") + 1]
        elif not data.endswith(b"\n") and b"\n" in data:  # keep an unfinished line until it is finished
            cut = data.rfind(b"\n") + 1
            data, rest = data[:cut], data[cut:]
            self._pending = [rest]
            self._pending_bytes = len(rest)
        elif not data.endswith(b"\n"):
            self._pending = [data]
            self._pending_bytes = len(data)
            return
        self._write_raw(data)

    def _write_raw(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]


def install(output: LineOutput) -> Any:
    """Route stdout, stderr and the CDK's log handlers through ``output`` and stop cleanly on SIGTERM.

    Returns what is needed to undo it (for tests that call ``run`` in-process)."""
    saved = (sys.stdout, sys.stderr, signal.getsignal(signal.SIGTERM))
    sys.stdout = sys.stderr = output  # type: ignore[assignment]
    for handler in logging.getLogger().handlers + logging.getLogger("airbyte").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is not output:
            handler.setStream(output)  # type: ignore[arg-type]
    signal.signal(signal.SIGTERM, output.on_sigterm)
    return saved
