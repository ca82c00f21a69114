"""BILL's errors as one table: HTTP status and ``BDC_####`` code -> what the connector does and says.

BILL answers errors with a JSON array of ``{code, message, severity, category, ...}`` objects, sometimes
with a single ``{"message": ...}`` object, and from a proxy with HTML or nothing at all. The body code
decides when there is one (BILL's rate-limit errors arrive with 429, 400 or 422); the status decides
otherwise. The same table is rendered into the README and the docs page
(``python -m source_bill.errors`` prints it) and a test keeps them equal.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException


class Action(enum.Enum):
    RETRY = "retry with exponential backoff and jitter"
    RELOGIN = "sign in again (a new session or OAuth token), then replay the request"
    WAIT_CONCURRENCY = "back off briefly and retry (another request was in flight)"
    WAIT_HOURLY = "wait until BILL's hourly window resets, if within the configured bound, else fail"
    SKIP_STREAM = "skip the stream with a warning; the rest of the sync goes on"
    CONFIG_ERROR = "fail the sync as config_error"
    FAIL = "fail the sync as system_error"


@dataclass(frozen=True)
class Rule:
    action: Action
    message: str
    failure_type: FailureType = FailureType.system_error


_CONFIG = FailureType.config_error
_TRANSIENT = FailureType.transient_error

# BILL codes first: they win over the HTTP status.
CODE_RULES: dict[str, Rule] = {
    "BDC_1101": Rule(
        Action.CONFIG_ERROR,
        "BILL rejected the username or password. Check both (a sync token signs in with its name as username "
        "and its value as password).",
        _CONFIG,
    ),
    "BDC_1102": Rule(
        Action.CONFIG_ERROR,
        "BILL rejected the developer key. Check dev_key, and that it belongs to the selected environment: "
        "sandbox keys do not work in production and production keys do not work in sandbox.",
        _CONFIG,
    ),
    "BDC_1103": Rule(
        Action.CONFIG_ERROR,
        "The developer key is inactive. Ask BILL's developer program to activate it, or use an active key.",
        _CONFIG,
    ),
    "BDC_1107": Rule(
        Action.CONFIG_ERROR,
        "The BILL organization is locked out. An administrator must unlock it in BILL.",
        _CONFIG,
    ),
    "BDC_1110": Rule(
        Action.CONFIG_ERROR,
        "The BILL sign-in is locked after failed attempts. Unlock it in BILL, then retry.",
        _CONFIG,
    ),
    "BDC_1111": Rule(
        Action.CONFIG_ERROR,
        "The BILL user is not active in this organization. Use an active user or a sync token.",
        _CONFIG,
    ),
    "BDC_1123": Rule(
        Action.CONFIG_ERROR,
        "BILL rejected the organization ID. Copy it from BILL (Settings > Profiles > Organization); it starts "
        "with 008, and must belong to the selected environment.",
        _CONFIG,
    ),
    "BDC_1109": Rule(Action.RELOGIN, "BILL's session expired or was invalidated."),
    # OAuth token endpoint (RFC 6749 error codes)
    "invalid_client": Rule(
        Action.CONFIG_ERROR,
        "BILL does not know this OAuth client or its secret. Check client_id and client_secret, and that they were "
        "created for the selected environment (sandbox and production credentials differ) and not revoked.",
        _CONFIG,
    ),
    "unauthorized_client": Rule(
        Action.CONFIG_ERROR,
        "BILL does not allow this OAuth client the client-credentials grant. Create client credentials in BILL "
        "(scope Accounting data access is enough) and use those.",
        _CONFIG,
    ),
    "BDC_1322": Rule(
        Action.WAIT_CONCURRENCY,
        "BILL allows 3 requests in flight per developer key and organization; another app may be using the "
        "same key. Lower max_concurrent_requests if this persists.",
        _TRANSIENT,
    ),
    "BDC_1144": Rule(
        Action.WAIT_HOURLY,
        "BILL's hourly limit of requests for this developer key is used up. Lower requests_per_hour if other "
        "apps share the key, or raise rate_limit_max_wait_minutes to wait for the reset.",
        _TRANSIENT,
    ),
    "BDC_1361": Rule(
        Action.SKIP_STREAM,
        "BILL requires an MFA-trusted session for this object; it is skipped.",
    ),
    "BDC_1302": Rule(
        Action.SKIP_STREAM,
        "BILL says the signed-in identity is not a user (an AP & AR sync token signs in as a system user), so "
        "an object that belongs to the signed-in user (bills_pending_approval) is skipped. Sign in as the "
        "approver to sync it.",
    ),
    "BDC_1121": Rule(
        Action.FAIL,
        "BILL does not support this endpoint (wrong base_url or a changed API).",
    ),
    "BDC_1130": Rule(Action.FAIL, "BILL rejected a list filter field; please report this connector bug."),
    "BDC_1131": Rule(Action.FAIL, "BILL rejected a list filter operator; please report this connector bug."),
}

# Then the HTTP status (ranges as (low, high) inclusive).
STATUS_RULES: List[Tuple[int, int, Rule]] = [
    (401, 401, Rule(Action.RELOGIN, "BILL rejected the session or the OAuth token.")),
    (
        403,
        403,
        Rule(
            Action.SKIP_STREAM,
            "The BILL user's role cannot read this object; it is skipped. Give the user a role that can read it "
            "(e.g. Administrator or Accountant) to sync it.",
        ),
    ),
    (408, 408, Rule(Action.RETRY, "BILL timed out.", _TRANSIENT)),
    (429, 429, Rule(Action.WAIT_CONCURRENCY, "BILL is rate limiting requests.", _TRANSIENT)),
    (500, 599, Rule(Action.RETRY, "BILL had a server error.", _TRANSIENT)),
    (400, 499, Rule(Action.FAIL, "BILL rejected the request.")),
]

NETWORK_RULE = Rule(Action.RETRY, "The connection to BILL failed or timed out.", _TRANSIENT)
REDIRECT_RULE = Rule(
    Action.CONFIG_ERROR,
    "BILL's answer was a redirect, which the connector never follows: credentials go only to base_url's host, "
    "over its scheme. Check base_url and environment (a gateway or proxy that redirects is not BILL's API).",
    _CONFIG,
)
LOGIN_REJECTED = Rule(
    Action.CONFIG_ERROR,
    "BILL refused the sign-in. Check username, password, organization_id, dev_key and environment.",
    _CONFIG,
)


TOKEN_REJECTED = Rule(
    Action.CONFIG_ERROR,
    "BILL's token endpoint refused the OAuth client credentials. Check client_id and client_secret, that they "
    "were created for this organization in the selected environment and not revoked, and oauth_token_url if set.",
    _CONFIG,
)


@dataclass(frozen=True)
class BillError:
    code: Optional[str]
    message: str


def parse_errors(response: requests.Response) -> List[BillError]:
    """BILL's error body in any of its forms: array of objects, single object, or nothing useful."""
    try:
        body: Any = json.loads(response.content or b"null")
    except ValueError:
        return []
    items = body if isinstance(body, list) else [body]
    errors = []
    for item in items:
        if isinstance(item, dict):
            code = item.get("code") or item.get("error_code") or item.get("error")  # "error": OAuth (RFC 6749)
            message = (
                item.get("message") or item.get("error_message") or item.get("error_description") or item.get("detail")
            ) or ""
            errors.append(BillError(str(code) if code else None, str(message)))
    return errors


def classify(status: int, errors: List[BillError], *, refused: Optional[Rule] = None) -> Rule:
    """The rule for an answer; ``refused`` is the rule of a refused sign-in when the request was one."""
    for error in errors:
        if error.code in CODE_RULES:
            rule = CODE_RULES[error.code]
            if refused is not None and rule.action is Action.RELOGIN:
                return refused
            return rule
    if refused is not None and 400 <= status < 500 and status not in (408, 429):
        return refused
    for low, high, rule in STATUS_RULES:
        if low <= status <= high:
            return rule
    return Rule(Action.FAIL, f"BILL answered with unexpected HTTP status {status}.")


def describe(errors: List[BillError]) -> str:
    """BILL's own words, e.g. ``BDC_1101: Invalid username or password``."""
    parts = [f"{e.code}: {e.message}" if e.code else e.message for e in errors if e.code or e.message]
    return "; ".join(parts)


def traced(rule: Rule, detail: str) -> AirbyteTracedException:
    message = f"{rule.message} {detail}".strip()
    return AirbyteTracedException(message=message, internal_message=message, failure_type=rule.failure_type)


class StreamUnavailable(Exception):
    """BILL will not let this user read the object (403, BDC_1361): skip the stream."""


def markdown_table() -> str:
    """The troubleshooting table of the docs, generated from the rules above."""
    lines = [
        "| BILL answer | What the connector does | Failure type | What to do |",
        "|---|---|---|---|",
    ]
    for code, rule in CODE_RULES.items():
        lines.append(f"| `{code}` (any HTTP status) | {rule.action.value} | {_ft(rule)} | {rule.message} |")
    for low, high, rule in STATUS_RULES:
        status = str(low) if low == high else f"other {str(low)[0]}xx"
        lines.append(f"| HTTP {status} without a known code | {rule.action.value} | {_ft(rule)} | {rule.message} |")
    lines.append(f"| HTTP 3xx (any redirect) | not followed | {_ft(REDIRECT_RULE)} | {REDIRECT_RULE.message} |")
    for what, rule in (("`POST /v3/login`", LOGIN_REJECTED), ("OAuth token request", TOKEN_REJECTED)):
        lines.append(f"| {what} refused with another 4xx | {rule.action.value} | {_ft(rule)} | {rule.message} |")
    lines.append(
        f"| connection dropped, timeout | {NETWORK_RULE.action.value} | {_ft(NETWORK_RULE)} | {NETWORK_RULE.message} |"
    )
    return "\n".join(lines)


def _ft(rule: Rule) -> str:
    if rule.action in (Action.RELOGIN, Action.SKIP_STREAM):
        return "none (handled)"
    return f"`{rule.failure_type.value}`"


if __name__ == "__main__":
    print(markdown_table())
