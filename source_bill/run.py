"""Console entry point: ``source-bill spec|check|discover|read``.

Like the CDK's ``launch``, but every line goes through ``LineOutput``: the secret filter for every message type,
whole lines only, and a clean exit on SIGTERM.
"""

import atexit
import sys

from airbyte_cdk.entrypoint import AirbyteEntrypoint

from .output import LineOutput, install
from .source import SourceBill


def run() -> None:
    output = LineOutput(sys.__stdout__.fileno() if sys.__stdout__ is not None else 1)
    atexit.register(output.close)
    entrypoint = AirbyteEntrypoint(SourceBill())
    parsed_args = entrypoint.parse_args(sys.argv[1:])
    install(output)
    for message in entrypoint.run(parsed_args):
        output.write(f"{message}\n")
    output.flush()


if __name__ == "__main__":
    run()
