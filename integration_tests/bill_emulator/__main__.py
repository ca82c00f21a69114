"""python -m integration_tests.bill_emulator --port 8123 [--seed 1] [--scale 1.0] [--latency-ms 0]"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .catalog import DEFAULT_SIZES
from .server import BillEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m integration_tests.bill_emulator", description="Run the BILL v3 API emulator in the foreground."
    )
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every stream's default size")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--max-concurrent", type=int, default=3)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument(
        "--date-skew-s", type=float, default=0.0, help="run the Date header's clock this far ahead (or behind, < 0)"
    )
    parser.add_argument("--verbose", action="store_true", help="one log line per request on stderr")
    args = parser.parse_args(argv)

    sizes = {name: max(1, round(size * args.scale)) for name, size in DEFAULT_SIZES.items()}
    emu = BillEmulator(seed=args.seed, sizes=sizes, port=args.port, host=args.host, verbose=args.verbose)
    emu.settings.latency_s = args.latency_ms / 1000.0
    emu.settings.max_concurrent = args.max_concurrent
    emu.settings.fault_rate = args.fault_rate
    emu.settings.date_skew_s = args.date_skew_s
    emu.start()
    print(emu.base_url, flush=True)
    print(json.dumps(emu.config()), flush=True)
    print(json.dumps(emu.config("oauth_client_credentials")), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
