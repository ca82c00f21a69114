"""source-bill benchmark: CPU, wall time under latency, memory and request count, against the BILL emulator.

    python benchmarks/bench.py            # full run (a few minutes)
    python benchmarks/bench.py --quick    # small sizes, CI smoke run (< 60 s); figures not meaningful
    python benchmarks/bench.py --json out.json --strict

The emulator runs in this process; the connector (`source-bill read`) and the baseline
(benchmarks/plain_reader.py) run as child processes whose stdout is drained through a pipe that counts
RECORD lines. CPU and peak RSS come from os.wait4 in benchmarks/rusage_launch.py (the child's own rusage);
wall times are measured at the emulator (last response - first request). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration_tests.bill_emulator import STREAMS, BillEmulator  # noqa: E402

PAGE = 100
LATENCY_S = 0.1
LIMIT = 3  # BILL: concurrent requests per organization; the emulator rejects a 4th with BDC_1322
PLAIN = str(ROOT / "benchmarks" / "plain_reader.py")
LAUNCH = str(ROOT / "benchmarks" / "rusage_launch.py")
RECORD_MARKS = (b'"type":"RECORD"', b'"type": "RECORD"')  # orjson (CDK) and json.dumps' default separators
ERROR_MARK = b'"failure_type"'

FULL = {
    "cpu_records": 200_000,
    "cpu_runs": 3,
    "wall_streams": 6,
    "wall_stream_size": 2_000,
    "wall_single_size": 6_000,
    "rss_sizes": (30_000, 300_000),
    "rss_runs": 3,
}
QUICK = {
    "cpu_records": 5_000,
    "cpu_runs": 3,
    "wall_streams": 6,
    "wall_stream_size": 300,
    "wall_single_size": 1_200,
    "rss_sizes": (3_000, 30_000),
    "rss_runs": 1,
}
WALL_STREAMS = ["vendors", "customers", "bills", "invoices", "payments", "receivable_payments"]
SINGLE_STREAM = "credit_memos"


def source_bill_cmd() -> List[str]:
    script = Path(sys.executable).parent / "source-bill"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "source_bill.run"]


# --- running a child -----------------------------------------------------------------------------------
@dataclass
class Run:
    label: str
    rc: int
    cpu_s: float
    maxrss_kb: int
    records: int
    errors: int
    elapsed_s: float
    stats: Dict[str, Any] = field(default_factory=dict)
    stderr_tail: str = ""

    @property
    def wall_s(self) -> float:
        first, last = self.stats.get("first_request_at"), self.stats.get("last_response_at")
        return float(last - first) if first is not None and last is not None else float("nan")


def _drain(pipe: Any, result: Dict[str, int]) -> None:
    """Count RECORD lines (and error traces) in the child's stdout without keeping it."""
    records = errors = 0
    tail = b""
    while True:
        chunk = pipe.read(1 << 20)
        if not chunk:
            break
        data = tail + chunk
        cut = data.rfind(b"\n") + 1  # count whole lines only: a mark never straddles two reads
        records += sum(data.count(mark, 0, cut) for mark in RECORD_MARKS)
        errors += data.count(ERROR_MARK, 0, cut)
        tail = data[cut:]
    records += sum(tail.count(mark) for mark in RECORD_MARKS)
    errors += tail.count(ERROR_MARK)
    result["records"], result["errors"] = records, errors


def run_child(label: str, cmd: Sequence[str], emu: BillEmulator, workdir: Path) -> Run:
    """Run ``cmd`` under benchmarks/rusage_launch.py (see there why) and collect its own rusage."""
    emu.reset_stats()
    stem = label.replace(" ", "_").replace("/", "_")
    err_path, usage_path = workdir / f"{stem}.stderr", workdir / f"{stem}.rusage.json"
    usage_path.unlink(missing_ok=True)
    with open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, LAUNCH, str(usage_path), *cmd], stdout=subprocess.PIPE, stderr=err, cwd=str(ROOT)
        )
        counted: Dict[str, int] = {}
        reader = threading.Thread(target=_drain, args=(proc.stdout, counted), daemon=True)
        reader.start()
        proc.wait()
        elapsed = time.perf_counter() - started
        reader.join()
        assert proc.stdout is not None
        proc.stdout.close()
    stderr_tail = err_path.read_text(errors="replace")[-2000:]
    try:
        usage = json.loads(usage_path.read_text())
    except (OSError, ValueError):
        usage = {
            "rc": proc.returncode if proc.returncode else -1,
            "utime": float("nan"),
            "stime": float("nan"),
            "maxrss_kb": 0,
        }
    return Run(
        label=label,
        rc=usage["rc"],
        cpu_s=usage["utime"] + usage["stime"],
        maxrss_kb=usage["maxrss_kb"],
        records=counted.get("records", 0),
        errors=counted.get("errors", 0),
        elapsed_s=elapsed,
        stats=emu.stats.as_dict(),
        stderr_tail=stderr_tail,
    )


class Bench:
    def __init__(self, quick: bool, workdir: Path) -> None:
        self.quick = quick
        self.sizes = QUICK if quick else FULL
        self.workdir = workdir
        self.rows: List[List[str]] = []
        self.results: Dict[str, Any] = {"quick": quick, "figures": {}, "runs": []}
        self.problems: List[str] = []
        self.connector_runs: List[Run] = []
        self.failed_targets: List[str] = []

    # --- helpers -----------------------------------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> str:
        path = self.workdir / name
        path.write_text(json.dumps(obj))
        return str(path)

    def catalog(self, streams: Sequence[str]) -> str:
        return self.write_json(
            "catalog_" + "_".join(streams)[:80] + ".json",
            {
                "streams": [
                    {
                        "stream": {
                            "name": s,
                            "json_schema": {},
                            "supported_sync_modes": ["full_refresh", "incremental"],
                        },
                        "sync_mode": "full_refresh",
                        "destination_sync_mode": "overwrite",
                    }
                    for s in streams
                ]
            },
        )

    def connector(self, label: str, emu: BillEmulator, streams: Sequence[str], expect: int) -> Run:
        cfg = self.write_json("config.json", emu.config())
        cmd = [*source_bill_cmd(), "read", "--config", cfg, "--catalog", self.catalog(streams)]
        run = run_child(label, cmd, emu, self.workdir)
        self.connector_runs.append(run)
        self._check(run, expect)
        return run

    def plain(self, label: str, emu: BillEmulator, streams: Sequence[str], expect: int, *extra: str) -> Run:
        cfg = self.write_json("config.json", emu.config())
        cmd = [sys.executable, PLAIN, "--config", cfg, "--streams", ",".join(streams), *extra]
        run = run_child(label, cmd, emu, self.workdir)
        self._check(run, expect)
        return run

    def _check(self, run: Run, expect: int) -> None:
        self.results["runs"].append(
            {
                "label": run.label,
                "rc": run.rc,
                "cpu_s": run.cpu_s,
                "maxrss_kb": run.maxrss_kb,
                "records": run.records,
                "expected_records": expect,
                "wall_s": run.wall_s,
                "elapsed_s": run.elapsed_s,
                "total_requests": run.stats.get("total_requests"),
                "max_in_flight": run.stats.get("max_in_flight"),
                "rejected_1322": run.stats.get("rejected_1322"),
            }
        )
        if run.rc != 0 or run.records != expect or run.errors:
            self.problems.append(
                f"{run.label}: exit {run.rc}, {run.records} records (expected {expect}), {run.errors} error traces; "
                f"stderr tail: {run.stderr_tail[-500:]!r}"
            )

    def row(self, key: str, figure: str, value: Any, target: str, ok: Optional[bool], shown: str) -> None:
        verdict = "info" if ok is None else ("PASS" if ok else "FAIL")
        if ok is False:
            self.failed_targets.append(figure)
        self.rows.append([key, figure, shown, target, verdict])
        self.results["figures"][figure] = {"key": key, "value": value, "target": target, "result": verdict}

    @staticmethod
    def emulator(sizes: Dict[str, int]) -> tuple[BillEmulator, float]:
        started = time.perf_counter()
        emu = BillEmulator(seed=1, sizes=sizes)
        built = time.perf_counter() - started
        emu.settings.max_concurrent = LIMIT
        emu.start()
        return emu, built

    # --- 1. CPU ------------------------------------------------------------------------------------
    def cpu(self) -> None:
        n = self.sizes["cpu_records"]
        emu, built = self.emulator({"vendors": n})
        try:
            conn: List[Run] = []
            plain: List[Run] = []
            fast: List[Run] = []  # the same loop with orjson: a stricter yardstick, for information
            for i in range(self.sizes["cpu_runs"]):
                conn.append(self.connector(f"cpu connector {i + 1}", emu, ["vendors"], n))
                plain.append(self.plain(f"cpu plain {i + 1}", emu, ["vendors"], n))
                fast.append(self.plain(f"cpu plain orjson {i + 1}", emu, ["vendors"], n, "--parser", "orjson"))
        finally:
            emu.stop()
        c = statistics.median(r.cpu_s for r in conn)
        p = statistics.median(r.cpu_s for r in plain)
        ratio = c / p if p else float("inf")
        pairs = ", ".join(f"{a.cpu_s:.2f}/{b.cpu_s:.2f}" for a, b in zip(conn, plain, strict=True))
        self.row(
            "1",
            f"CPU s, full refresh of {n:,} records: connector",
            c,
            "-",
            None,
            f"{c:.2f} (runs connector/plain: {pairs})",
        )
        self.row("1", "CPU s, same read: plain requests+json loop", p, "-", None, f"{p:.2f}")
        self.row(
            "1", "CPU ratio connector/plain (median of 3 alternated)", ratio, "<= 1.3", ratio <= 1.3, f"{ratio:.2f}"
        )
        f = statistics.median(r.cpu_s for r in fast)
        self.row("1", "CPU s, same loop parsing/writing with orjson", f, "-", None, f"{f:.2f}")
        self.row("1", "CPU ratio connector/plain-with-orjson", c / f, "-", None, f"{c / f:.2f}")
        self.results["emulator_build_s"] = {f"vendors={n}": built}
        minimum = math.ceil(n / PAGE) + 1
        counts = sorted({r.stats.get("total_requests") for r in conn})
        worst = max(counts)
        bound = minimum * 1.02
        self.row(
            "4",
            f"requests, {n:,}-record read (min {minimum:,})",
            worst,
            f"<= {bound:,.0f}",
            worst <= bound,
            f"{'/'.join(str(x) for x in counts)} ({worst / minimum:.3f}x)",
        )

    # --- 2. wall time under latency ------------------------------------------------------------------
    def wall(self) -> None:
        k, size, single = self.sizes["wall_streams"], self.sizes["wall_stream_size"], self.sizes["wall_single_size"]
        streams = WALL_STREAMS[:k]
        sizes = {s: size for s in streams}
        sizes[SINGLE_STREAM] = single
        emu, _ = self.emulator(sizes)
        try:
            emu.settings.latency_s = LATENCY_S
            # (a) k streams side by side
            ca = self.connector("wall (a) connector", emu, streams, k * size)
            pa = self.plain("wall (a) plain", emu, streams, k * size, "--threads", "3")
            # (b) one stream; the plain reader is told an even three-way split of updatedTime
            times = sorted(r["updatedTime"] for r in emu.records(SINGLE_STREAM))
            a, b = times[len(times) // 3], times[2 * len(times) // 3]
            cb = self.connector("wall (b) connector", emu, [SINGLE_STREAM], single)
            pb = self.plain("wall (b) plain", emu, [SINGLE_STREAM], single, "--threads", "3", "--split", f"{a},{b}")
        finally:
            emu.stop()
        pages_a = k * math.ceil(size / PAGE)
        pages_b = math.ceil(single / PAGE)
        for key, conn, plain, pages, target, what in (
            ("2a", ca, pa, pages_a, 1.15, f"{k} streams x {math.ceil(size / PAGE)} pages"),
            ("2b", cb, pb, pages_b, 1.5, f"1 stream x {pages_b} pages"),
        ):
            minimum = pages + 1
            bound = minimum * LATENCY_S / LIMIT
            ratio = conn.wall_s / plain.wall_s
            self.row(
                key,
                f"wall s @100 ms, {what}: connector",
                conn.wall_s,
                "-",
                None,
                f"{conn.wall_s:.2f} ({conn.stats['total_requests']} requests)",
            )
            self.row(
                key,
                f"wall s @100 ms, {what}: plain 3 threads",
                plain.wall_s,
                "-",
                None,
                f"{plain.wall_s:.2f} ({plain.stats['total_requests']} requests)",
            )
            self.row(key, f"wall ratio connector/plain, {what}", ratio, f"<= {target}", ratio <= target, f"{ratio:.2f}")
            self.row(
                key,
                f"wall ratio connector/bound ({minimum} req x 0.1 s / 3 = {bound:.2f} s)",
                conn.wall_s / bound,
                "-",
                None,
                f"{conn.wall_s / bound:.2f}",
            )
            flight = conn.stats["max_in_flight"]
            rejected = conn.stats["rejected_1322"]
            self.row(
                key,
                f"max in flight at the emulator (connector), {what}",
                flight,
                f"<= {LIMIT}",
                flight <= LIMIT,
                str(flight),
            )
            self.row(key, f"BDC_1322 rejections (connector), {what}", rejected, "== 0", rejected == 0, str(rejected))

    # --- 3. peak RSS ---------------------------------------------------------------------------------
    def rss(self) -> None:
        small, large = self.sizes["rss_sizes"]
        peaks: Dict[int, float] = {}
        spread: Dict[int, str] = {}
        for n in (small, large):
            emu, built = self.emulator({"vendors": n})
            self.results.setdefault("emulator_build_s", {})[f"vendors={n}"] = built
            self.row("3", f"emulator: generate {n:,} records", built, "-", None, f"{built:.1f} s")
            try:
                runs = [
                    self.connector(f"rss connector {n} {i + 1}", emu, ["vendors"], n).maxrss_kb / 1024
                    for i in range(self.sizes["rss_runs"])
                ]
            finally:
                emu.stop()
                del emu
                gc.collect()
            peaks[n] = statistics.median(runs)
            spread[n] = "/".join(f"{x:.1f}" for x in runs)
        ratio = peaks[large] / peaks[small]
        for n in (small, large):
            self.row(
                "3",
                f"peak RSS MB, {n:,} records (median of {self.sizes['rss_runs']})",
                peaks[n],
                "< 200",
                peaks[n] < 200,
                f"{peaks[n]:.1f} (runs: {spread[n]})",
            )
        self.row("3", "peak RSS ratio large/small", ratio, "<= 1.1", ratio <= 1.1, f"{ratio:.2f}")

    # --- 4. requests for a full sync at default sizes -----------------------------------------------
    def requests_default(self) -> None:
        emu, _ = self.emulator({})
        try:
            sizes = {s: len(emu.records(s)) for s in STREAMS}
            run = self.connector("requests all streams", emu, list(STREAMS), sum(sizes.values()))
        finally:
            emu.stop()
        minimum = sum(max(1, math.ceil(n / PAGE)) for n in sizes.values()) + 1
        got = run.stats["total_requests"]
        bound = minimum * 1.02  # no stream is sliced yet: + 0
        self.row(
            "4",
            f"requests, full sync of all {len(STREAMS)} streams at default sizes (min {minimum})",
            got,
            f"<= {bound:.0f}",
            got <= bound,
            f"{got} ({got / minimum:.3f}x)",
        )

    # --- all of it -----------------------------------------------------------------------------------
    def run(self) -> int:
        started = time.perf_counter()
        self.cpu()
        self.wall()
        self.rss()
        self.requests_default()
        flight = max(r.stats.get("max_in_flight", 0) for r in self.connector_runs)
        rejected = sum(r.stats.get("rejected_1322", 0) for r in self.connector_runs)
        self.row(
            "*",
            f"max in flight, all {len(self.connector_runs)} connector runs",
            flight,
            f"<= {LIMIT}",
            flight <= LIMIT,
            str(flight),
        )
        self.row("*", "BDC_1322 rejections, all connector runs", rejected, "== 0", rejected == 0, str(rejected))
        self.results["max_in_flight"] = flight
        self.results["rejected_1322"] = rejected
        self.results["elapsed_s"] = time.perf_counter() - started
        self.results["problems"] = self.problems
        self.results["failed_targets"] = self.failed_targets
        return 0


def machine() -> Dict[str, str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        from importlib.metadata import version

        cdk = version("airbyte-cdk")
    except Exception:
        cdk = "?"
    return {
        "nproc": str(usable),
        "cpu": model,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "airbyte_cdk": cdk,
        "platform": platform.platform(),
        "loadavg": "/".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def render(bench: Bench, info: Dict[str, str]) -> str:
    header = ["#", "figure", "value", "target", "result"]
    lines = [
        f"source-bill benchmark{' (QUICK: small sizes, figures not meaningful)' if bench.quick else ''}",
        f"machine: nproc={info['nproc']}, CPU {info['cpu']}, {info['python']}, airbyte-cdk {info['airbyte_cdk']}, "
        f"{info['platform']}",
        f"load average (1/5/15 min) at start {info['loadavg']}, at end "
        + "/".join(f"{x:.1f}" for x in os.getloadavg())
        + " (other work on the machine skews wall times and, less, CPU)",
        "",
    ]
    widths = [max(len(str(r[i])) for r in [header, *bench.rows]) for i in range(len(header))]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    lines.append(fmt(header))
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    order = ["1", "2a", "2b", "3", "4", "*"]
    rows = sorted(bench.rows, key=lambda r: order.index(r[0]) if r[0] in order else len(order))
    lines.extend(fmt(r) for r in rows)
    lines.append("")
    lines.append(f"benchmark run time: {bench.results['elapsed_s']:.0f} s")
    if bench.problems:
        lines.append("PROBLEMS (a run failed or returned the wrong number of records):")
        lines.extend(f"  - {p}" for p in bench.problems)
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="source-bill benchmark against the BILL emulator")
    parser.add_argument("--quick", action="store_true", help="small sizes for a CI smoke run (< 60 s)")
    parser.add_argument("--json", help="also write the figures and every run as JSON to this path")
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target fails")
    args = parser.parse_args(argv)

    info = machine()
    with tempfile.TemporaryDirectory(prefix="source-bill-bench-") as tmp:
        bench = Bench(args.quick, Path(tmp))
        bench.run()
    bench.results["machine"] = info
    print(render(bench, info), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(bench.results, indent=2, default=str))
    if bench.problems:
        return 1
    if args.strict and bench.failed_targets:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
