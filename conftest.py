"""Root conftest: the CDK's standard-test hooks and the guard that keeps the fast test tier fast.

pytest only honours ``pytest_plugins`` in the rootdir's conftest. The Airbyte CDK's standard-test hooks
parametrize ``TestBillStandardSuite`` (integration_tests/test_standard_suite.py) with the scenarios of
acceptance-test-config.yml and add its command-line options (``--connector-image``, ``--read-from-streams``,
...). They only act on test classes that take a ``scenario`` argument, so other tests are unaffected.

Test tiers (see the README, "Development"): ``bash scripts/test.sh`` runs the fast tier, every test without
the ``slow`` or ``emulator`` marker; ``bash scripts/test.sh --all`` runs everything. The fast tier must not
start processes or sleep, and nobody has to remember that: a Python audit hook (and a wrapper around
``time.sleep``) watches every test (setup, call and teardown, in every thread). A test that starts a subprocess
(``subprocess.Popen``, ``os.system``, ``os.fork``, ``os.posix_spawn``, ``os.exec*``) or calls ``time.sleep``
with a positive duration fails unless it carries the ``slow`` marker (or ``emulator``: the emulator's
self-tests are not in the fast tier either). The emulator's latency and timeout settings sleep, so they count.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Iterator, List, Optional, Tuple

import pytest

pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]


def _run_in_process_reads_through_the_connectors_entrypoint() -> None:
    """The CDK's test wrapper (``airbyte_cdk.test.entrypoint_wrapper``) runs a source through the CDK's entrypoint;
    the CLI, the Docker image and PyAirbyte run it through ``BillEntrypoint``, which writes a page of records as
    one string of lines. Tests run what users run: the wrapper gets ``BillEntrypoint``, its strings split into
    lines as the CLI writes them. unit_tests/test_batches.py checks it against the CDK's entrypoint."""
    import airbyte_cdk.test.entrypoint_wrapper as wrapper

    from source_bill.config_messages import BillEntrypoint

    class LineByLine(BillEntrypoint):
        def run(self, parsed_args: Any) -> Iterator[str]:
            for text in super().run(parsed_args):
                yield from text.split("\n")

    wrapper.AirbyteEntrypoint = LineByLine  # type: ignore[misc]


_run_in_process_reads_through_the_connectors_entrypoint()

SLOW_MARKER = "slow"
# markers that keep a test out of the fast tier (scripts/test.sh deselects them unless given --all)
NOT_FAST_MARKERS = (SLOW_MARKER, "emulator")

_PROCESS_EVENTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.spawn",
        "os.exec",
    }
)


class _Watch:
    """What the running test phase did that the fast tier forbids (filled by the audit hook, any thread)."""

    def __init__(self) -> None:
        self.active = False
        self.seen: List[Tuple[str, str]] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self.seen = []
            self.active = True

    def stop(self) -> List[Tuple[str, str]]:
        with self._lock:
            self.active = False
            return list(self.seen)

    def audit(self, event: str, args: Tuple[Any, ...]) -> None:
        if self.active and event in _PROCESS_EVENTS:
            self._record(event, repr(args[0])[:200] if args else "")

    def sleep(self, seconds: float) -> None:
        if self.active and seconds and seconds > 0:
            self._record("time.sleep", f"{seconds} s")
        _real_sleep(seconds)

    def _record(self, event: str, detail: str) -> None:
        with self._lock:
            if len(self.seen) < 5:
                self.seen.append((event, detail))


_WATCH = _Watch()
sys.addaudithook(_WATCH.audit)  # audit hooks cannot be removed: the hook does nothing while no test runs
# Python 3.11 raises no audit event for time.sleep, so the module function is wrapped, before any test module (or
# source_bill, whose clients take ``sleep=time.sleep`` as a default) is imported.
_real_sleep = time.sleep
time.sleep = _WATCH.sleep


def _in_fast_tier(item: pytest.Item) -> bool:
    return not any(item.get_closest_marker(name) for name in NOT_FAST_MARKERS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    seen: Optional[List[Tuple[str, str]]] = item.stash.get(_SEEN, {}).get(report.when)
    if not seen or not _in_fast_tier(item) or report.failed:
        return
    what = "; ".join(f"{event}({detail})" for event, detail in seen)
    report.outcome = "failed"
    report.longrepr = (
        f"{item.nodeid} ran {what} during {report.when} without the '{SLOW_MARKER}' marker. "
        "The fast tier starts no process and never sleeps: mark the test (or its module, "
        "pytestmark = pytest.mark.slow) if it must, or inject the sleep/clock as the unit tests do."
    )


_SEEN = pytest.StashKey[dict]()


def _watched(item: pytest.Item, when: str) -> Iterator[None]:
    _WATCH.start()
    try:
        yield
    finally:
        item.stash.setdefault(_SEEN, {})[when] = _WATCH.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    yield from _watched(item, "setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield from _watched(item, "call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    yield from _watched(item, "teardown")
