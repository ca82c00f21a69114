"""Airbyte source connector for the BILL (bill.com) v3 API."""

from .source import SourceBill

__all__ = ["SourceBill"]
