from __future__ import annotations

from typing import Any, Iterator, List

import pytest
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput

from tests_support import ExactHttpMocker


def _unlooked_errors(outputs: List[EntrypointOutput], looked: set[int], errors: Any) -> List[str]:
    found = []
    for output in outputs:
        if id(output) in looked:
            continue
        for message in errors.fget(output):
            found.append(str(message.trace.error.message))
    return found


@pytest.fixture
def http_mocker(monkeypatch: pytest.MonkeyPatch) -> Iterator[ExactHttpMocker]:
    """requests-mock through the CDK's HttpMocker, strict (see ExactHttpMocker).

    It also fails the test when the output of a read holds an error trace the test never looked at: a test
    that expects errors says so by reading ``output.errors`` (or ``output.trace_messages``) and asserting on
    them; every other read must end without one.
    """
    outputs: List[EntrypointOutput] = []
    looked: set[int] = set()
    original_init = EntrypointOutput.__init__
    original_errors = EntrypointOutput.errors
    original_traces = EntrypointOutput.trace_messages

    def init(self: EntrypointOutput, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        outputs.append(self)

    def errors(self: EntrypointOutput) -> Any:
        looked.add(id(self))
        return original_errors.fget(self)

    def trace_messages(self: EntrypointOutput) -> Any:
        looked.add(id(self))
        return original_traces.fget(self)

    monkeypatch.setattr(EntrypointOutput, "__init__", init)
    monkeypatch.setattr(EntrypointOutput, "errors", property(errors))
    monkeypatch.setattr(EntrypointOutput, "trace_messages", property(trace_messages))

    mocker = ExactHttpMocker()
    with mocker:
        yield mocker
        mocker.validate()
    unlooked = _unlooked_errors(outputs, looked, original_errors)
    if unlooked:
        pytest.fail(
            "the read ended with error traces the test never looked at (assert on output.errors):\n"
            + "\n".join(unlooked),
            pytrace=False,
        )
