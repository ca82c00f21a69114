"""source_bill.jsonparse: the fast path for ordinary pages, the exact path whenever a number could lose digits."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, List

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from source_bill import jsonparse

# --- which pages take the exact parser ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "page",
    [
        b'{"paymentTermId": "0pt01599027317392068", "n": 1}',  # a long digit run inside an id
        b'{"phone": "+12345678901234567"}',
        b'{"account": "x-12345678901234567", "ok": true}',
        b'{"text": "1234567890123456"}',  # a string that is nothing but digits
        b'{"when": "2024-01-01T00:00:00.000Z", "amount": 12.5}',
    ],
)
def test_given_long_digit_runs_only_inside_strings_then_the_fast_parser_reads_the_page(page: bytes) -> None:
    assert not jsonparse.may_hold_long_number(page)
    assert jsonparse.loads(page) == orjson.loads(page)


@pytest.mark.parametrize(
    "page",
    [
        b"12345678901234567",
        b'{"a": 12345678901234567}',
        b'{"a":12345678901234567.89}',
        b'{"a": -1234567890123456}',
        b'{"a":\n\t 1234567890.123456}',
        b"[1,2,12345678901234567]",
        b"[12345678901234567]",
        b'{"a": 1e1234567890123456}',
        b'{"a": 1E+1234567890123456}',
        b'{"id": "0pt01599027317392068", "big": 123456789012345678901234567890}',  # a string run first, then a number
    ],
)
def test_given_a_number_of_16_or_more_digits_then_the_page_takes_the_exact_parser(page: bytes) -> None:
    assert jsonparse.may_hold_long_number(page)


def test_given_a_long_id_and_a_long_number_when_parsed_then_the_number_is_exact_and_the_id_kept() -> None:
    page = b'{"results": [{"id": "0pt01599027317392068", "money": 12345678901234567.89, "n": 18446744073709551616}]}'
    out = orjson.dumps(jsonparse.loads(page))
    assert out == b'{"results":[{"id":"0pt01599027317392068","money":12345678901234567.89,"n":18446744073709551616}]}'


# --- whatever the path, every number comes out exactly as BILL wrote it ---------------------------------------
NUMBER = st.from_regex(r"\A-?(0|[1-9][0-9]{0,28})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,2})?\Z")
DIGITS_TEXT = st.from_regex(r"\A[a-z+\- 0-9]{0,3}[0-9]{0,30}[a-z ]{0,3}\Z")
SPACE = st.sampled_from(["", " ", "\n", "\t ", "\r\n  "])


@st.composite
def documents(draw: Any, depth: int = 0) -> str:
    """JSON text built token by token: numbers as written (long, short, exponents), strings full of digit runs."""
    kind = draw(st.sampled_from(["number", "string", "list", "object"] if depth < 3 else ["number", "string"]))
    if kind == "number":
        return str(draw(NUMBER))
    if kind == "string":
        return json.dumps(draw(DIGITS_TEXT))
    items: List[str] = draw(st.lists(documents(depth + 1), max_size=5))
    sp = draw(SPACE)
    if kind == "list":
        return "[" + sp + ("," + sp).join(items) + sp + "]"
    keys = [f"k{i}" for i in range(len(items))]
    return "{" + sp + ("," + sp).join(f"{json.dumps(k)}:{sp}{v}" for k, v in zip(keys, items, strict=True)) + sp + "}"


def exact(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


@settings(max_examples=300, deadline=None)
@given(documents())
def test_given_any_page_when_parsed_and_written_then_every_number_and_string_is_exact(text: str) -> None:
    """Breaks if the fast path is taken for a page with a long number (e.g. if every digit run were taken for one
    inside a string): orjson would round it to a float and the written value would differ."""
    written = orjson.dumps(jsonparse.loads(text.encode()))
    assert exact(written) == exact(text)
