"""Airbyte source connector for the BILL (bill.com) v3 API."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .source import SourceBill

__all__ = ["SourceBill"]


def __getattr__(name: str) -> Any:
    """``SourceBill`` is imported on first use, so ``python -m source_bill.errors`` imports errors.py only once."""
    if name == "SourceBill":
        from .source import SourceBill

        return SourceBill
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
