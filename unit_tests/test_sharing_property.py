"""The hand-on of a parent stream's pages to its child stream (source_bill.sharing), driven by Hypothesis: the parent's
read in its own thread or before the child in the same one, started before or after the child, ending in full, refused
by BILL, failing, or abandoned (its thread gone without a word) after any page.

Properties: the child gets exactly the pages the parent's read yielded, in order, then learns how that read ended; it
never waits for a read that cannot go on (every run ends within the join timeout)."""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterator, List

from hypothesis import given, settings
from hypothesis import strategies as st

from source_bill import errors
from source_bill.core import Page
from source_bill.sharing import ParentFeed, ParentPage

JOIN_S = 10.0  # a hang shows as a thread still running after this long (a run takes milliseconds)
KIND = {"complete": "complete", "refused": "refused", "failed": "stopped", "abandoned": "stopped"}


def engine(pages: int, end: str, at: int) -> Iterator[Page]:
    """The parent engine's pages; unless ``end`` is complete, the read ends after ``at`` pages."""
    for n in range(pages):
        if end != "complete" and n == at:
            if end == "refused":
                raise errors.StreamUnavailable("403: this user may not read bills")
            if end == "failed":
                raise ValueError("a malformed answer")
        yield Page(records=[{"id": f"b{n}", "updatedTime": f"t{n // 3}"}], state={"updatedTime": f"t{n // 3}"})


def parent_read(feed: ParentFeed, pages: int, end: str, at: int, in_thread: bool, kept: List[Any]) -> None:
    """What the source and the parent stream do: note the reader (parallel read), relay the pages, close."""
    if in_thread:
        feed.started()
    relayed = feed.relay(engine(pages, end, at))
    if end == "abandoned":  # the reader takes ``at`` pages and goes, the read left suspended, never closed
        for _, _page in zip(range(at), relayed, strict=False):
            pass
        kept.append(relayed)
        return
    try:
        for _ in relayed:
            pass
    except (errors.StreamUnavailable, ValueError):
        pass
    if in_thread:
        feed.close()


def expected(pages: int, end: str, at: int) -> List[ParentPage]:
    count = pages if end == "complete" else min(pages, at)
    return [ParentPage([(f"b{n}", f"t{n // 3}")], {"updatedTime": f"t{n // 3}"}) for n in range(count)]


@settings(max_examples=60, deadline=None)
@given(
    pages=st.integers(0, 12),
    end=st.sampled_from(sorted(KIND)),
    at=st.integers(0, 12),
    parallel=st.booleans(),
    child_first=st.booleans(),
)
def test_given_any_interleaving_and_end_when_the_child_takes_the_pages_then_all_in_order_and_the_end_told(
    pages: int, end: str, at: int, parallel: bool, child_first: bool
) -> None:
    feed = ParentFeed("bills")
    kept: List[Any] = []
    got: Dict[str, Any] = {}

    def child() -> None:
        got["pages"] = list(feed.pages())
        got["kind"] = feed.outcome.kind

    def sequential() -> None:  # the parent's read first, then the child's, in one thread
        parent_read(feed, pages, end, at, False, kept)
        child()

    if parallel:
        feed.expect()  # the source, before it starts the streams' threads
        threads = [
            threading.Thread(target=parent_read, args=(feed, pages, end, at, True, kept), daemon=True),
            threading.Thread(target=child, daemon=True),
        ]
    else:
        threads = [threading.Thread(target=sequential, daemon=True)]
    for thread in reversed(threads) if child_first else threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_S)
        assert not thread.is_alive(), "the child waited for a read that could not go on"

    assert got["pages"] == expected(pages, end, at)
    if end == "abandoned":  # left before its end (its last page taken but not its end: still before it), or not
        assert got["kind"] == ("stopped" if at <= pages else "complete")
    else:
        assert got["kind"] == (KIND[end] if end == "complete" or at < pages else "complete")
