"""BILL objects beyond the 22 lists: answers of other shapes, declared as small variations of BillStream.

Each stream declares its answer's shape as an ``Envelope``: where its records are (an envelope key, or None when
the answer itself is the records), whether the answer pages (``next_page=None``: one answer holds everything and no
``max`` is sent), whether it is one record (``one_object``); card accounts also declare the one query parameter that
must be asked once per value (``query_variants``). Paging, errors, skip rules (403, ``BDC_1302``) and the protocol
stay in BillStream. The child lists (documents and attachments per parent) are in ``children.py``.
"""

from __future__ import annotations

from abc import ABC
from typing import List

from .streams import BillStream, Envelope

BARE_ARRAY = Envelope(records=None, next_page=None)  # [...], everything in one answer


class MoreStream(BillStream, ABC):
    """A full-refresh BILL object whose answer is not (only) the standard list envelope."""

    cursor_field = []


class Organization(MoreStream):
    """The organization itself (Administrator role): https://developer.bill.com/reference/getorganization"""

    envelope = Envelope(records=None, next_page=None, one_object=True)

    def path(self) -> str:
        return f"organizations/{self._config.organization_id}"


class BillingStatements(MoreStream):
    """What BILL bills the organization (Administrator role):
    https://developer.bill.com/reference/listorganizationbillingstatements"""

    def path(self) -> str:
        return f"organizations/{self._config.organization_id}/billing-statements"


class CardAccounts(MoreStream):
    """Card funding accounts, asked once per card user status:
    https://developer.bill.com/reference/listcardaccounts"""

    object_path = "funding-accounts/cards"
    envelope = Envelope(records="cards", next_page=None)  # the answer is {rates, cards}; rates is a fee table
    query_variants = ({"cardUserStatus": "VERIFIED"}, {"cardUserStatus": "NOMINATED"})


class ApCards(MoreStream):
    """The organization's AP cards: https://developer.bill.com/reference/listapcards"""

    object_path = "funding-accounts/ap-cards"
    envelope = BARE_ARRAY


class BillApprovalPolicies(MoreStream):
    """Bill approval policies: https://developer.bill.com/reference/listbillapprovalpolicies"""

    object_path = "bill-approvals/policies"
    envelope = BARE_ARRAY


class BillsPendingApproval(MoreStream):
    """Bills waiting for the signed-in user's approval (that user's queue, not the organization's; a sync token
    is refused with BDC_1302 and the stream is skipped): https://developer.bill.com/reference/listuserapprovals"""

    object_path = "bill-approvals/pending-user-approvals"
    primary_key = "billId"
    envelope = Envelope(records="bills", next_page=None)


MORE_STREAM_CLASSES: List[type[MoreStream]] = [
    Organization,
    BillingStatements,
    CardAccounts,
    ApCards,
    BillApprovalPolicies,
    BillsPendingApproval,
]
