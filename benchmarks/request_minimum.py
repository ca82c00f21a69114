"""The fewest requests (and the records) of a sync against the emulator: what the request figures of ``bench.py``
and ``more_bench.py`` compare the connector's count with.

One request per page of each list (100 records a page), one per page of each parent's child list, one per card
status, one for each single answer, and one login. A child stream synced with its parent stream costs no list of
the parents of its own (the connector reads it once), so the parents' pages count once.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Tuple

from integration_tests.bill_emulator import STREAMS, BillEmulator
from source_bill.declarations import child_streams, shape_stream_names

PAGE = 100
SHAPES = list(shape_stream_names())
CHILDREN = {child: parent for child, (parent, _) in child_streams().items()}
KEYS = {"bills_pending_approval": "billId"}
EVERY_STREAM = [*STREAMS, *SHAPES, *CHILDREN]  # Spend & Expense has its own benchmark (spend_bench.py)
CHANGE_EVERY = 20  # 5 % of each parent list changes


def pages(n: int) -> int:
    return max(1, math.ceil(n / PAGE))


def _shape(emu: BillEmulator, name: str) -> Tuple[int, int]:
    """(requests, records) of one stream of another shape."""
    more = emu.more
    if name == "organization":
        return 1, 1
    if name == "billing_statements":
        return pages(len(more.statements)), len(more.statements)
    if name == "card_accounts":
        cards = {card["id"] for status in more.cards for card in more.cards[status]}
        return len(more.cards), len(cards)
    if name == "ap_cards":
        return 1, len(more.ap_cards)
    if name == "bill_approval_policies":
        return 1, len(more.policies)
    return 1, len(more.pending_approvals())


def _children(emu: BillEmulator, child: str, parents: Iterable[Dict[str, Any]]) -> Tuple[int, int]:
    """(requests, records) of the child lists of ``parents``."""
    kind = CHILDREN[child]
    sizes = [len(emu.more.children(kind, parent["id"])) for parent in parents]
    return sum(pages(n) for n in sizes), sum(sizes)


def full_sync(emu: BillEmulator, names: Iterable[str]) -> Tuple[int, int]:
    """(minimum requests, records) of a full sync of ``names``: the login, and every stream's pages and children
    (a parent list read once when its child stream is synced with it)."""
    names = list(names)
    requests, records = 1, 0
    for name in names:
        if name in STREAMS:
            n = len(emu.records(name))
            requests, records = requests + pages(n), records + n
        elif name in CHILDREN:
            parents = emu.records(CHILDREN[name])
            asked, rows = _children(emu, name, parents)
            requests, records = requests + asked, records + rows
            if CHILDREN[name] not in names:
                requests += pages(len(parents))  # the parents' list, read by the child stream itself
        else:
            asked, rows = _shape(emu, name)
            requests, records = requests + asked, records + rows
    return requests, records


def change_parents(emu: BillEmulator) -> Tuple[int, int]:
    """A document added to every 20th parent of each child stream (5 %), which moves the parent's updatedTime.
    Returns (changed parents, their extra pages): the pages of their child lists beyond the first, and the
    parents' own lists, filtered to the changed ones (one read for a child and its parent synced together)."""
    changed = extra = 0
    for kind in CHILDREN.values():
        rows = emu.records(kind)[::CHANGE_EVERY]
        for row in rows:
            emu.more.add_child(kind, row["id"])
            extra += pages(len(emu.more.children(kind, row["id"]))) - 1
        changed += len(rows)
        extra += pages(len(rows))
    return changed, extra
