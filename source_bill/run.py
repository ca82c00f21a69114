"""Console entry point: ``source-bill spec|check|discover|read``.

Like the CDK's ``launch``, with config errors that name the key (``BillEntrypoint``), and every line goes
through ``LineOutput``: the secret filter for every message type, whole lines only, and a clean exit on SIGTERM.
The CDK is imported lean (``boot.lean_package``: only the submodules the connector uses; ``boot.fast_attribute_docs``:
its serializers built without parsing a module per class), so it must not be imported above those calls.
"""

import atexit
import sys
from typing import List

from .boot import fast_attribute_docs, lean_package

lean_package("airbyte_cdk")
fast_attribute_docs()

from airbyte_cdk.sources import Source  # noqa: E402 (after lean_package, on purpose)

from .config_messages import BillEntrypoint  # noqa: E402
from .output import LineOutput, install  # noqa: E402
from .source import SourceBill  # noqa: E402


def run() -> None:
    launch(SourceBill(), sys.argv[1:])


def launch(source: Source, args: List[str]) -> None:
    output = LineOutput(sys.__stdout__.fileno() if sys.__stdout__ is not None else 1)
    atexit.register(output.close)
    entrypoint = BillEntrypoint(source)  # config errors that name the key
    parsed_args = entrypoint.parse_args(args)
    install(output)
    for message in entrypoint.run_lines(parsed_args):
        if isinstance(message, bytes):
            output.write_bytes(message + b"\n")  # a page of records
        else:
            output.write(f"{message}\n")
    output.flush()


if __name__ == "__main__":
    run()
