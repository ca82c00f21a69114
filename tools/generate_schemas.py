#!/usr/bin/env python3
"""Generate source_bill/schemas/ from the BILL v3 field lists.

The input maps each BILL object to a JSON-Schema-like field list (bill-api-fields.json,
derived from BILL's Postman collection). This script turns the lists into Airbyte stream
schemas that follow the connector's rules:

* every property is optional and nullable, nothing is `required`, no closed `enum`;
* `additionalProperties: true` on every object;
* repeated shapes (addresses, classifications, line items, ...) live once in
  `schemas/shared/<name>.json`, referenced as `{"$ref": "<name>.json"}`. The CDK's
  ResourceSchemaLoader resolves a ref against the package directory, then rewrites it
  into `schemas/shared/`, so a ref names the shared file only: `"shared/x.json"` would
  be looked up as `schemas/shared/shared/x.json` and fail;
* keys in a fixed order, 2-space indent, trailing newline: regenerating is byte-stable.

The Spend & Expense streams (spend_*) come from a second field list, bill-spend-fields.json (same
format); their schemas keep every field inline (no shared pieces: the shared files stay those of the
AP/AR streams) and get the keys the connector adds (the parent id of a child row).

The streams beyond the 22 lists (MORE_STREAMS) take their fields from the same file or from
bill-more-ap-ar-fields.json (documents, attachments, cards, approvals); each states the fields it
always has (its key, its parent's id) instead of the standard id and updatedTime.

Usage:
    python tools/generate_schemas.py [--fields FIELDS.json] [--more-fields MORE.json] [--spend-fields SPEND.json]
        [--out source_bill/schemas]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JsonSchema = dict[str, Any]

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere: the connector's package is in the repo
    sys.path.insert(0, str(REPO_ROOT))

from source_bill.declarations import declarations  # noqa: E402

DEFAULT_FIELDS = Path(__file__).resolve().parent / "bill-api-fields.json"
DEFAULT_SPEND_FIELDS = Path(__file__).resolve().parent / "bill-spend-fields.json"
DEFAULT_MORE_FIELDS = Path(__file__).resolve().parent / "bill-more-ap-ar-fields.json"
DEFAULT_OUT = REPO_ROOT / "source_bill" / "schemas"
DRAFT_07 = "http://json-schema.org/draft-07/schema#"

# The connector's streams (source_bill/declarations.py); each name is also the object's key in the fields file.
STREAMS: tuple[str, ...] = tuple(d.name for d in declarations())

# Streams that are not keyed by `id` and ordered by `updatedTime` (card_account_users: [cardAccountId, userId],
# no cursor) get neither field added.
STREAMS_WITHOUT_ID = frozenset(
    d.name for d in declarations() if d.primary_key != ("id",) or d.cursor_field != "updatedTime"
)


def _field(json_type: str, description: str | None = None, string_format: str | None = None) -> JsonSchema:
    node: JsonSchema = {"type": ["null", json_type]}
    if string_format:
        node["format"] = string_format
    if description:
        node["description"] = description
    return node


# The Spend & Expense streams; each name is also the object's key in the spend fields file.
SPEND_STREAMS: tuple[str, ...] = (
    "spend_transactions",
    "spend_cards",
    "spend_budgets",
    "spend_budget_members",
    "spend_users",
    "spend_reimbursements",
    "spend_custom_fields",
    "spend_custom_field_values",
)

# Present in every stream but card_account_users: the primary key and the cursor.
ID_AND_CURSOR: dict[str, JsonSchema] = {
    "id": _field("string"),
    "updatedTime": _field("string", string_format="date-time"),
}


# The streams beyond the 22 lists: stream -> (its object in the fields files, the fields it always has).
def _key(name: str) -> dict[str, JsonSchema]:
    return {name: _field("string")}


def _child(parent_key: str) -> dict[str, JsonSchema]:
    return {**_key("id"), **_key(parent_key), **_key("downloadLink")}


MORE_STREAMS: dict[str, tuple[str, dict[str, JsonSchema]]] = {
    "organization": ("organization", _key("id")),
    "billing_statements": ("billing_statements", _key("id")),
    "card_accounts": ("card_accounts", ID_AND_CURSOR),
    "ap_cards": ("ap_cards", ID_AND_CURSOR),
    "bill_approval_policies": ("bill_approval_policies", _key("id")),
    "bills_pending_approval": ("bills_pending_approval", _key("billId")),
    "bill_documents": ("bill_documents", _child("billId")),
    "vendor_attachments": ("attachments", _child("vendorId")),
    "customer_attachments": ("attachments", _child("customerId")),
    "invoice_attachments": ("attachments", _child("invoiceId")),
}

# Fields BILL's API reference documents as newer than the Postman copy the field lists come from.
# Added when missing; must agree when present.
NEWER_FIELDS: dict[str, dict[str, JsonSchema]] = {
    "bills": {
        "purchaseOrderNumber": _field("string"),
        "vendorName": _field("string"),
    },
    "customers": {
        "authorizedToCharge": _field("boolean"),
        "hasBankAccount": _field("boolean"),
    },
    "invoices": {
        "createdBy": _field("string", "Id of the user who created the invoice (starts with 006)."),
        "paymentTermId": _field("string"),
        "recordStatus": _field("string"),
    },
}


# The keys the connector guarantees on S&E rows (S&E leaves the parent id out of child rows).
SPEND_KEYS: dict[str, dict[str, JsonSchema]] = {
    "spend_transactions": {"id": _field("string"), "updatedTime": _field("string", string_format="date-time")},
    "spend_budget_members": {
        "budgetId": _field("string", "Id of the budget (added by the connector)."),
        "userId": _field("string"),
    },
    "spend_custom_field_values": {
        "id": _field("string"),
        "customFieldId": _field("string", "Id of the custom field (added by the connector)."),
    },
}


def _values(values: str) -> str:
    return f"Open set; values seen include {values}."


ROLE_TYPES = "ADMINISTRATOR, CLERK, APPROVER, ACCOUNTANT, CUSTOM, PAYER, PARTNER, AUDITOR, NO_ACCESS"


# Descriptions for strings with known values (never a closed enum: BILL adds values).
# Keys are "<stream>:<path>", path in dotted form with [] for array items.
DESCRIPTIONS: dict[str, str] = {
    "vendors:accountType": _values("BUSINESS, PERSON, NONE, UNDEFINED"),
    "vendors:additionalInfo.taxIdType": _values("SSN, EIN, UNDEFINED"),
    "vendors:paymentInformation.payByType": _values("ACH, CHECK, VIRTUAL_CARD, RPPS, OFFLINE, UNDEFINED"),
    "vendors:paymentInformation.payBySubType": _values("MULTIPLE, LOCAL, WIRE, ACH, NONE, UNDEFINED"),
    "vendors:paymentInformation.virtualCard.status": _values(
        "ENROLLED, UNENROLLED, PENDING, UNKNOWN, VERBAL_COMMITMENT, REQUIRE_MORE_INFO, PHONE_NUMBER_NEEDED, UNDEFINED"
    ),
    "customers:accountType": _values("BUSINESS, PERSON, NONE"),
    "bills:paymentStatus": _values("PAID, UNPAID, PARTIAL, SCHEDULED, UNDEFINED"),
    "bills:approvalStatus": _values("UNASSIGNED, ASSIGNED, APPROVING, APPROVED, DENIED"),
    "bills:approvers[].status": _values("WAITING, APPROVED, DENIED, REROUTED, UNDEFINED"),
    "invoices:status": _values("OPEN, PARTIAL_PAYMENT, PAID, PAID_IN_FULL, SCHEDULED, VOID, UNDEFINED"),
    "payments:status": _values("APPROVING, PAID, VOID, SCHEDULED, FAILED, PENDING, CANCELLED, UNDEFINED"),
    "payments:disbursementType": _values("ACH, CHECK, RPPS, INTERNATIONAL, VCARD, WALLET, OFFLINE, AMEX, UNDEFINED"),
    "payments:disbursementStatus": _values("DONE, FAILED, IN_PROGRESS, HOLD, UNDEFINED"),
    "payments:singleStatus": _values(
        "CLEARED, VOID_PENDING, SCHEDULED, PAID, FAILED, EXPIRING, FUNDING_STARTED, UNDEFINED"
    ),
    "credit_memos:status": _values("NOT_APPLIED, PARTIALLY_APPLIED, FULLY_APPLIED, UNDEFINED"),
    "vendor_credits:status": _values("NOT_APPLIED, PARTIALLY_APPLIED, FULLY_APPLIED, UNDEFINED"),
    "chart_of_accounts:account.type": _values(
        "ACCOUNTS_PAYABLE, ACCOUNTS_RECEIVABLE, BANK, COST_OF_GOODS_SOLD, CREDIT_CARD, "
        "EQUITY, EXPENSE, FIXED_ASSET, INCOME, LONG_TERM_LIABILITY, OTHER_ASSET, "
        "OTHER_CURRENT_LIABILITY, UNSPECIFIED"
    ),
    "users:role.type": _values(ROLE_TYPES),
    "roles:type": _values(f"{ROLE_TYPES}, MEMBER, PURCHASE_REQUESTER"),
}


@dataclass(frozen=True)
class SharedPiece:
    """A sub-schema written once to schemas/shared/<name>.json and used through $ref.

    Its content is the union of every occurrence in the field lists, so an occurrence
    with fewer keys still gets all of them (all are optional); two occurrences that give
    the same key different schemas are an error.
    """

    name: str
    description: str
    property_names: frozenset[str] = frozenset()  # object properties holding this shape
    array_property_names: frozenset[str] = frozenset()  # array properties whose items have it
    string_format: str | None = None  # or: every string property with this format

    @property
    def ref(self) -> JsonSchema:
        return {"$ref": f"{self.name}.json"}

    def matches(self, key: str, node: JsonSchema) -> bool:
        if self.string_format is not None:
            return node.get("format") == self.string_format
        return key in self.property_names

    def matches_items(self, key: str) -> bool:
        return key in self.array_property_names


SHARED_PIECES: tuple[SharedPiece, ...] = (
    SharedPiece(
        name="timestamp",
        description=("BILL date-time: ISO-8601 with milliseconds and offset, e.g. 2024-10-16T13:36:31.000+00:00."),
        string_format="date-time",
    ),
    SharedPiece(
        name="address",
        description=("Postal address: a vendor's address, a customer's billing or shipping address."),
        property_names=frozenset({"address", "billingAddress", "shippingAddress", "mailingAddress"}),
    ),
    SharedPiece(
        name="classifications",
        description=("Accounting classifications of a document or line item; each object uses a subset of these ids."),
        property_names=frozenset({"classifications"}),
    ),
    SharedPiece(
        name="account_reference",
        description="Reference to a funding or receivables account: its id and type.",
        property_names=frozenset({"fundingAccount", "receivablesAccount"}),
    ),
    SharedPiece(
        name="payable_line_item",
        description="Line item of a bill, recurring bill or vendor credit.",
        array_property_names=frozenset({"billLineItems", "recurringBillLineItems", "vendorCreditLineItems"}),
    ),
    SharedPiece(
        name="receivable_line_item",
        description="Line item of an invoice, recurring invoice or credit memo.",
        array_property_names=frozenset({"invoiceLineItems", "recurringInvoiceLineItems", "creditMemoLineItems"}),
    ),
)

# Key order of schema keywords in the written files; properties are sorted by name.
KEYWORD_ORDER: tuple[str, ...] = (
    "$schema",
    "$ref",
    "description",
    "type",
    "format",
    "airbyte_type",
    "additionalProperties",
    "properties",
    "items",
)

TIMESTAMP_EXTRAS: JsonSchema = {"airbyte_type": "timestamp_with_timezone"}


class SchemaError(ValueError):
    """The field lists cannot be turned into schemas under the rules above."""


def _types(node: Mapping[str, Any]) -> list[str]:
    raw = node.get("type", [])
    return [raw] if isinstance(raw, str) else list(raw)


def _shape(node: Mapping[str, Any]) -> tuple[list[str], str | None]:
    return _types(node), node.get("format")


def normalise(node: Mapping[str, Any], path: str) -> JsonSchema:
    """Make a field-list node nullable and open: no required, no enum, extra keys ok."""
    out: JsonSchema = {}
    for key, value in node.items():
        if key in (
            "$schema",
            "required",
            "additionalProperties",
            "properties",
            "items",
            "type",
        ):
            continue
        if key == "enum":
            out.setdefault(
                "description",
                _values(", ".join(str(v) for v in value if v is not None)),
            )
            continue
        out[key] = copy.deepcopy(value)
    types = _types(node)
    if not types:
        raise SchemaError(f"{path}: no type")
    out["type"] = ["null", *[t for t in types if t != "null"]]
    if "object" in types:
        out["additionalProperties"] = True
        props = node.get("properties", {})
        out["properties"] = {name: normalise(child, f"{path}.{name}") for name, child in props.items()}
    if "array" in types:
        out["items"] = normalise(node.get("items", {"type": "object"}), f"{path}[]")
    return out


def _node_at(schema: JsonSchema, dotted: str) -> JsonSchema:
    node = schema
    for part in dotted.split("."):
        is_array = part.endswith("[]")
        name = part[:-2] if is_array else part
        try:
            node = node["properties"][name]
            if is_array:
                node = node["items"]
        except KeyError:
            raise SchemaError(f"no field at {dotted}") from None
    return node


def stream_schema(name: str, fields: Mapping[str, Any]) -> JsonSchema:
    """The stream's schema with every field inline (shared pieces not yet taken out)."""
    source, key_and_cursor = MORE_STREAMS.get(name, (name, {} if name in STREAMS_WITHOUT_ID else ID_AND_CURSOR))
    if source not in fields:
        raise SchemaError(f"{source}: not in the fields files")
    body = normalise(fields[source], name)
    properties: JsonSchema = body["properties"]
    if name in SPEND_STREAMS:
        key_and_cursor = SPEND_KEYS.get(name, {"id": _field("string")})
    ensured = {**key_and_cursor, **NEWER_FIELDS.get(name, {})}
    for field_name, field_schema in ensured.items():
        present = properties.get(field_name)
        if present is None:
            properties[field_name] = copy.deepcopy(field_schema)
        elif _shape(present) != _shape(field_schema):
            raise SchemaError(f"{name}.{field_name}: fields file has {present}, want {field_schema}")
    for key, description in DESCRIPTIONS.items():
        stream, dotted = key.split(":", 1)
        if stream == name:
            _node_at(body, dotted)["description"] = description
    return {
        "$schema": DRAFT_07,
        "type": "object",
        "additionalProperties": True,
        "properties": properties,
    }


class SharedPieceCollector:
    """Replaces shared shapes by $ref and accumulates each piece's content."""

    def __init__(self, pieces: Sequence[SharedPiece]) -> None:
        self.pieces = pieces
        self.content: dict[str, JsonSchema] = {}

    def extract(self, node: JsonSchema, path: str) -> JsonSchema:
        """Return node with shared shapes replaced by refs, innermost first."""
        out = dict(node)
        if "properties" in node:
            out["properties"] = {
                key: self._extract_property(key, child, f"{path}.{key}") for key, child in node["properties"].items()
            }
        if "items" in node:
            out["items"] = self.extract(node["items"], f"{path}[]")
        return out

    def _extract_property(self, key: str, child: JsonSchema, path: str) -> JsonSchema:
        child = self.extract(child, path)
        for piece in self.pieces:
            if piece.matches(key, child):
                self._merge(piece, child, path)
                return piece.ref
            if piece.matches_items(key):
                if "items" not in child:
                    raise SchemaError(f"{path}: expected an array for {piece.name}")
                self._merge(piece, child["items"], f"{path}[]")
                return {**child, "items": piece.ref}
        return child

    def _merge(self, piece: SharedPiece, node: JsonSchema, path: str) -> None:
        current = self.content.get(piece.name)
        if current is None:
            self.content[piece.name] = copy.deepcopy(node)
            return
        shell = {k: v for k, v in node.items() if k != "properties"}
        current_shell = {k: v for k, v in current.items() if k != "properties"}
        if shell != current_shell:
            raise SchemaError(f"{path}: {shell} differs from shared {piece.name} {current_shell}")
        if "properties" not in node:
            return
        merged = current.setdefault("properties", {})
        for key, child in node["properties"].items():
            if key in merged and merged[key] != child:
                raise SchemaError(f"{path}.{key}: {child} differs from {piece.name}: {merged[key]}")
            merged.setdefault(key, copy.deepcopy(child))

    def shared_files(self) -> dict[str, JsonSchema]:
        files: dict[str, JsonSchema] = {}
        for piece in self.pieces:
            content = self.content.get(piece.name)
            if content is None:
                raise SchemaError(f"shared piece {piece.name} matches no field: fix or remove it")
            schema = {"description": piece.description, **content}
            if piece.string_format == "date-time":
                schema.update(TIMESTAMP_EXTRAS)
            files[f"shared/{piece.name}.json"] = schema
        return files


def ordered(schema: JsonSchema) -> JsonSchema:
    """Keywords in KEYWORD_ORDER (others after, by name); property names sorted."""
    rank = {keyword: index for index, keyword in enumerate(KEYWORD_ORDER)}
    out: JsonSchema = {}
    for key in sorted(schema, key=lambda k: (rank.get(k, len(rank)), k)):
        value = schema[key]
        if key == "properties":
            out[key] = {name: ordered(value[name]) for name in sorted(value)}
        elif isinstance(value, dict):
            out[key] = ordered(value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def build(fields: Mapping[str, Any], spend_fields: Mapping[str, Any] | None = None) -> dict[str, JsonSchema]:
    """All schema files, keyed by path relative to the schemas directory."""
    collector = SharedPieceCollector(SHARED_PIECES)
    files: dict[str, JsonSchema] = {}
    for name in (*STREAMS, *(MORE_STREAMS if all(s in fields for s, _ in MORE_STREAMS.values()) else ())):
        files[f"{name}.json"] = collector.extract(stream_schema(name, fields), name)
    files.update(collector.shared_files())
    for name in SPEND_STREAMS if spend_fields is not None else ():
        files[f"{name}.json"] = stream_schema(name, spend_fields or {})
    return {path: ordered(schema) for path, schema in sorted(files.items())}


def render(schema: JsonSchema) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write(files: Mapping[str, JsonSchema], out: Path) -> None:
    for relative, schema in files.items():
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(schema), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--fields",
        type=Path,
        default=DEFAULT_FIELDS,
        help=f"field lists (default {DEFAULT_FIELDS})",
    )
    parser.add_argument(
        "--spend-fields",
        type=Path,
        default=DEFAULT_SPEND_FIELDS,
        help=f"Spend & Expense field lists (default {DEFAULT_SPEND_FIELDS})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="schemas directory (default source_bill/schemas)",
    )
    parser.add_argument(
        "--more-fields",
        type=Path,
        default=DEFAULT_MORE_FIELDS,
        help=f"field lists of the streams beyond the 22 lists (default {DEFAULT_MORE_FIELDS})",
    )
    args = parser.parse_args(argv)
    fields = json.loads(args.fields.read_text(encoding="utf-8"))
    spend_fields = json.loads(args.spend_fields.read_text(encoding="utf-8"))
    for key, value in json.loads(args.more_fields.read_text(encoding="utf-8")).items():
        if key in fields and key != "_note":
            print(f"generate_schemas: {key} is in both fields files", file=sys.stderr)
            return 1
        fields.setdefault(key, value)
    try:
        files = build(fields, spend_fields)
    except SchemaError as error:
        print(f"generate_schemas: {error}", file=sys.stderr)
        return 1
    write(files, args.out)
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
