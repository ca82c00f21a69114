"""BILL timestamps: parsed leniently, compared as instants, written in one canonical form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Optional

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SAFE_MARGIN = timedelta(days=7)  # more than any window, lookback or tolerance the connector adds to an instant
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def parse_instant(value: str) -> datetime:
    """Parse a BILL date-time as an aware UTC instant.

    Accepts what BILL sends and what users type: ``2024-10-16T13:36:31.000+00:00``, ``...Z``,
    ``...+0000``, with or without milliseconds or seconds, a bare date, and no zone (read as UTC).
    Raises ``ValueError`` for anything else.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a date-time: {value!r}")
    parsed = datetime.fromisoformat(value.strip())
    try:
        instant = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        instant = EARLIEST  # outside the range; refused below
    # Every instant must stay representable after the connector's lookback and tolerance arithmetic.
    if not EARLIEST + SAFE_MARGIN <= instant <= LATEST - SAFE_MARGIN:
        raise ValueError(f"{value!r} is at the edge of the representable date range (years 1 to 9999)")
    return instant


def format_instant(value: datetime) -> str:
    """Canonical form used in filters and state: ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (BILL's documented format).

    Milliseconds are truncated, never rounded up, so a ``gte`` filter built from it never excludes
    the instant it came from.
    """
    value = value.astimezone(UTC)
    return f"{value.year:04d}-" + value.strftime("%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_http_date(value: Optional[str]) -> Optional[datetime]:
    """The server clock from an HTTP ``Date`` header (one-second resolution), or None."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
