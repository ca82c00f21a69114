"""Benchmark of the streams beyond the 22 lists: requests against the minimum, and memory of a file transfer.

    python benchmarks/more_bench.py [--quick] [--json REPORT.json]

Figures (targets from the project's brief):

* 6a, requests of a full sync of the ten new streams (children included) against the minimum: one login, one
  request per page of each list (the parents' lists, each parent's child list, billing statements), one per card
  status, one each for the single answers. Target: <= minimum x 1.02 + 3.
* 6b, requests of an incremental sync of the four child streams after 5 % of every parent list changed (a document
  added to each, which moves its updatedTime): against the changed parents plus their extra pages (the parents'
  own list pages and the login counted in the + 3). Target: <= (changed parents + extra pages) x 1.05 + 3.
* 6c, peak RSS growth of the connector while it copies a 50 MB file with file transfer, against the same read of a
  1 KB file (``ru_maxrss`` of the connector process alone, through rusage_launch.py). Target: < 10 MB. The bytes
  that arrive are checked with sha256.

The connector runs as the ``source-bill`` console script (or ``python main.py``) against the bundled emulator.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.request_minimum import CHILDREN, KEYS, SHAPES, change_parents, full_sync  # noqa: E402
from integration_tests.bill_emulator import BillEmulator  # noqa: E402


def command() -> List[str]:
    script = Path(sys.executable).parent / "source-bill"
    return [str(script)] if script.is_file() else [sys.executable, str(ROOT / "main.py")]


def catalog(names: List[str], mode: str) -> Dict[str, Any]:
    return {
        "streams": [
            {
                "stream": {"name": n, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
                "sync_mode": mode if n in CHILDREN else "full_refresh",
                "destination_sync_mode": "append",
                "primary_key": [[KEYS.get(n, "id")]],
            }
            for n in names
        ]
    }


def run(tmp: Path, config: Dict[str, Any], cat: Dict[str, Any], state: Any = None, env: Any = None) -> Dict[str, Any]:
    (tmp / "config.json").write_text(json.dumps(config))
    (tmp / "catalog.json").write_text(json.dumps(cat))
    args = ["read", "--config", str(tmp / "config.json"), "--catalog", str(tmp / "catalog.json")]
    if state is not None:
        (tmp / "state.json").write_text(json.dumps(state))
        args += ["--state", str(tmp / "state.json")]
    report = tmp / "rusage.json"
    launcher = [sys.executable, str(ROOT / "benchmarks" / "rusage_launch.py"), str(report)]
    proc = subprocess.run(
        [*launcher, *command(), *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=3600
    )
    messages = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    usage = json.loads(report.read_text())
    return {"rc": proc.returncode, "messages": messages, "maxrss_kb": usage["maxrss_kb"], "stderr": proc.stderr[-2000:]}


def last_states(messages: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    states: Dict[str, Any] = {}
    for m in messages:
        if m.get("type") == "STATE":
            states[m["state"]["stream"]["stream_descriptor"]["name"]] = m["state"]
    return list(states.values())


def requests_figures(sizes: Dict[str, int], tmp: Path) -> Dict[str, Any]:
    with BillEmulator(seed=41, sizes=sizes) as emu:
        emu.settings.hourly_limit = None
        minimum, _ = full_sync(emu, [*SHAPES, *CHILDREN])
        emu.reset_stats()
        full = run(tmp, emu.config(), catalog([*SHAPES, *CHILDREN], "incremental"))
        full_requests = emu.stats.total_requests
        changed, extra = change_parents(emu)
        emu.reset_stats()
        incremental = run(tmp, emu.config(), catalog(list(CHILDREN), "incremental"), last_states(full["messages"]))
        incremental_requests = emu.stats.total_requests
    return {
        "full_rc": full["rc"],
        "incremental_rc": incremental["rc"],
        "full_requests": full_requests,
        "full_minimum": minimum,
        "full_bound": minimum * 1.02 + 3,
        "incremental_requests": incremental_requests,
        "changed_parents": changed,
        "incremental_bound": (changed + extra) * 1.05 + 3,
    }


def rss_figure(megabytes: int, tmp: Path) -> Dict[str, Any]:
    staging = tmp / "staging"
    staging.mkdir(exist_ok=True)
    results = {}
    for label, size in (("small", 1024), ("large", megabytes * 1024 * 1024)):
        with BillEmulator(seed=42, sizes={"bills": 1}) as emu:
            bill = emu.records("bills")[0]["id"]
            data = os.urandom(size)
            row = emu.more.add_child("bills", bill, data)
            for other in emu.more.children("bills", bill):
                if other["id"] != row["id"]:
                    emu.more.set_file(other["id"], b"x")
            config = {**emu.config(), "delivery_method": {"delivery_type": "use_file_transfer"}}
            out = run(
                tmp,
                config,
                catalog(["bill_documents"], "full_refresh"),
                env={"AIRBYTE_STAGING_DIRECTORY": str(staging)},
            )
            refs = [m["record"].get("file_reference") for m in out["messages"] if m.get("type") == "RECORD"]
            ref = next(r for r in refs if r and row["id"] in r["source_file_relative_path"])
            same = hashlib.sha256(Path(ref["staging_file_url"]).read_bytes()).digest() == hashlib.sha256(data).digest()
            results[label] = {"rc": out["rc"], "maxrss_kb": out["maxrss_kb"], "sha256_equal": same}
    growth_mb = (results["large"]["maxrss_kb"] - results["small"]["maxrss_kb"]) / 1024
    return {**results, "megabytes": megabytes, "rss_growth_mb": growth_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and a 5 MB file: checks that it runs")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    sizes = (
        {"bills": 120, "vendors": 40, "customers": 30, "invoices": 50}
        if args.quick
        else {"bills": 2000, "vendors": 600, "customers": 500, "invoices": 1500}
    )
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        req = requests_figures(sizes, tmp)
        rss = rss_figure(5 if args.quick else 50, tmp)
    rows = [
        (
            "6a",
            "requests, full sync of the ten new streams",
            req["full_requests"],
            f"<= {req['full_bound']:.1f} (min {req['full_minimum']})",
        ),
        (
            "6b",
            f"requests, incremental child sync, {req['changed_parents']} parents changed",
            req["incremental_requests"],
            f"<= {req['incremental_bound']:.1f}",
        ),
        ("6c", f"RSS growth copying a {rss['megabytes']} MB file (MB)", f"{rss['rss_growth_mb']:.1f}", "< 10"),
        ("6c", "file bytes identical (sha256)", rss["large"]["sha256_equal"] and rss["small"]["sha256_equal"], "True"),
    ]
    print("source-bill benchmark: the streams beyond the 22 lists")
    print(f"sizes: {sizes}")
    print("| #  | figure | value | target |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]} |")
    problems = []
    if req["full_rc"] or req["incremental_rc"] or rss["large"]["rc"] or rss["small"]["rc"]:
        problems.append("a connector run failed")
    if req["full_requests"] > req["full_bound"] or req["incremental_requests"] > req["incremental_bound"]:
        problems.append("requests above the target")
    if not (rss["large"]["sha256_equal"] and rss["small"]["sha256_equal"]):
        problems.append("file bytes differ")
    if not args.quick and rss["rss_growth_mb"] >= 10:
        problems.append("RSS growth above 10 MB")
    if args.json:
        args.json.write_text(json.dumps({"requests": req, "rss": rss, "problems": problems}, indent=2))
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
