"""The Spend & Expense scenario of the standard tests reads what it claims: the emulator's config plus its token."""

from __future__ import annotations

import json
from pathlib import Path

from integration_tests.bill_emulator.spend import DEFAULT_SPEND_TOKEN

HERE = Path(__file__).resolve().parent


def test_sample_spend_config_is_the_sample_config_plus_the_emulators_spend_token() -> None:
    sample = json.loads((HERE / "sample_config.json").read_text())
    spend = json.loads((HERE / "sample_spend_config.json").read_text())
    assert spend == {**sample, "spend_api_token": DEFAULT_SPEND_TOKEN}
