"""The baseline for benchmarks/bench.py: the plainest loop that does the connector's job.

Logs in to BILL (or the emulator), pages through lists with ``requests`` (``max=100``, following
``nextPage``), parses each page with the standard library's ``json`` and writes every record to stdout
as an Airbyte RECORD message, one JSON line each. No retries, no limiter, no state: a yardstick, not
a connector.

    python benchmarks/plain_reader.py --config CONFIG.json --streams vendors
    python benchmarks/plain_reader.py --config CONFIG.json --streams vendors,bills,... --threads 3
    python benchmarks/plain_reader.py --config CONFIG.json --streams vendors --split A,B --threads 3

``--split A,B`` reads the one stream as three queries sorted by updatedTime, in parallel:
``updatedTime < A``, ``A <= updatedTime < B`` and ``updatedTime >= B``.
``--parser orjson`` parses and writes with orjson instead of the standard library (bench.py reports it for
information only).
CONFIG is the connector's config (credentials with username, password and dev_key; organization_id, base_url).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Tuple

import requests

# stream -> (path under /v3, fixed query parameters): the connector's declarations (source_bill/declarations.py),
# handed over by bench.py as a JSON file (--plan) so that this process never imports the connector and the CDK: its
# CPU figure is the plain loop's alone. Run by hand without --plan, it reads them itself.
Plan = Dict[str, Tuple[str, Dict[str, str]]]


def plan_from_declarations() -> Plan:
    from source_bill.declarations import declarations

    return {d.name: (d.path, dict(d.extra_params)) for d in declarations()}


_out_lock = threading.Lock()
_loads: Callable[[bytes], Any] = json.loads


def _dumps(obj: Any) -> str:
    # plain json.dumps: also the fastest of the standard library's variants here (ensure_ascii=False and
    # compact separators are 10-40% slower on these records), so the baseline is not handicapped
    return json.dumps(obj)


def use_orjson() -> None:
    global _loads, _dumps
    import orjson

    _loads = orjson.loads
    _dumps = lambda obj: orjson.dumps(obj).decode()  # noqa: E731


def login(base: str, config: Dict[str, str]) -> str:
    body = {
        "username": config["username"],
        "password": config["password"],
        "organizationId": config["organization_id"],
        "devKey": config["dev_key"],
    }
    response = requests.post(f"{base}/v3/login", json=body, timeout=60)
    response.raise_for_status()
    return str(json.loads(response.content)["sessionId"])


def read_list(base: str, headers: Dict[str, str], plan: Plan, stream: str, params: Dict[str, str], out: Any) -> int:
    path, fixed = plan[stream]
    url = f"{base}/v3/{path}"
    http = requests.Session()
    http.headers.update(headers)
    query: Dict[str, str] = {"max": "100", **fixed, **params}
    count = 0
    while True:
        response = http.get(url, params=query, timeout=60)
        response.raise_for_status()
        body = _loads(response.content)
        emitted_at = time.time_ns() // 1_000_000
        lines = [
            _dumps({"type": "RECORD", "record": {"stream": stream, "data": record, "emitted_at": emitted_at}})
            for record in body["results"]
        ]
        if lines:
            with _out_lock:
                out.write("\n".join(lines) + "\n")
        count += len(lines)
        token = body.get("nextPage")
        if not token:
            return count
        query["page"] = token


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--streams", required=True, help="comma-separated stream names")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--split", help="A,B: read the one stream as three updatedTime ranges")
    parser.add_argument(
        "--parser",
        choices=("json", "orjson"),
        default="json",
        help="json (the baseline) or orjson (a stricter yardstick: what the connector uses)",
    )
    parser.add_argument("--plan", help="JSON file: {stream: [path under /v3, {fixed query parameters}]}")
    args = parser.parse_args(argv)
    if args.plan:
        with open(args.plan, encoding="utf-8") as handle:
            plan: Plan = {name: (path, dict(params)) for name, (path, params) in json.load(handle).items()}
    else:
        plan = plan_from_declarations()
    if args.parser == "orjson":
        use_orjson()

    with open(args.config, encoding="utf-8") as handle:
        config = json.load(handle)
    config = {**config, **config.get("credentials", {})}  # the user_login keys, beside organization_id and base_url
    base = config["base_url"].rstrip("/")
    headers = {"sessionId": login(base, config), "devKey": config["dev_key"], "Accept": "application/json"}
    streams = [s for s in args.streams.split(",") if s]

    jobs: List[Tuple[str, Dict[str, str]]]
    if args.split:
        if len(streams) != 1:
            parser.error("--split takes exactly one stream")
        a, b = args.split.split(",")
        sort = {"sort": "updatedTime:asc"}
        jobs = [
            (streams[0], {**sort, "filters": f'updatedTime:lt:"{a}"'}),
            (streams[0], {**sort, "filters": f'updatedTime:gte:"{a}",updatedTime:lt:"{b}"'}),
            (streams[0], {**sort, "filters": f'updatedTime:gte:"{b}"'}),
        ]
    else:
        jobs = [(stream, {}) for stream in streams]

    out = sys.stdout
    if args.threads <= 1:
        total = sum(read_list(base, headers, plan, stream, params, out) for stream, params in jobs)
    else:
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            total = sum(pool.map(lambda job: read_list(base, headers, plan, job[0], job[1], out), jobs))
    out.flush()
    print(f"plain_reader: {total} records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
