"""Static description of the emulated BILL v3 list endpoints (paths, keys, id prefixes, filters)."""

from __future__ import annotations

import json
import os

from source_bill.declarations import declarations

DEFAULT_CREDENTIALS = {
    "username": "emulator@example.com",
    "password": "emulator-password",
    "organization_id": "00801EMULATOR0001",
    "dev_key": "emulator-dev-key",
}
DEFAULT_OAUTH_CLIENT = {"client_id": "emulator-client-id", "client_secret": "emulator-client-secret"}
TOKEN_PATH = "/authx/token"  # BILL's OAuth token endpoint, on the emulator's root (outside the /connect prefix)
LOGIN_KEYS = ("username", "password", "dev_key", "is_sync_token")

# The streams, their paths and keys: the connector's declarations (source_bill/declarations.py), the one list.
STREAMS = {d.name: f"/v3/{d.path}" for d in declarations()}

PATH_TO_STREAM = {path: name for name, path in STREAMS.items()}

PRIMARY_KEYS = {d.name: d.primary_key for d in declarations()}

# Streams without createdTime/updatedTime: those the connector reads without a cursor.
NO_TIMESTAMPS = {d.name for d in declarations() if not d.incremental}

ID_PREFIXES = {
    "vendors": "009",
    "customers": "0cu",
    "bills": "00n",
    "invoices": "00e",
    "payments": "stp",
    "receivable_payments": "0rp",
    "credit_memos": "0cm",
    "vendor_credits": "0vc",
    "recurring_bills": "0rb",
    "recurring_invoices": "0ri",
    "chart_of_accounts": "0ca",
    "accounting_classes": "0ac",
    "departments": "0de",
    "employees": "0em",
    "items": "0ii",
    "jobs": "0jb",
    "locations": "0lc",
    "users": "006",
    "roles": "0po",
    "bank_accounts": "bac",
    "bank_account_users": "0bu",
    # not a stream of the contract, only referenced by card_account_users
    "card_accounts": "cac",
}

DEFAULT_SIZES = {
    "vendors": 250,
    "customers": 180,
    "bills": 420,
    "invoices": 390,
    "payments": 230,
    "receivable_payments": 160,
    "credit_memos": 60,
    "vendor_credits": 45,
    "recurring_bills": 25,
    "recurring_invoices": 20,
    "chart_of_accounts": 130,
    "accounting_classes": 12,
    "departments": 8,
    "employees": 40,
    "items": 110,
    "jobs": 35,
    "locations": 6,
    "users": 24,
    "roles": 9,
    "bank_accounts": 5,
    "bank_account_users": 14,
    "card_account_users": 12,
}

# Generation order: referenced streams first.
GENERATION_ORDER = [
    "roles",
    "users",
    "chart_of_accounts",
    "accounting_classes",
    "departments",
    "employees",
    "items",
    "jobs",
    "locations",
    "bank_accounts",
    "bank_account_users",
    "card_account_users",
    "vendors",
    "customers",
    "bills",
    "invoices",
    "payments",
    "receivable_payments",
    "credit_memos",
    "vendor_credits",
    "recurring_bills",
    "recurring_invoices",
]

_CLASSIFICATION_FILTERS = ["parentId", "shortName"]
_EXTRA_FILTERS = {
    "vendors": ["accountType", "address.country", "billCurrency", "paymentStatus", "email", "shortName"],
    "customers": [
        "accountType",
        "address.country",
        "billingAddress.country",
        "invoiceCurrency",
        "paymentStatus",
        "email",
        "companyName",
    ],
    "bills": [
        "vendorId",
        "dueDate",
        "paymentStatus",
        "approvalStatus",
        "payFromChartOfAccountId",
        "classifications.chartOfAccountId",
        "classifications.accountingClassId",
        "classifications.departmentId",
        "classifications.locationId",
        "classifications.itemId",
    ],
    "invoices": [
        "customerId",
        "dueDate",
        "invoiceDate",
        "invoiceNumber",
        "status",
        "payToChartOfAccountId",
        "classifications.accountingClassId",
        "classifications.departmentId",
        "classifications.jobId",
        "classifications.locationId",
    ],
    "payments": ["vendorId", "billId", "status", "disbursementType", "disbursementStatus", "processDate", "amount"],
    "receivable_payments": ["customerId", "status", "paymentDate", "amount"],
    "credit_memos": ["customerId", "status", "creditDate", "amount"],
    "vendor_credits": ["vendorId", "status", "creditDate", "amount"],
    "recurring_bills": ["vendorId"],
    "recurring_invoices": ["customerId"],
    "chart_of_accounts": ["parentId", "account.type"],
    "accounting_classes": _CLASSIFICATION_FILTERS,
    "departments": _CLASSIFICATION_FILTERS,
    "employees": [*_CLASSIFICATION_FILTERS, "firstName", "lastName"],
    "items": [*_CLASSIFICATION_FILTERS, "type"],
    "jobs": _CLASSIFICATION_FILTERS,
    "locations": _CLASSIFICATION_FILTERS,
    "users": ["email", "firstName", "lastName", "role.id", "role.type"],
    "roles": ["type"],
    "bank_accounts": ["status", "type", "ownerType", "bankName", "nameOnAccount"],
    "bank_account_users": ["bankAccountId", "userId", "verificationStatus"],
    "card_account_users": ["cardAccountId", "userId", "verificationStatus"],
}


def load_schemas() -> dict:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bill_fields.json")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    data.pop("_note", None)
    return data


SCHEMAS = load_schemas()


def field_schema(stream: str, dotted: str) -> dict | None:
    node = SCHEMAS[stream]
    for part in dotted.split("."):
        props = node.get("properties")
        if not props or part not in props:
            return None
        node = props[part]
    return node


def field_kind(stream: str, dotted: str) -> str:
    """One of instant, date, bool, number, string."""
    leaf = dotted.rsplit(".", 1)[-1]
    if leaf in ("createdTime", "updatedTime"):
        return "instant"
    node = field_schema(stream, dotted) or {}
    if node.get("format") == "date-time":
        return "instant"
    if node.get("format") == "date" or leaf.endswith("Date"):
        return "date"
    t = node.get("type")
    if t == "boolean":
        return "bool"
    if t in ("number", "integer"):
        return "number"
    return "string"


def _filterable(stream: str) -> dict[str, str]:
    props = SCHEMAS[stream]["properties"]
    fields = [f for f in ("id", "archived", "name", "createdTime", "updatedTime") if f in props]
    fields += _EXTRA_FILTERS.get(stream, [])
    return {f: field_kind(stream, f) for f in fields}


FILTERABLE = {s: _filterable(s) for s in STREAMS}


def _sortable(stream: str) -> dict[str, str]:
    out = dict(FILTERABLE[stream])
    for name, node in SCHEMAS[stream]["properties"].items():
        if node.get("type") not in ("object", "array"):
            out.setdefault(name, field_kind(stream, name))
    return out


SORTABLE = {s: _sortable(s) for s in STREAMS}
