"""BILL Spend & Expense (S&E) under {base}/v3/spend/, for the emulator (standard library only).

    emu.spend.token                       # the default API token (header apiToken); emu.spend.bearer_tokens: Bearer
    emu.spend.records("transactions")     # deep copy of a list as S&E holds it (budgets: the hidden ones too)
    emu.spend.edit("transactions", tid)   # updatedTime = now (the row leaves every past updatedTime window)
    emu.spend.delete("cards", cid)        # hard delete: the row vanishes
    emu.spend.set_updated_time("transactions", tid, iso)
    emu.spend.add_transactions(n, iso)    # n transactions with one updatedTime (dense milliseconds)
    emu.spend.before_serve(cb)            # cb(spend, kind, index) before each list page is served
                                          # (kind: a list, or "members" / "values" for the per-parent lists)
    emu.spend.settings.per_minute / retry_after / hidden_budgets / hide_elsewhere_budgets
    emu.spend.settings.delete_while_paging = {"cards": 2}   # before each of the next 2 pages asked at an offset
                                          # above 0, hard-delete one row before that offset (rows shift back)
    emu.spend.settings.opaque_cursors     # nextPage not of the form base64("arrayconnection:<offset>")
    emu.spend.deleted_while_paging        # [(kind, id or userId)] of those deletes
    emu.spend.elsewhere_budget_ids        # budgets only a transaction / a reimbursement / a custom field references
    emu.spend.accepted_at, emu.spend.rejected_429, emu.spend.requests_by_kind

What it does like S&E (bill-api.md 13.2): the cursor comes back as ``nextPage`` (base64 of
``arrayconnection:<offset>``; offsets into the current filtered list, so rows shift when others leave);
``page`` is ignored (the first page again); ``max`` default 20, at most 100, transactions 50; ``filters`` on
transactions' ``updatedTime``/``authorizedTime``/``occurredTime`` with gte/lte, values quoted; ``sort`` only
amount, merchantName, occurredTime (others 400); 60 requests a minute per token in a moving window of the
emulator clock (429 + Retry-After); transactions listed by occurredTime, newest first; the budgets list omits
``hidden_budgets`` budgets that cards reference and the budgets that only a transaction, only a reimbursement or only
a custom field (its ``requiredBudgetIds``) references, while GET /v3/spend/budgets/{id} returns them.
"""

from __future__ import annotations

import base64
import collections
import functools
import json
import math
import random
import threading
from typing import Any, Callable

from .filters import format_ms, parse_instant_ms, split_outside_quotes

DEFAULT_SPEND_TOKEN = "emulator-spend-api-token-4f9a1c"
SPEND_SIZES = {"users": 12, "budgets": 8, "cards": 30, "transactions": 400, "reimbursements": 40, "custom_fields": 3}
LISTS = ("transactions", "cards", "budgets", "users", "reimbursements", "custom-fields")
TRANSACTION_FILTERS = ("updatedTime", "authorizedTime", "occurredTime")
TRANSACTION_SORTS = ("amount", "merchantName", "occurredTime")
DAY_MS = 86_400_000

Answer = tuple  # (status, body bytes, content type, headers)


class SpendSettings:
    def __init__(self) -> None:
        self.per_minute: int | None = 60
        self.retry_after: float | None = None  # None: the seconds until the window has room
        self.hidden_budgets: int = 2  # of the budgets cards reference, the last this many
        self.hide_elsewhere_budgets: bool = True  # also the budgets only a transaction or a reimbursement references
        self.delete_while_paging: dict[str, int] = {}  # list kind -> rows still to delete, one a page (see above)
        self.opaque_cursors: bool = False


class SpendError(Exception):
    def __init__(self, status: int, message: str, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


_instant_ms = functools.lru_cache(maxsize=1 << 16)(parse_instant_ms)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _cursor(offset: int, opaque: bool = False) -> str:
    if opaque:
        return base64.urlsafe_b64encode(f"pos|{offset:x}|emulator".encode()).decode().rstrip("=")
    return base64.b64encode(f"arrayconnection:{offset}".encode()).decode()


def _offset(token: str) -> int:
    try:
        if token.startswith("cG9zf"):  # opaque_cursors: "pos|<hex>|emulator"
            offset = int(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split("|")[1], 16)
            return offset
        kind, _, number = base64.b64decode(token, validate=True).decode().partition(":")
        offset = int(number)
    except (ValueError, UnicodeDecodeError, IndexError):
        raise SpendError(400, "nextPage: invalid cursor") from None
    if kind != "arrayconnection" or offset < 0:
        raise SpendError(400, "nextPage: invalid cursor")
    return offset


class SpendEmulator:
    def __init__(self, clock_ms: Callable[[], int], seed: int = 1, sizes: dict[str, int] | None = None) -> None:
        self._now = clock_ms
        self.settings = SpendSettings()
        self.token = DEFAULT_SPEND_TOKEN
        self.bearer_tokens: set[str] = set()
        self.bearer_valid: Callable[[str], bool] | None = None  # the emulator's OAuth tokens, when it has them
        self._lock = threading.RLock()
        self._rng = random.Random(seed * 7919 + 15)
        self._sent: dict[str, collections.deque] = {}
        self.accepted_at: list[float] = []  # emulator-clock seconds of every request that was answered
        self.rejected_429 = 0
        self.requests_by_kind: dict[str, int] = {}
        self._callbacks: list[Callable] = []
        self._served = {kind: 0 for kind in (*LISTS, "members", "values")}
        self.deleted_while_paging: list[tuple[str, str]] = []
        self.elsewhere_budget_ids: list[str] = []
        self._data: dict[str, list[dict]] = {kind: [] for kind in LISTS}
        self.members: dict[str, list[dict]] = {}
        self.values: dict[str, list[dict]] = {}
        self._generate({**SPEND_SIZES, **(sizes or {})})

    # ------------------------------------------------------------------ data
    def _id(self, prefix: str) -> str:
        return prefix + "".join(self._rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(14))

    def _uuid(self) -> str:
        return "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}".format(
            *tuple(self._rng.getrandbits(b) for b in (32, 16, 12, 12, 48))
        )

    def _generate(self, sizes: dict[str, int]) -> None:
        now = self._now()
        users = [
            {
                "id": self._id("usr_"),
                "uuid": self._uuid(),
                "firstName": f"First{i}",
                "lastName": f"Last{i}",
                "email": f"spender{i}@example.com",
                "retired": False,
                "role": "ADMIN" if i == 0 else "MEMBER",
                "createdTime": format_ms(now - (400 - i) * DAY_MS),
            }
            for i in range(max(1, sizes["users"]))
        ]
        self.user_id = users[0]["id"]
        budgets = [
            {
                "id": self._id("bgt_"),
                "uuid": self._uuid(),
                "name": f"Budget {i}",
                "retired": False,
                "recurringInterval": "MONTHLY",
                "currentPeriod": {"limit": 1000.0 * (i + 1), "spent": {"cleared": 10.0 * i, "pending": 0.0}},
            }
            for i in range(max(1, sizes["budgets"]))
        ]
        for budget in budgets:
            self.members[budget["id"]] = [
                {"userId": user["id"], "userUuid": user["uuid"], "budgetRole": "MEMBER", "name": user["firstName"]}
                for user in self._rng.sample(users, k=min(len(users), 3))
            ]
        cards = []
        for i in range(sizes["cards"]):
            user, budget = users[i % len(users)], budgets[i % len(budgets)]
            created = now - self._rng.randrange(DAY_MS, 300 * DAY_MS)
            cards.append(
                {
                    "id": self._id("crd_"),
                    "uuid": self._uuid(),
                    "name": f"Card {i}",
                    "userId": user["id"],
                    "budgetId": budget["id"],
                    "lastFour": f"{1000 + i}",
                    "status": "ACTIVE",
                    "type": "VIRTUAL",
                    "createdTime": format_ms(created),
                    "updatedTime": format_ms(created + self._rng.randrange(DAY_MS)),
                }
            )
        fields = [
            {
                "id": self._id("cfd_"),
                "uuid": self._uuid(),
                "name": f"Field {i}",
                "type": "CUSTOM_SELECTOR",
                "global": False,
                "selectedBudgetIds": [budgets[i % len(budgets)]["id"]],
                "requiredBudgetIds": [],
            }
            for i in range(sizes["custom_fields"])
        ]
        for i, custom_field in enumerate(fields):
            self.values[custom_field["id"]] = [
                {"id": self._id("cfv_"), "uuid": self._uuid(), "value": f"Value {i}.{j}"} for j in range(3 + i * 60)
            ]
        reimbursements = [
            {
                "id": self._id("rmb_"),
                "uuid": self._uuid(),
                "amount": round(self._rng.uniform(5, 500), 2),
                "status": "APPROVED",
                "userId": users[i % len(users)]["id"],
                "budgetId": budgets[i % len(budgets)]["id"],
                "submittedTime": format_ms(now - self._rng.randrange(DAY_MS, 200 * DAY_MS)),
            }
            for i in range(sizes["reimbursements"])
        ]
        self._data.update(
            {
                "users": users,
                "budgets": budgets,
                "cards": cards,
                "custom-fields": fields,
                "reimbursements": reimbursements,
            }
        )
        for _ in range(sizes["transactions"]):
            self._data["transactions"].append(self._transaction(now - self._rng.randrange(DAY_MS, 365 * DAY_MS)))
        self._card_budget_ids = {budget["id"] for budget in budgets}  # the budgets cards reference
        # a budget only one row of each kind references
        for kind in ("transactions", "reimbursements", "custom-fields"):
            if self._data[kind]:
                budget = {**budgets[0], "id": self._id("bgt_"), "uuid": self._uuid(), "name": f"Budget of {kind}"}
                self._data["budgets"].append(budget)
                self.members[budget["id"]] = [dict(m) for m in self.members[budgets[0]["id"]]]
                if kind == "custom-fields":  # a field required on that budget's expenses
                    self._data[kind][0]["requiredBudgetIds"] = [budget["id"]]
                else:
                    self._data[kind][0]["budgetId"] = budget["id"]
                self.elsewhere_budget_ids.append(budget["id"])

    def _transaction(self, updated_ms: int) -> dict:
        card = self._rng.choice(self._data["cards"]) if self._data["cards"] else {}
        occurred = updated_ms - self._rng.randrange(0, 3 * DAY_MS)
        return {
            "id": self._id("txn_"),
            "uuid": self._uuid(),
            "transactionType": "CLEARED",
            "userId": card.get("userId"),
            "budgetId": card.get("budgetId"),
            "merchantName": self._rng.choice(["Acme Air", "Cafe Uno", "Hotel Nord", "Taxi Co"]),
            "amount": round(self._rng.uniform(1, 900), 2),
            "isParent": True,
            "childTransactionIds": [],
            "occurredTime": format_ms(occurred),
            "authorizedTime": format_ms(occurred),
            "updatedTime": format_ms(updated_ms),
        }

    def records(self, kind: str) -> list[dict]:
        with self._lock:
            return json.loads(json.dumps(self._data[kind]))

    def hidden_budget_ids(self) -> list[str]:
        """The budgets the list omits: the last ``hidden_budgets`` of those cards reference, then the budgets only
        a transaction or a reimbursement references (``hide_elsewhere_budgets``)."""
        with self._lock:
            count = self.settings.hidden_budgets
            cards = [b["id"] for b in self._data["budgets"] if b["id"] in self._card_budget_ids]
            hidden = cards[len(cards) - count :] if count else []
            if self.settings.hide_elsewhere_budgets:
                present = {b["id"] for b in self._data["budgets"]}
                hidden += [b for b in self.elsewhere_budget_ids if b in present]
            return hidden

    def _find(self, kind: str, row_id: str) -> int:
        for i, row in enumerate(self._data[kind]):
            if row["id"] == row_id:
                return i
        raise KeyError(f"no {kind} row {row_id!r}")

    def edit(self, kind: str, row_id: str, changes: dict | None = None) -> dict:
        """Change a row; rows with updatedTime get updatedTime = now."""
        with self._lock:
            i = self._find(kind, row_id)
            row = {**self._data[kind][i], **(changes or {})}
            if "updatedTime" in row:
                row["updatedTime"] = format_ms(self._now())
            self._data[kind][i] = row
            return dict(row)

    def set_updated_time(self, kind: str, row_id: str, iso: str) -> None:
        with self._lock:
            i = self._find(kind, row_id)
            self._data[kind][i] = {**self._data[kind][i], "updatedTime": format_ms(parse_instant_ms(iso))}

    def delete(self, kind: str, row_id: str) -> None:
        with self._lock:
            del self._data[kind][self._find(kind, row_id)]

    def add_transactions(self, count: int, updated_iso: str | None = None) -> list[dict]:
        with self._lock:
            updated = parse_instant_ms(updated_iso) if updated_iso else self._now()
            rows = [self._transaction(updated) for _ in range(count)]
            self._data["transactions"].extend(rows)
            return json.loads(json.dumps(rows))

    def before_serve(self, callback: Callable) -> Callable:
        self._callbacks.append(callback)
        return callback

    # ------------------------------------------------------------------ requests
    def handle(self, method: str, rel: str, query: dict, headers: Any) -> Answer:
        try:
            key = self._authenticate(headers)
            wait = self._rate(key)
            if wait is not None:
                retry_after = self.settings.retry_after if self.settings.retry_after is not None else wait
                body = [{"code": "TOO_MANY_REQUESTS", "message": "Rate limit exceeded: 60 requests a minute"}]
                return 429, _json(body), "application/json", [("Retry-After", str(math.ceil(retry_after)))]
            if method != "GET":
                raise SpendError(404, "Not found", "NOT_FOUND")
            return 200, self._route(rel[len("/v3/spend/") :].strip("/"), query), "application/json", []
        except SpendError as err:
            return err.status, _json([{"code": err.code, "message": err.message}]), "application/json", []

    def _authenticate(self, headers: Any) -> str:
        token = headers.get("apiToken")
        if token is not None and token == self.token:
            return "token:" + token
        bearer = headers.get("Authorization") or ""
        if bearer.startswith("Bearer ") and (
            bearer[7:] in self.bearer_tokens or (self.bearer_valid is not None and self.bearer_valid(bearer[7:]))
        ):
            return bearer
        raise SpendError(401, "Invalid or missing API token", "UNAUTHORIZED")

    def _rate(self, key: str) -> float | None:
        """None when the request may go (then it is counted); else the seconds until the window has room."""
        now = self._now() / 1000
        with self._lock:
            sent = self._sent.setdefault(key, collections.deque())
            while sent and sent[0] <= now - 60:
                sent.popleft()
            limit = self.settings.per_minute
            if limit is not None and len(sent) >= limit:
                self.rejected_429 += 1
                return max(0.0, sent[0] + 60 - now)
            sent.append(now)
            self.accepted_at.append(now)
            return None

    def _route(self, path: str, query: dict) -> bytes:
        parts = path.split("/")
        kind = parts[0]
        self.requests_by_kind[kind] = self.requests_by_kind.get(kind, 0) + 1
        if path == "users/current":
            with self._lock:
                return _json(next(u for u in self._data["users"] if u["id"] == self.user_id))
        if len(parts) == 1 and kind in LISTS:
            return self._list(kind, query)
        if kind == "budgets" and len(parts) in (2, 3):
            with self._lock:
                budget = next((b for b in self._data["budgets"] if b["id"] == parts[1]), None)
            if budget is None:
                raise SpendError(404, f"Budget {parts[1]} not found", "NOT_FOUND")
            if len(parts) == 2:
                return _json(budget)
            if parts[2] == "members":
                self._before_serve("members")
                with self._lock:
                    store = self.members.setdefault(parts[1], [])
                    return self._page("members", store, list(store), query, 100)
        if kind == "custom-fields" and len(parts) == 3 and parts[2] == "values" and parts[1] in self.values:
            self._before_serve("values")
            with self._lock:
                return self._page("values", self.values[parts[1]], list(self.values[parts[1]]), query, 100)
        raise SpendError(404, "Not found", "NOT_FOUND")

    def _list(self, kind: str, query: dict) -> bytes:
        limit = 50 if kind == "transactions" else 100
        predicates = self._filters(kind, query.get("filters") or "")
        sort = self._sort(kind, query.get("sort") or "")
        self._before_serve(kind)
        with self._lock:
            rows = list(self._data[kind])
            if kind == "budgets":
                hidden = set(self.hidden_budget_ids())
                rows = [b for b in rows if b["id"] not in hidden]
            rows = [r for r in rows if all(p(r) for p in predicates)]
            if kind == "transactions":
                rows.sort(key=lambda r: r["id"])
                rows.sort(key=lambda r: r["occurredTime"], reverse=True)
            if sort is not None:
                field, descending = sort
                rows.sort(key=lambda r: r.get(field) or "", reverse=descending)
            return self._page(kind, self._data[kind], rows, query, limit)

    def _before_serve(self, kind: str) -> None:
        with self._lock:
            index = self._served[kind]
            self._served[kind] = index + 1
        for callback in list(self._callbacks):
            callback(self, kind, index)

    def _page(self, kind: str, store: list, rows: list, query: dict, limit: int) -> bytes:
        """A page of ``rows`` (the list as filtered and sorted now; ``store`` holds them, for deletes)."""
        raw_max = query.get("max")
        try:
            size = 20 if raw_max is None else int(raw_max)
        except ValueError:
            raise SpendError(400, f"max: invalid value {raw_max!r}") from None
        if size > limit:
            raise SpendError(400, f"max: must be less than or equal to {limit}")
        if size < 1:
            raise SpendError(400, "max: must be greater than or equal to 1")
        token = query.get("nextPage")  # `page` is ignored: the first page again
        offset = _offset(token) if token else 0
        served = rows[: min(offset, len(rows))]
        if served and self.settings.delete_while_paging.get(kind):  # a row the read already has: rows behind shift
            self.settings.delete_while_paging[kind] -= 1
            row = served[self._rng.randrange(len(served))]
            rows.remove(row)
            store.remove(row)
            self.deleted_while_paging.append((kind, row.get("id") or row.get("userId")))
        page = rows[offset : offset + size]
        more = offset + size < len(rows)
        return _json(
            {
                "nextPage": _cursor(offset + size, self.settings.opaque_cursors) if more else None,
                "prevPage": _cursor(max(0, offset - size), self.settings.opaque_cursors) if offset else None,
                "results": page,
            }
        )

    @staticmethod
    def _filters(kind: str, text: str) -> list[Callable[[dict], bool]]:
        predicates: list[Callable[[dict], bool]] = []
        for clause in split_outside_quotes(text) if text.strip() else []:
            field, op, value = ([*clause.split(":", 2), "", ""])[:3]
            if kind != "transactions" or field not in TRANSACTION_FILTERS or op not in ("gte", "lte"):
                raise SpendError(400, f"filters: unsupported filter {clause!r}")
            if not (len(value) >= 2 and value[0] == value[-1] == '"'):
                raise SpendError(400, f"filters: invalid value in {clause!r}")
            try:
                bound = parse_instant_ms(value[1:-1])
            except ValueError:
                raise SpendError(400, f"filters: invalid date-time in {clause!r}") from None

            def predicate(row: dict, field: str = field, op: str = op, bound: int = bound) -> bool:
                if not row.get(field):
                    return False
                at = _instant_ms(row[field])
                return at >= bound if op == "gte" else at <= bound

            predicates.append(predicate)
        return predicates

    @staticmethod
    def _sort(kind: str, text: str) -> tuple[str, bool] | None:
        if not text.strip():
            return None
        field, _, direction = text.partition(":")
        if kind != "transactions" or field not in TRANSACTION_SORTS or direction not in ("", "asc", "desc"):
            raise SpendError(400, f"sort: unsupported sort {text!r}")
        return field, direction == "desc"
