"""BILL (bill.com) v3 API emulator for integration tests of source-bill (standard library only).

    from integration_tests.bill_emulator import BillEmulator, STREAMS, DEFAULT_CREDENTIALS

    with BillEmulator(seed=1, sizes={"vendors": 1000}) as emu:   # port=0: ephemeral; clock=callable -> epoch s
        config = emu.config()          # credentials (user_login), organization_id, base_url (+ overrides)
        emu.config("oauth_client_credentials")   # client_id/client_secret, oauth_token_url; emu.flat_config(): old form
        emu.base_url                   # http://127.0.0.1:<port>/connect
        emu.records("vendors")         # deep copy, creation order: what a perfect full refresh returns
        emu.update_record("vendors", vid, {"name": "X"})   # None deletes a key; updatedTime = now
        emu.archive_record / insert_record / set_updated_time(stream, ids, iso) / expire_sessions() / revoke_tokens()
        emu.before_list(cb)            # cb(emu, stream, index) before each list request (no lock held)
        emu.inject("bdc_1322", "/v3/bills", times=2)      # scripted faults, FIFO, path substring match
        emu.settings.<switch>          # see server.Settings
        emu.stats.<counter>, emu.request_log, emu.reset_stats()

Notes
- Record ids of card_account_users are (cardAccountId, userId) tuples (a list also works).
- stats.requests_by_path and request_log paths are relative to the /connect prefix ("/v3/vendors").
- stats.login_count counts successful logins (login_attempts every login request that reached the handler);
  stats.token_count / token_attempts the same for OAuth tokens (POST /authx/token, outside the /connect prefix,
  lifetime settings.token_lifetime_s). A request with Authorization: Bearer <token> needs no sessionId/devKey; its
  hourly budget is keyed by the OAuth client.
- stats.list_requests_by_stream counts every GET on a list path (including faulted/rejected ones); the index
  given to before_list callbacks counts only list requests that passed auth and validation.
- stats.rejected_1322 / rejected_1144 count real limit rejections; injected ones go to stats.faults_injected.
- The hourly limit counts every non-rejected request that carries a devKey (header, or login body), health
  excluded, in a moving hour of the emulator clock; login_hourly_limit (BILL: 200) is off by default.
- settings.token_mode "offset" (default): tokens encode an offset into the current filtered+sorted list;
  "snapshot": tokens point into the result set frozen at the first page (no shifts; for comparisons).
- Runnable by hand: python -m integration_tests.bill_emulator --port 8123 [--seed 1] [--scale 1.0] [--latency-ms 0]
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
