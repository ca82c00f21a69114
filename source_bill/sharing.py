"""One read of a parent list for a parent stream and its child stream in the same sync.

When ``bills`` and ``bill_documents`` are both synced and the child would read exactly the bills the ``bills``
stream reads, the ``bills`` stream's read hands each page on (:meth:`ParentFeed.relay`): the parents' keys (id and
``updatedTime``) and the parent engine's state after the page, not the records, so what waits is about 220 bytes
a parent (all of them when the parent's read runs first, the sequential read). The child takes the pages in order
(:meth:`ParentFeed.pages`) and, once they stop, learns how the parent's read ended (:attr:`ParentFeed.outcome`): in
full, refused by BILL (the 403 rule), or stopped (an error, or never read); ``source_bill.children`` decides what
the child does then.

The parent's read runs before the child's in the same thread (the sequential read) or in its own thread (the
parallel read); a child never waits for a parent whose read cannot run any more (not started and not expected, run
in this very thread, or its thread gone), so neither read can wait forever.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, Iterator, List, Optional, Tuple

from . import errors
from .core import CURSOR, Page

ParentKey = Tuple[str, str]  # (parent id, its updatedTime)
WAIT_S = 0.5  # how often a waiting child looks again whether the parent's read can still hand on pages


@dataclass(frozen=True)
class ParentPage:
    """What a child needs of one page of parents: their keys, in order, and the parents' state after the page."""

    keys: List[ParentKey]
    state: Optional[Dict[str, Any]]


def parent_page(page: Page) -> ParentPage:
    return ParentPage([(str(r["id"]), str(r.get(CURSOR) or "")) for r in page.records], page.state)


@dataclass(frozen=True)
class Outcome:
    """How the parent's read ended: ``complete``, ``refused`` (BILL does not let this user read the list) or
    ``stopped`` (any other end before its last page: an error, the read abandoned, or never run)."""

    kind: str
    reason: str = ""


COMPLETE = Outcome("complete")


class ParentFeed:
    """The pages of one parent stream's read, handed to one child stream (one producer, one consumer)."""

    def __init__(self, parent: str) -> None:
        self.parent = parent
        self._cond = threading.Condition()
        self._pages: Deque[ParentPage] = deque()
        self._outcome: Optional[Outcome] = None
        self._producer: Optional[threading.Thread] = None
        self._expected = False
        self._relayed = False

    # --- the parent's side ------------------------------------------------------------------------------------
    def expect(self) -> None:
        """The parent's read will run in another thread (the parallel read): a child may wait for it to start."""
        with self._cond:
            self._expected = True

    def started(self) -> None:
        """The parent's read runs in this thread from now on."""
        with self._cond:
            if self._producer is None:
                self._producer = threading.current_thread()
            self._cond.notify_all()

    def relay(self, pages: Iterator[Page]) -> Iterator[Page]:
        """``pages`` unchanged, each handed on as it passes; how they ended is noted for the child."""
        if self._relayed:
            yield from pages  # the pages of one read are handed on, not those of a second read of the stream
            return
        self._relayed = True
        self.started()
        try:
            for page in pages:
                self._put(parent_page(page))
                yield page
        except errors.StreamUnavailable as exc:
            self._end(Outcome("refused", str(exc)))
            raise
        except BaseException as exc:  # GeneratorExit too: the parent's read was abandoned
            reason = "its read was stopped" if isinstance(exc, GeneratorExit) else f"it failed ({type(exc).__name__})"
            self._end(Outcome("stopped", reason))
            raise
        self._end(COMPLETE)

    def close(self) -> None:
        """The parent's read is over, however it went (called by the source once that stream's read returns)."""
        self._end(Outcome("stopped", "it was not read"))

    def _put(self, page: ParentPage) -> None:
        with self._cond:
            self._pages.append(page)
            self._cond.notify_all()

    def _end(self, outcome: Outcome) -> None:
        with self._cond:
            if self._outcome is None:
                self._outcome = outcome
            self._expected = False
            self._cond.notify_all()

    # --- the child's side -------------------------------------------------------------------------------------
    @property
    def outcome(self) -> Outcome:
        """How the parent's read ended (once :meth:`pages` is exhausted)."""
        assert self._outcome is not None
        return self._outcome

    def pages(self) -> Iterator[ParentPage]:
        """The pages in order, as the parent's read hands them on; ends with the parent's read (see ``outcome``)."""
        while True:
            with self._cond:
                while not self._pages and self._outcome is None:
                    if not self._may_come():
                        started = self._producer is not None
                        self._outcome = Outcome("stopped", "its read stopped" if started else "it was not read")
                        break
                    self._cond.wait(WAIT_S)
                if not self._pages:
                    return
                page = self._pages.popleft()
            yield page

    def _may_come(self) -> bool:
        producer = self._producer
        if producer is None:
            return self._expected  # the parallel read starts the parent's thread before the child's
        return producer is not threading.current_thread() and producer.is_alive()
