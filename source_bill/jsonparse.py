"""BILL's JSON, parsed fast when that is exact and exactly when it is not.

The fast path is ``orjson``. It would round integers beyond 64 bits and numbers with 17 or more significant
digits to floats, and it refuses ``1e309``, lone surrogates (``"\\ud800"``) and nesting deeper than 1,024
levels. So a page that may hold a number written with 16 or more digits (and dots), or that ``orjson``
refuses, is parsed by the standard library instead (in a thread with a deep stack, so nesting up to ``MAX_DEPTH`` levels
parses), and every value the output could not carry exactly becomes an ``orjson.Fragment`` holding its exact
JSON text:

- an integer beyond 64 bits, or a number that a float does not represent exactly (``12345678901234567.89``,
  ``1e309``): the number as BILL wrote it, normalised (``1E+309``);
- a string with a lone surrogate: the string with that surrogate escaped (``"\\ud800"``), as BILL sent it;
- a value nested deeper than ``FLAT_DEPTH`` levels: its JSON text, so the serializer need not recurse into it.

Object keys with a lone surrogate get U+FFFD in its place (a key cannot be a fragment). A page that even the
slow parser refuses (not JSON at all, or nested deeper than ``MAX_DEPTH``) raises ``ValueError``.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from decimal import Decimal
from typing import Any, Dict, List, Tuple

import orjson

MAX_DEPTH = 20_000
FLAT_DEPTH = 200  # orjson serializes at most 254 levels
_INT64 = (-(2**63), 2**64 - 1)
_LOCK = threading.Lock()


def loads(content: bytes) -> Any:
    """``content`` parsed; numbers exact; ``ValueError`` when it is not JSON."""
    if not may_hold_long_number(content):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    return slow_loads(content)


# Each byte as its class: a digit or dot "0", a sign "2", what may come right before a number (whitespace, ":",
# ",", "[", and "e"/"E" before an exponent) "1", anything else a space.
_CLASSES = bytes(
    48 if (48 <= c <= 57 or c == 46) else 50 if c in b"+-" else 49 if c in b" \t\n\r:,[eE" else 32 for c in range(256)
)
_RUN = b"0" * 16
_NUMBER_STARTS = (b"1" + _RUN, b"12" + _RUN)


def may_hold_long_number(content: bytes) -> bool:
    """Whether some run of 16 or more digits and dots in ``content`` may be a JSON number.

    Ids such as ``"0pt01599027317392068"`` hold such runs inside strings; a run is taken for a number when what
    comes before it (past one sign) may come before a number: the start of the text, whitespace, ``:``, ``,``,
    ``[``, or ``e``/``E`` in an exponent. Inside a string that only errs towards "may", which costs the slow
    parser and nothing else.
    """
    classes = content.translate(_CLASSES)
    return (
        classes.startswith(_RUN)
        or classes.startswith(b"2" + _RUN)
        or any(classes.find(start) >= 0 for start in _NUMBER_STARTS)
    )


def slow_loads(content: bytes) -> Any:
    text = content.decode("utf-8") if isinstance(content, bytes) else content
    try:
        return _exact(json.loads(text, parse_float=_number, parse_int=_integer, parse_constant=_constant))
    except RecursionError:
        return _in_deep_thread(text)


def _in_deep_thread(text: str) -> Any:
    """Parse deeply nested JSON in a thread with a large stack and a raised recursion limit."""
    result: Dict[str, Any] = {}

    def work() -> None:
        try:
            value = json.loads(text, parse_float=_number, parse_int=_integer, parse_constant=_constant)
            result["value"] = _exact(value)
        except BaseException as exc:  # handed to the caller below
            result["error"] = exc

    with _LOCK:
        previous_stack = threading.stack_size(512 * 1024 * 1024)
        previous_limit = sys.getrecursionlimit()
        try:
            sys.setrecursionlimit(max(previous_limit, MAX_DEPTH + 100))
            worker = threading.Thread(target=work, name="bill-deep-json")
            worker.start()
            worker.join()
        finally:
            threading.stack_size(previous_stack)
            sys.setrecursionlimit(previous_limit)
    if "error" in result:
        error = result["error"]
        if isinstance(error, RecursionError):
            raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
        raise error
    return result["value"]


def _number(text: str) -> Any:
    value = float(text)
    if math.isfinite(value) and Decimal(repr(value)) == Decimal(text):
        return value
    return Decimal(text)


def _integer(text: str) -> Any:
    return int(text)


def _constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def _exact(value: Any) -> Any:
    """Replace, in place and without recursion, every value the output could not write exactly (see above)."""
    root: List[Any] = [value]
    todo: List[Tuple[Any, Any, int]] = [(root, 0, 0)]
    while todo:
        parent, key, depth = todo.pop()
        item = parent[key]
        if isinstance(item, dict):
            if depth >= FLAT_DEPTH:
                parent[key] = orjson.Fragment(_dumps(item))
                continue
            if any(_has_surrogate(k) for k in item):
                item = parent[key] = {_fix_key(k): v for k, v in item.items()}
            todo.extend((item, k, depth + 1) for k in item)
        elif isinstance(item, list):
            if depth >= FLAT_DEPTH:
                parent[key] = orjson.Fragment(_dumps(item))
                continue
            todo.extend((item, i, depth + 1) for i in range(len(item)))
        else:
            replaced = _scalar(item)
            if replaced is not item:
                parent[key] = replaced
    return root[0]


def _scalar(item: Any) -> Any:
    if isinstance(item, Decimal):
        return orjson.Fragment(str(item).encode())
    if isinstance(item, int) and not isinstance(item, bool) and not _INT64[0] <= item <= _INT64[1]:
        return orjson.Fragment(str(item).encode())
    if isinstance(item, str) and _has_surrogate(item):
        return orjson.Fragment(json.dumps(item).encode())
    return item


def _has_surrogate(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _fix_key(key: str) -> str:
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in key)


def _dumps(value: Any) -> bytes:
    """JSON text of a deeply nested value, written without recursion (numbers and strings exact)."""
    out: List[str] = []
    todo: List[Any] = [value]
    close = object()
    while todo:
        item = todo.pop()
        if isinstance(item, tuple) and len(item) == 2 and item[0] is close:
            out.append(item[1])
        elif isinstance(item, dict):
            out.append("{")
            todo.append((close, "}"))
            entries = list(item.items())
            for index in range(len(entries) - 1, -1, -1):
                k, v = entries[index]
                todo.append(v)
                todo.append((close, ("," if index else "") + json.dumps(k) + ":"))
        elif isinstance(item, list):
            out.append("[")
            todo.append((close, "]"))
            for index in range(len(item) - 1, -1, -1):
                todo.append(item[index])
                if index:
                    todo.append((close, ","))
        elif isinstance(item, orjson.Fragment):
            out.append(item.contents.decode() if isinstance(item.contents, bytes) else str(item.contents))
        else:
            out.append(_scalar_text(item))
    return "".join(out).encode()


def _scalar_text(item: Any) -> str:
    if isinstance(item, Decimal):
        return str(item)
    return json.dumps(item)
