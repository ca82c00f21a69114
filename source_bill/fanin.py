"""Run iterators side by side in threads and hand their items to one reading thread.

One helper for both: streams side by side (``source_bill.source``) and the slices of one stream side by side
(``source_bill.core``, run by ``source_bill.streams``).
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, List, Optional, Sequence, Tuple, TypeVar, cast

T = TypeVar("T")

_END = object()


def side_by_side(
    iterators: Sequence[Iterator[T]], *, limit: Optional[int] = None, buffer: int = 8, name: str = "bill-worker"
) -> Iterator[Tuple[int, Optional[T]]]:
    """Yield ``(index, item)`` as items come, and ``(index, None)`` once iterator ``index`` has ended.

    Each iterator runs in its own thread, at most ``limit`` at once (all by default), the next starting when one
    ends. Items of one iterator keep their order; at most ``buffer`` items wait, so a slow reader holds the workers
    back and memory stays flat. An exception in a worker is raised here, in the reading thread. ``iterators`` may grow
    while this runs (a list the caller appends to, e.g. when it splits a slice): new ones start when this generator
    is resumed. When the reader stops early (an error, or it closes this generator), the workers stop at their next
    item.
    """
    out: queue.Queue[Tuple[int, object, Optional[BaseException]]] = queue.Queue(maxsize=buffer)
    stop = threading.Event()

    def put(item: Tuple[int, object, Optional[BaseException]]) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def drive(index: int, items: Iterator[T]) -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                put((index, item, None))
            put((index, _END, None))
        except BaseException as exc:  # handed to the reading thread, which raises it
            put((index, _END, exc))

    started: List[threading.Thread] = []
    running = 0

    def start_more() -> None:
        nonlocal running
        while len(started) < len(iterators) and (limit is None or running < limit):
            index = len(started)
            thread = threading.Thread(target=drive, args=(index, iterators[index]), daemon=True, name=f"{name}-{index}")
            started.append(thread)
            running += 1
            thread.start()

    try:
        start_more()
        while running:
            index, item, error = out.get()
            if error is not None:
                raise error
            if item is _END:
                running -= 1
                yield index, None
                start_more()
            else:
                yield index, cast(T, item)
    finally:
        stop.set()
