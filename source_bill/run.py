"""Console entry point: ``source-bill spec|check|discover|read``."""

import sys

from .config_messages import launch
from .source import SourceBill


def run() -> None:
    launch(SourceBill(), sys.argv[1:])


if __name__ == "__main__":
    run()
