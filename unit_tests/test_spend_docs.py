"""The README and the docs page agree with the Spend & Expense code: its streams, paths, keys and error table."""

from __future__ import annotations

from pathlib import Path

import pytest

from source_bill import spend
from source_bill.source import SourceBill

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "docs" / "integrations" / "sources" / "bill.md"]
CONFIG = {
    "username": "u@example.com",
    "password": "x",
    "organization_id": "008abc",
    "dev_key": "k",
    "spend_api_token": "placeholder-spend-token",
}


def _spend_streams() -> list[spend.SpendStream]:
    streams = [s for s in SourceBill().streams(CONFIG) if isinstance(s, spend.SpendStream)]
    assert [type(s) for s in streams] == spend.SPEND_STREAM_CLASSES
    return streams


@pytest.mark.parametrize("page", PAGES, ids=["README", "docs-page"])
def test_given_a_docs_page_when_reading_it_then_each_spend_stream_has_a_row_with_path_and_keys(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip(" `[").split("]")[0]: line
        for line in text.splitlines()
        if line.startswith("|") and "/v3/spend/" in line
    }
    for stream in _spend_streams():
        assert stream.name in rows, f"{stream.name} missing from {page.name}"
        row = rows[stream.name]
        assert f"`/v3/spend/{stream.path()}" in row, f"{stream.name}: path not in {row}"
        keys = [stream.primary_key] if isinstance(stream.primary_key, str) else stream.primary_key
        assert all(f"`{key}`" in row for key in keys), row
        assert ("yes" in row or "✅" in row) == bool(stream.cursor_field), row


@pytest.mark.parametrize("page", PAGES, ids=["README", "docs-page"])
def test_given_a_docs_page_when_reading_it_then_it_holds_the_generated_spend_errors_table(page: Path) -> None:
    assert spend.markdown_table() in page.read_text(encoding="utf-8")
