"""BILL v3 list `filters` / `sort` parsing and evaluation, and timestamp helpers."""

from __future__ import annotations

import calendar
import re
import time
from typing import Any, Callable

from .catalog import FILTERABLE, PRIMARY_KEYS, SORTABLE

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "sw")


class ApiError(Exception):
    """An error answered with BILL's error array."""

    def __init__(self, status: int, code: str, message: str, category: str = "REQUEST"):
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.category = category


# ---------------------------------------------------------------- timestamps


def format_ms(ms: int) -> str:
    """Epoch milliseconds -> BILL's `2024-10-16T13:36:31.000+00:00`."""
    sec, milli = divmod(int(ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{milli:03d}+00:00"


def format_date(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(int(ms) // 1000))


_INSTANT_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|z|[+-]\d{2}(?::?\d{2})?)?)?$"
)


def parse_instant_ms(value: str) -> int:
    """Parse the date-time forms BILL accepts in filters into epoch milliseconds (UTC when no zone).

    yyyy-MM-dd'T'HH:mm:ss.SSSX (Z, +00:00, +0000, +00), yyyy-MM-dd'T'HH:mm:ss.SSS,
    yyyy-MM-dd'T'HH:mm:ss, yyyy-MM-dd'T'HH:mm, yyyy-MM-dd.  Raises ValueError otherwise.
    """
    m = _INSTANT_RE.match(value.strip())
    if not m:
        raise ValueError(f"invalid date-time: {value!r}")
    year, month, day, hh, mi, ss, frac, zone = m.groups()
    secs = calendar.timegm((int(year), int(month), int(day), int(hh or 0), int(mi or 0), int(ss or 0), 0, 0, 0))
    # validate the calendar fields (timegm silently normalises 2024-02-31)
    if (
        time.gmtime(secs)[:3] != (int(year), int(month), int(day))
        or int(hh or 0) > 23
        or int(mi or 0) > 59
        or int(ss or 0) > 59
    ):
        raise ValueError(f"invalid date-time: {value!r}")
    ms = secs * 1000 + (int((frac or "0")[:3].ljust(3, "0")))
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        off_min = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
        ms -= sign * off_min * 60_000
    return ms


def normalize_instant(value: str) -> str:
    return format_ms(parse_instant_ms(value))


# ---------------------------------------------------------------- filters


def split_outside_quotes(text: str, sep: str = ",") -> list[str]:
    parts, buf, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            buf.append(ch)
        elif ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    if quoted:
        raise ApiError(400, "BDC_1001", f"Invalid filter: unbalanced quotes in {text!r}")
    parts.append("".join(buf))
    return parts


def getter(dotted: str) -> Callable[[dict], Any]:
    parts = dotted.split(".")
    if len(parts) == 1:
        key = parts[0]
        return lambda rec: rec.get(key)

    def get(rec: dict) -> Any:
        cur: Any = rec
        for p in parts:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(p)
        return cur

    return get


def _convert(stream: str, field: str, kind: str, raw: str) -> Any:
    try:
        if kind == "instant":
            return normalize_instant(raw)
        if kind == "date":
            if not re.match(r"^\d{4}-\d{2}-\d{2}$", raw):
                return format_date(parse_instant_ms(raw))
            return raw
        if kind == "bool":
            low = raw.lower()
            if low not in ("true", "false"):
                raise ValueError(raw)
            return low == "true"
        if kind == "number":
            return float(raw)
    except ValueError:
        raise ApiError(400, "BDC_1001", f"Invalid value {raw!r} for filter field {field}") from None
    return raw


def parse_filters(stream: str, text: str | None) -> list[Callable[[dict], bool]]:
    """Parse `field:op:value[,field:op:value...]` into predicates (ANDed)."""
    if text is None or text.strip() == "":
        return []
    allowed = FILTERABLE[stream]
    preds = []
    for raw_term in split_outside_quotes(text):
        term = raw_term.strip()
        if not term:
            raise ApiError(400, "BDC_1001", "Invalid filter: empty filter expression")
        pieces = term.split(":", 2)
        field = pieces[0].strip()
        if field not in allowed:
            raise ApiError(400, "BDC_1130", f"Invalid list filter field: {field}")
        if len(pieces) < 3:
            op = pieces[1].strip() if len(pieces) == 2 else ""
            if op not in OPERATORS:
                raise ApiError(400, "BDC_1131", f"Invalid list filter operator: {op}")
            raise ApiError(400, "BDC_1001", f"Invalid filter expression: {term}")
        op, value = pieces[1].strip(), pieces[2].strip()
        if op not in OPERATORS:
            raise ApiError(400, "BDC_1131", f"Invalid list filter operator: {op}")
        quoted = len(value) >= 2 and value[0] == '"' and value[-1] == '"'
        if quoted:
            value = value[1:-1]
        elif '"' in value or ":" in value:
            # BILL's parser splits on ':' outside quotes: an unquoted date-time breaks it
            raise ApiError(400, "BDC_1001", f"Invalid filter expression: {term} (quote values containing ':')")
        kind = allowed[field]
        get = getter(field)
        if op in ("in", "nin"):
            values = [_convert(stream, field, kind, v.strip()) for v in value.split(",") if v.strip() != ""]
            preds.append(_make_set_pred(get, op, values))
        else:
            preds.append(_make_pred(get, op, _convert(stream, field, kind, value)))
    return preds


def _make_set_pred(get, op, values):
    vs = set(values)
    if op == "in":
        return lambda rec: get(rec) in vs
    return lambda rec: get(rec) not in vs


def _make_pred(get, op, v):
    if op == "eq":
        return lambda rec: get(rec) == v
    if op == "ne":
        return lambda rec: get(rec) != v
    if op == "sw":
        low = str(v).lower()
        return lambda rec: isinstance(get(rec), str) and get(rec).lower().startswith(low)

    def cmp(rec, _op=op):
        x = get(rec)
        if x is None or isinstance(x, bool) != isinstance(v, bool):
            return False
        try:
            if _op == "gt":
                return x > v
            if _op == "gte":
                return x >= v
            if _op == "lt":
                return x < v
            return x <= v
        except TypeError:
            return False

    return cmp


# ---------------------------------------------------------------- sort


def parse_sort(stream: str, text: str | None) -> list[tuple[str, bool]]:
    if text is None or text.strip() == "":
        return []
    allowed = SORTABLE[stream]
    out = []
    for raw_term in text.split(","):
        field, _, direction = raw_term.strip().partition(":")
        field = field.strip()
        direction = (direction or "asc").strip().lower()
        if field not in allowed:
            raise ApiError(400, "BDC_1001", f"Invalid sort field: {field}")
        if direction not in ("asc", "desc"):
            raise ApiError(400, "BDC_1001", f"Invalid sort order: {direction}")
        out.append((field, direction == "desc"))
    return out


def _sort_key(get):
    def key(rec):
        v = get(rec)
        if v is None:
            return (0, 0)
        return (1, v)

    return key


def apply(stream: str, rows: list[dict], preds, sort: list[tuple[str, bool]]) -> list[dict]:
    """Filter (AND) then sort with a stable primary-key tie-break; no sort keeps creation order."""
    if preds:
        if len(preds) == 1:
            p = preds[0]
            rows = [r for r in rows if p(r)]
        else:
            rows = [r for r in rows if all(p(r) for p in preds)]
    else:
        rows = list(rows)
    if sort:
        pk = PRIMARY_KEYS[stream]
        if len(pk) == 1:
            k0 = pk[0]
            rows.sort(key=lambda r: r.get(k0) or "")
        else:
            rows.sort(key=lambda r: tuple(r.get(k) or "" for k in pk))
        for field, desc in reversed(sort):
            rows.sort(key=_sort_key(getter(field)), reverse=desc)
    return rows
