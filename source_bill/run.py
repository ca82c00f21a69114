"""Console entry point: ``source-bill spec|check|discover|read``.

Like the CDK's ``launch``, with config errors that name the key (``BillEntrypoint``), and every line goes
through ``LineOutput``: the secret filter for every message type, whole lines only, and a clean exit on SIGTERM.
"""

import atexit
import sys
from typing import List

from airbyte_cdk.sources import Source

from .config_messages import BillEntrypoint
from .output import LineOutput, install
from .source import SourceBill


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
