"""``python main.py spec|check|discover|read ...`` from the repo root, same as the ``source-bill`` command."""

from source_bill.run import run

if __name__ == "__main__":
    run()
