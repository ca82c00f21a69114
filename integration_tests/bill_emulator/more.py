"""The BILL objects beyond the 22 lists, for the emulator: their own shapes, paging and files.

    emu.more.admin = False                      # the signed-in user is not an Administrator: organization and
                                                # billing statements answer 403
    emu.more.sync_tokens["sync-name"] = "value"  # sign in with a sync token (a system user, id syu...)
    emu.more.children("bills", bill_id)         # the documents of a bill (kinds: bills, vendors, customers, invoices)
    emu.more.add_child("vendors", vendor_id)    # a new attachment; the parent's updatedTime moves to now
    emu.more.set_file(doc_id, data) / set_scan_status(doc_id, "INFECTED") / file_bytes(doc_id)
    emu.more.link_ttl_s = 60                    # download links expire (403) this long after the row was served
    emu.more.expired_links = 1                  # the next row is served with a link that has already expired
    emu.more.downloads                          # how many files were served

Shapes (BILL's v3 Postman collection): organization is one object; billing statements and the child lists use
the standard envelope with ``max``/``page``; card accounts answer ``{rates, cards}`` and require
``cardUserStatus`` (VERIFIED or NOMINATED, no card in both); AP cards and approval policies are bare arrays;
pending approvals answer ``{bills: [...]}`` and refuse a sync-token session with ``BDC_1302``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import random
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .filters import ApiError, format_ms

if TYPE_CHECKING:
    from .server import BillEmulator, _Response

# A child list: BILL path prefix -> parent stream of the emulator.
CHILD_KINDS = {"bills": "bills", "vendors": "vendors", "customers": "customers", "invoices": "invoices"}
CHILD_PATHS = {
    "bills": "/v3/documents/bills/",
    **{k: f"/v3/attachments/{k}/" for k in ("vendors", "customers", "invoices")},
}
CARD_STATUSES = ("VERIFIED", "NOMINATED")
SCAN_STATUSES = ("NOT_SCANNED", "CLEAN", "INFECTED", "IN_QUEUE", "REJECTED", "UNDEFINED")
SYSTEM_USER_PREFIX = "syu"


def _b(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class MoreObjects:
    """State and routes of the objects beyond the 22 lists; owned by one BillEmulator."""

    def __init__(self, emu: BillEmulator) -> None:
        self.emu = emu
        self.admin = True
        self.sync_tokens: dict[str, str] = {}
        self.link_ttl_s: float = 3600.0
        self.expired_links = 0  # the next this many rows are served with a link that has already expired
        self.downloads = 0
        self._lock = threading.RLock()
        self._secret = hashlib.sha256(f"bill-emulator-files-{emu.seed}".encode()).digest()
        rng = random.Random(emu.seed * 1009 + 14)
        self._rng = rng
        self._children: dict[tuple[str, str], list[dict]] = {}
        self._files: dict[str, bytes] = {}
        self._scan: dict[str, str] = {}
        self._owner: dict[str, tuple[str, str]] = {}  # document id -> (kind, parent id)
        self._counter = 0
        base_ms = emu._now_ms() - 400 * 86_400_000
        self.cards = {
            status: [self._card(rng, base_ms, status, i) for i in range(n)]
            for status, n in (("VERIFIED", 3), ("NOMINATED", 2))
        }
        self.rates = {"cardFeePercent": 2.9, "internationalFeePercent": 1.0}
        self.ap_cards = [self._ap_card(rng, base_ms, i) for i in range(4)]
        self.policies = [self._policy(rng, i) for i in range(3)]
        self.statements = [self._statement(rng, i) for i in range(27)]

    # ------------------------------------------------------------------ generated rows
    def _id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self.emu.seed:02d}{self._counter:013d}"

    def _card(self, rng: random.Random, base_ms: int, status: str, i: int) -> dict:
        created = base_ms + rng.randrange(86_400_000 * 300)
        return {
            "id": self._id("cat"),
            "archived": False,
            "createdTime": format_ms(created),
            "updatedTime": format_ms(created + rng.randrange(86_400_000 * 30)),
            "createdBy": self.emu.user_id,
            "issuingBankName": rng.choice(["First Bank", "River Credit Union"]),
            "nameOnAccount": f"Card holder {i}",
            "brand": rng.choice(["VISA", "MASTERCARD", "AMEX"]),
            "type": "CREDIT_CARD",
            "status": "ACTIVE" if status == "VERIFIED" else "PENDING",
            "last4": f"{rng.randrange(10000):04d}",
            "expiration": {"year": str(2027 + i), "month": f"{1 + i:02d}"},
            "default": {"payables": i == 0, "receivables": False, "funding": i == 0, "disbursement": False},
        }

    def _ap_card(self, rng: random.Random, base_ms: int, i: int) -> dict:
        created = base_ms + rng.randrange(86_400_000 * 300)
        return {
            "id": self._id("apc"),
            "status": rng.choice(["ACTIVE", "DRAFT", "INACTIVE"]),
            "nameOnAccount": f"AP card {i}",
            "createdTime": format_ms(created),
            "updatedTime": format_ms(created + 1000),
            "balance": round(rng.uniform(0, 5000), 2),
            "limit": 10000.0,
        }

    def _policy(self, rng: random.Random, i: int) -> dict:
        return {
            "id": self._id("apl"),
            "policyName": f"Policy {i}",
            "status": "ACTIVE",
            "rules": [{"key": "LOCATION_ID", "op": "IN", "values": [{"value": f"loc{i}", "displayName": f"L{i}"}]}],
            "approvers": {
                "users": [{"userId": self.emu.user_id, "fullName": "Emulator Admin"}],
                "groups": [{"groupName": "Finance", "groupId": f"grp{i}", "users": [{"id": "006x", "fullName": "F"}]}],
            },
        }

    def _statement(self, rng: random.Random, i: int) -> dict:
        year, month = 2024 + i // 12, 1 + i % 12
        row = {
            "id": self._id("bst"),
            "amount": round(rng.uniform(50, 500), 2),
            "billingPeriod": {"startDate": f"{year}-{month:02d}-01", "endDate": f"{year}-{month:02d}-28"},
            "description": f"BILL subscription {year}-{month:02d}",
            "invoiceDate": f"{year}-{month:02d}-28",
            "invoiceNumber": f"INV-{1000 + i}",
            "paymentStatus": "PAID" if i < 24 else "UNPAID",
        }
        if i < 24:  # BILL leaves unset fields out
            row["paymentDate"] = f"{year}-{month:02d}-28"
        return row

    def organization(self) -> dict:
        org = self.emu.credentials["organization_id"]
        return {
            "id": org,
            "archived": False,
            "name": "Emulator Demo Company",
            "address": {"line1": "1 Main St", "city": "San Jose", "country": "US", "zipOrPostalCode": "95002"},
            "phone": "555-0100",
            "industry": "Software",
            "accountType": "BUSINESS",
            "createdTime": "2020-01-01T00:00:00.000+00:00",
            "updatedTime": "2024-01-01T00:00:00.000+00:00",
        }

    def pending_approvals(self) -> list[dict]:
        bills = self.emu.records("bills")
        return [
            {"billId": b["id"], "vendorId": b.get("vendorId"), "amount": b.get("amount"), "dueDate": b.get("dueDate")}
            for i, b in enumerate(bills)
            if i % 7 == 3 and not b.get("archived")
        ][:25]

    # ------------------------------------------------------------------ children (documents, attachments)
    def _parent(self, kind: str, parent_id: str) -> dict:
        try:
            return self.emu.record(CHILD_KINDS[kind], parent_id)
        except KeyError:
            raise ApiError(404, "BDC_1205", f"Object not found: {parent_id}") from None

    def _child_rows(self, kind: str, parent_id: str) -> list[dict]:
        """The children of one parent, generated on first use (0 to 3, from the seed and the parent id)."""
        key = (kind, parent_id)
        with self._lock:
            rows = self._children.get(key)
            if rows is None:
                parent = self._parent(kind, parent_id)
                seed = int(hashlib.sha1(f"{self.emu.seed}|{kind}|{parent_id}".encode()).hexdigest()[:8], 16)
                rng = random.Random(seed)
                rows = self._children[key] = []
                for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
                    rows.append(self._new_child(kind, parent_id, parent.get("createdTime"), rng))
            return rows

    def _new_child(self, kind: str, parent_id: str, created: str | None, rng: random.Random) -> dict:
        prefix = "00h" if kind == "bills" else "att"
        number = len(self._children.get((kind, parent_id)) or [])  # ids follow from the seed, not the access order
        doc_id = prefix + hashlib.sha1(f"{self.emu.seed}|{kind}|{parent_id}|{number}".encode()).hexdigest()[:15]
        size = rng.randrange(200, 4000)
        self._files[doc_id] = hashlib.shake_256(f"{doc_id}|{self.emu.seed}".encode()).digest(size)
        self._scan[doc_id] = "CLEAN"
        self._owner[doc_id] = (kind, parent_id)
        row = {"id": doc_id, "name": f"{doc_id}.pdf", "createdTime": created or self.emu.now_iso()}
        if kind == "bills":
            row["numOfPages"] = 1 + size % 4
        return row

    def children(self, kind: str, parent_id: str) -> list[dict]:
        """What a perfect read of one parent's list returns (rows without downloadLink)."""
        with self._lock:
            return [self._public(kind, r) for r in self._child_rows(kind, parent_id)]

    def _public(self, kind: str, row: dict) -> dict:
        out = copy.deepcopy(row)
        if kind == "bills":
            out["scanStatus"] = self._scan[row["id"]]
        return out

    def add_child(self, kind: str, parent_id: str, data: bytes | None = None) -> dict:
        """Attach a new document to a parent; the parent's updatedTime becomes now (BILL is assumed to do so)."""
        with self._lock:
            rows = self._child_rows(kind, parent_id)
            row = self._new_child(kind, parent_id, self.emu.now_iso(), self._rng)
            if data is not None:
                self._files[row["id"]] = data
            rows.append(row)
        self.emu.update_record(CHILD_KINDS[kind], parent_id, {})
        return self._public(kind, row)

    def set_file(self, doc_id: str, data: bytes) -> None:
        with self._lock:
            if doc_id not in self._files:
                raise KeyError(doc_id)
            self._files[doc_id] = data

    def file_bytes(self, doc_id: str) -> bytes:
        with self._lock:
            return self._files[doc_id]

    def set_scan_status(self, doc_id: str, status: str) -> None:
        with self._lock:
            if doc_id not in self._scan:
                raise KeyError(doc_id)
            self._scan[doc_id] = status

    def _signature(self, doc_id: str, expires: int) -> str:
        return hmac.new(self._secret, f"{doc_id}|{expires}".encode(), hashlib.sha256).hexdigest()[:24]

    def _with_link(self, kind: str, row: dict) -> dict:
        out = self._public(kind, row)
        expires = int((self.emu._now_s() + self.link_ttl_s) * 1000)
        if self.expired_links > 0:
            self.expired_links -= 1
            expires = int(self.emu._now_s() * 1000) - 1000
        query = urlencode({"expires": expires, "sig": self._signature(row["id"], expires)})
        out["downloadLink"] = f"{self.emu.base_url}/v3/files/{row['id']}?{query}"
        return out

    # ------------------------------------------------------------------ routes
    def route(self, rel: str, query: dict, session: dict) -> _Response | None:
        """The answer for a GET of one of these objects, or None when ``rel`` is none of them."""
        from .server import _Response

        org = self.emu.credentials["organization_id"]
        if rel.startswith("/v3/organizations/"):
            rest = rel[len("/v3/organizations/") :]
            org_id, _, sub = rest.partition("/")
            if org_id != org:
                raise ApiError(404, "BDC_1205", "Organization not found.")
            if not self.admin:
                return _Response(403, _b({"message": "Only an Administrator can access this resource."}))
            if sub == "":
                return _Response(200, _b(self.organization()))
            if sub == "billing-statements":
                return self._paged(rel, query, self.statements)
            raise ApiError(404, "BDC_1121", "API not supported.")
        if rel == "/v3/funding-accounts/cards":
            status = query.get("cardUserStatus")
            if not status:
                raise ApiError(400, "BDC_1001", "cardUserStatus: must not be null")
            if status not in CARD_STATUSES:
                raise ApiError(400, "BDC_1001", f"cardUserStatus: invalid value {status}")
            return _Response(200, _b({"rates": self.rates, "cards": self.cards[status]}))
        if rel == "/v3/funding-accounts/ap-cards":
            return _Response(200, _b(self.ap_cards))
        if rel == "/v3/bill-approvals/policies":
            return _Response(200, _b(self.policies))
        if rel == "/v3/bill-approvals/pending-user-approvals":
            user = str(session.get("user") or "")
            if user.startswith(SYSTEM_USER_PREFIX):
                raise ApiError(
                    400, "BDC_1302", f"The entity type of id {user} does not match the expected entity type User."
                )
            return _Response(200, _b({"bills": self.pending_approvals()}))
        for kind, prefix in CHILD_PATHS.items():
            if rel.startswith(prefix) and "/" not in rel[len(prefix) :] and rel != prefix:
                parent_id = rel[len(prefix) :]
                with self._lock:
                    rows = [self._with_link(kind, r) for r in self._child_rows(kind, parent_id)]
                return self._paged(rel, query, rows)
        if rel.startswith("/v3/files/"):
            return self._download(rel[len("/v3/files/") :], query)
        return None

    def _paged(self, key: str, query: dict, rows: list[dict]) -> _Response:
        from .server import _Response

        raw_max = query.get("max", "20")
        try:
            size = int(raw_max)
        except ValueError:
            raise ApiError(400, "BDC_1001", f"Invalid value for max: {raw_max}") from None
        if not 1 <= size <= 100:
            raise ApiError(400, "BDC_1001", "max must be between 1 and 100.")
        offset = 0
        token = query.get("page")
        if token:
            try:
                data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
                offset = int(data["o"])
                if data["k"] != key or offset < 0:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "BDC_1001", "Invalid page token.") from None
        body: dict[str, Any] = {}
        if offset + size < len(rows):
            raw = _b({"k": key, "o": offset + size})
            body["nextPage"] = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        body["results"] = rows[offset : offset + size]
        return _Response(200, _b(body))

    def _download(self, doc_id: str, query: dict) -> _Response:
        from .server import _Response

        with self._lock:
            data = self._files.get(doc_id)
            scan = self._scan.get(doc_id)
        if data is None:
            raise ApiError(404, "BDC_1205", f"Object not found: {doc_id}")
        try:
            expires = int(query.get("expires", ""))
        except ValueError:
            expires = -1
        if not hmac.compare_digest(self._signature(doc_id, expires), str(query.get("sig", ""))):
            return _Response(403, _b({"message": "The download link is not valid."}))
        if expires < self.emu._now_ms():
            return _Response(403, _b({"message": "The download link has expired."}))
        if scan in ("INFECTED", "REJECTED"):
            return _Response(403, _b({"message": f"The file is {scan}."}))
        with self._lock:
            self.downloads += 1
        return _Response(200, data, "application/pdf")
