"""BILL (bill.com) v3 API emulator for integration tests of source-bill.

    from integration_tests.bill_emulator import BillEmulator, STREAMS, DEFAULT_CREDENTIALS

    with BillEmulator(seed=1, sizes={"vendors": 1000}) as emu:
        config = emu.config()          # username/password/organization_id/dev_key/base_url
        emu.base_url                   # http://127.0.0.1:<port>/connect
        emu.records("vendors")         # what a perfect full refresh returns (creation order)
        emu.update_record("vendors", vid, {"name": "X"})   # updatedTime = now
        emu.settings.max_concurrent = 3; emu.inject("bdc_1322", "/v3/bills", times=2)
        emu.stats.total_requests, emu.request_log

Standard library only; runnable by hand with `python -m integration_tests.bill_emulator --port 8123`.
"""

from .catalog import DEFAULT_CREDENTIALS, DEFAULT_SIZES, FILTERABLE, PRIMARY_KEYS, SORTABLE, STREAMS
from .filters import format_ms, normalize_instant, parse_instant_ms
from .server import FAULT_KINDS, INJECT_KINDS, BillEmulator, Settings, Stats

__all__ = [
    "DEFAULT_CREDENTIALS",
    "DEFAULT_SIZES",
    "FAULT_KINDS",
    "FILTERABLE",
    "INJECT_KINDS",
    "PRIMARY_KEYS",
    "SORTABLE",
    "STREAMS",
    "BillEmulator",
    "Settings",
    "Stats",
    "format_ms",
    "normalize_instant",
    "parse_instant_ms",
]
