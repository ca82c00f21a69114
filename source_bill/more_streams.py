"""BILL objects beyond the 22 lists: answers of other shapes, declared as small variations of BillStream.

Each stream says where its records are in BILL's answer (``records_key``: an envelope key, or None when the
answer itself is the records), whether the answer pages (``paged``), and, for card accounts, the one query
parameter that must be asked once per value. Paging, errors, skip rules (403, ``BDC_1302``) and the protocol
stay in BillStream. The child lists (documents and attachments per parent) are in ``children.py``.
"""

from __future__ import annotations

from abc import ABC
from typing import Any, ClassVar, Iterator, List, Mapping, MutableMapping, Optional, Tuple

import requests

from . import jsonparse
from .streams import BillStream, Page, PassTracker


class MoreStream(BillStream, ABC):
    """A full-refresh BILL object whose answer is not (only) the standard list envelope."""

    cursor_field = []
    records_key: ClassVar[Optional[str]] = "results"  # where the records are; None: the answer itself
    paged: ClassVar[bool] = True  # False: one answer holds everything (no max, no nextPage)
    one_object: ClassVar[bool] = False  # the answer is the one record itself

    def request_params(
        self,
        stream_state: Optional[Mapping[str, Any]],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> MutableMapping[str, Any]:
        params = super().request_params(stream_state, stream_slice, next_page_token)
        if not self.paged:
            params.pop("max", None)
        return params

    def next_page_token(self, response: requests.Response) -> Optional[Mapping[str, Any]]:
        return super().next_page_token(response) if self.paged else None

    def _records(self, response: requests.Response, page_number: int) -> List[Mapping[str, Any]]:
        if self.records_key == "results":
            return super()._records(response, page_number)
        try:
            body = jsonparse.loads(response.content)
        except ValueError:
            raise self._malformed(response, "the answer is not JSON") from None
        if self.records_key is not None:
            if not isinstance(body, dict):
                raise self._malformed(response, f"the answer is a JSON {type(body).__name__}, not an object")
            body = body.get(self.records_key)
        if self.one_object:
            body = [body] if isinstance(body, dict) else body
        if not isinstance(body, list):
            where = f"'{self.records_key}'" if self.records_key else "the answer"
            raise self._malformed(response, f"{where} is {type(body).__name__}, not a list")
        keys = [self.primary_key] if isinstance(self.primary_key, str) else list(self.primary_key)
        for record in body:
            if not isinstance(record, dict) or any(record.get(k) in (None, "") for k in keys):
                raise self._malformed(response, f"a record lacks its primary key {keys}: {str(record)[:200]}")
        return body


class Organization(MoreStream):
    """The organization itself (Administrator role): https://developer.bill.com/reference/getorganization"""

    records_key = None
    paged = False
    one_object = True

    def path(self, **kwargs: Any) -> str:
        return f"organizations/{self._config.organization_id}"


class BillingStatements(MoreStream):
    """What BILL bills the organization (Administrator role):
    https://developer.bill.com/reference/listorganizationbillingstatements"""

    def path(self, **kwargs: Any) -> str:
        return f"organizations/{self._config.organization_id}/billing-statements"


class CardAccounts(MoreStream):
    """Card funding accounts, asked once per card user status:
    https://developer.bill.com/reference/listcardaccounts"""

    object_path = "funding-accounts/cards"
    records_key = "cards"  # the answer is {rates, cards}; rates is a fee table, not a card
    paged = False
    per_value: ClassVar[Tuple[str, Tuple[str, ...]]] = ("cardUserStatus", ("VERIFIED", "NOMINATED"))

    def _pass(self, params: Mapping[str, Any], tracker: Optional[PassTracker]) -> Iterator[Page]:
        """One query per value of the required parameter; a card listed under both values is emitted once."""
        name, values = self.per_value
        seen: set[Any] = set()
        for value in values:
            for page in super()._pass({**params, name: value}, tracker):
                page.records = [r for r in page.records if r["id"] not in seen]
                seen.update(r["id"] for r in page.records)
                yield page


class ApCards(MoreStream):
    """The organization's AP cards: https://developer.bill.com/reference/listapcards"""

    object_path = "funding-accounts/ap-cards"
    records_key = None  # a bare JSON array
    paged = False


class BillApprovalPolicies(MoreStream):
    """Bill approval policies: https://developer.bill.com/reference/listbillapprovalpolicies"""

    object_path = "bill-approvals/policies"
    records_key = None  # a bare JSON array
    paged = False


class BillsPendingApproval(MoreStream):
    """Bills waiting for the signed-in user's approval (that user's queue, not the organization's; a sync token
    is refused with BDC_1302 and the stream is skipped): https://developer.bill.com/reference/listuserapprovals"""

    object_path = "bill-approvals/pending-user-approvals"
    primary_key = "billId"
    records_key = "bills"
    paged = False


MORE_STREAM_CLASSES: List[type[MoreStream]] = [
    Organization,
    BillingStatements,
    CardAccounts,
    ApCards,
    BillApprovalPolicies,
    BillsPendingApproval,
]
