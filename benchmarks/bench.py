"""source-bill benchmark: CPU, wall time under latency, memory and request count, against the BILL emulator.

    .venv/bin/python benchmarks/bench.py            # full run, about 5 minutes on 2 cores
    .venv/bin/python benchmarks/bench.py --quick    # small sizes, CI smoke run (< 60 s); figures not meaningful
    .venv/bin/python benchmarks/bench.py --json out.json --strict
    .venv/bin/python benchmarks/bench.py --cdk-concurrent   # also measure benchmarks/cdk_concurrent_variant.py

Run it with the interpreter the connector is installed in (`.venv`, made by `bash scripts/test.sh`).

The emulator runs in this process; the connector (`source-bill read`) and the baseline
(benchmarks/plain_reader.py) run as child processes whose stdout is drained through a pipe that counts
RECORD lines. CPU and peak RSS come from os.wait4 in benchmarks/rusage_launch.py (the child's own rusage);
wall times are measured at the emulator (last response - first request). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import compileall
import gc
import importlib.util
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_MISSING = [m for m in ("airbyte_cdk",) if importlib.util.find_spec(m) is None]
if _MISSING:  # every connector run would fail after minutes of setup: say so at once, before importing it
    print(
        f"error: {sys.executable} cannot import {', '.join(_MISSING)}. Run the benchmark with the interpreter the "
        "connector is installed in: .venv/bin/python benchmarks/bench.py (bash scripts/test.sh creates .venv).",
        file=sys.stderr,
    )
    sys.exit(2)

from benchmarks import request_minimum  # noqa: E402
from integration_tests.bill_emulator import STREAMS, BillEmulator, format_ms, parse_instant_ms  # noqa: E402
from source_bill.declarations import declarations  # noqa: E402

PAGE = 100
LATENCY_S = 0.1
LIMIT = 3  # BILL: concurrent requests per organization; the emulator rejects a 4th with BDC_1322
PLAIN = str(ROOT / "benchmarks" / "plain_reader.py")
VARIANT = str(ROOT / "benchmarks" / "cdk_concurrent_variant.py")
VARIANT_TAG = "CDK-concurrent variant"  # figures of the variant are labelled with this
CDK_PARTITIONS = 12  # default: the variant's updatedTime partitions for the 1-stream read (4 per request slot)
LAUNCH = str(ROOT / "benchmarks" / "rusage_launch.py")
RECORD_MARKS = (b'"type":"RECORD"', b'"type": "RECORD"')  # orjson (CDK) and json.dumps' default separators
STATE_MARKS = (b'"type":"STATE"', b'"type": "STATE"')
ERROR_MARK = b'"failure_type"'

FULL = {
    "cpu_records": 200_000,
    "cpu_runs": 3,
    "wall_streams": 6,
    "wall_stream_size": 2_000,
    "wall_single_size": 6_000,
    "rss_sizes": (30_000, 300_000),
    "rss_runs": 3,
    "mutation_size": 6_000,
    "mutation_edits": 120,
    "adaptive_size": 6_000,
}
QUICK = {
    "cpu_records": 5_000,
    "cpu_runs": 3,
    "wall_streams": 6,
    "wall_stream_size": 300,
    "wall_single_size": 1_200,
    "rss_sizes": (3_000, 30_000),
    "rss_runs": 1,
    "mutation_size": 1_200,
    "mutation_edits": 24,
    "adaptive_size": 3_000,
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


def _drain(
    pipe: Any, result: Dict[str, int], ids: Optional[set[Any]] = None, states: Optional[Dict[str, Any]] = None
) -> None:
    """Count RECORD lines (and error traces) in the child's stdout without keeping it.

    With ``ids``, also parse every RECORD line and add its record's ``id`` to the set (to tell "each record
    exactly once" from "the right count"); used for a few small runs only. With ``states``, keep each stream's
    last STATE message there (the states a next sync starts from).
    """
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
        if ids is not None:
            _collect_ids(data[:cut], ids)
        if states is not None:
            _collect_states(data[:cut], states)
        tail = data[cut:]
    records += sum(tail.count(mark) for mark in RECORD_MARKS)
    errors += tail.count(ERROR_MARK)
    if ids is not None:
        _collect_ids(tail, ids)
    if states is not None:
        _collect_states(tail, states)
    result["records"], result["errors"] = records, errors


def _collect_ids(data: bytes, ids: set[Any]) -> None:
    for line in data.splitlines():
        if any(mark in line for mark in RECORD_MARKS):
            ids.add(json.loads(line)["record"]["data"].get("id"))


def _collect_states(data: bytes, states: Dict[str, Any]) -> None:
    for line in data.splitlines():
        if any(mark in line for mark in STATE_MARKS):
            message = json.loads(line)
            states[message["state"]["stream"]["stream_descriptor"]["name"]] = message["state"]


def run_child(
    label: str,
    cmd: Sequence[str],
    emu: BillEmulator,
    workdir: Path,
    ids: Optional[set[Any]] = None,
    states: Optional[Dict[str, Any]] = None,
) -> Run:
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
        reader = threading.Thread(target=_drain, args=(proc.stdout, counted, ids, states), daemon=True)
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
    def __init__(self, quick: bool, workdir: Path, cdk: bool = False, cdk_partitions: int = CDK_PARTITIONS) -> None:
        self.quick = quick
        self.cdk = cdk  # also measure benchmarks/cdk_concurrent_variant.py
        self.cdk_partitions = cdk_partitions
        self.variant_runs: List[Run] = []
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

    def catalog(self, streams: Sequence[str], incremental: bool = False) -> str:
        """A configured catalog: full refresh (overwrite), or with ``incremental`` incremental (append)."""
        return self.write_json(
            "catalog_" + ("incremental_" if incremental else "") + "_".join(streams)[:80] + ".json",
            {
                "streams": [
                    {
                        "stream": {
                            "name": s,
                            "json_schema": {},
                            "supported_sync_modes": ["full_refresh", "incremental"],
                        },
                        "sync_mode": "incremental" if incremental else "full_refresh",
                        "destination_sync_mode": "append" if incremental else "overwrite",
                    }
                    for s in streams
                ]
            },
        )

    def connector(
        self,
        label: str,
        emu: BillEmulator,
        streams: Sequence[str],
        expect: Optional[int],
        *,
        incremental: bool = False,
        ids: Optional[set[Any]] = None,
        state: Optional[List[Any]] = None,
        states: Optional[Dict[str, Any]] = None,
    ) -> Run:
        """``source-bill read``; ``incremental``: from ``state`` (none by default), each stream's last state kept in
        ``states`` when given. ``expect`` None: the count is not known in advance."""
        cfg = self.write_json("config.json", emu.config())
        cmd = [*source_bill_cmd(), "read", "--config", cfg, "--catalog", self.catalog(streams, incremental)]
        if state is not None:
            cmd += ["--state", self.write_json("state.json", state)]
        run = run_child(label, cmd, emu, self.workdir, ids, states)
        self.connector_runs.append(run)
        self._check(run, expect)
        return run

    def variant(
        self,
        label: str,
        emu: BillEmulator,
        streams: Sequence[str],
        expect: Optional[int],
        *,
        incremental: bool = False,
        config: Optional[Dict[str, Any]] = None,
        ids: Optional[set[Any]] = None,
    ) -> Run:
        """benchmarks/cdk_concurrent_variant.py read (the CDK concurrent framework over source_bill's parts)."""
        cfg = self.write_json("config_variant.json", {**emu.config(), **(config or {})})
        cmd = [sys.executable, VARIANT, "read", "--config", cfg, "--catalog", self.catalog(streams, incremental)]
        run = run_child(label, cmd, emu, self.workdir, ids)
        self.variant_runs.append(run)
        self._check(run, expect)
        return run

    def plain(self, label: str, emu: BillEmulator, streams: Sequence[str], expect: int, *extra: str) -> Run:
        cfg = self.write_json("config.json", emu.config())
        plan = self.write_json("plan.json", {d.name: [d.path, dict(d.extra_params)] for d in declarations()})
        cmd = [sys.executable, PLAIN, "--config", cfg, "--plan", plan, "--streams", ",".join(streams), *extra]
        run = run_child(label, cmd, emu, self.workdir)
        self._check(run, expect)
        return run

    def _check(self, run: Run, expect: Optional[int]) -> None:
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
        if run.rc != 0 or (expect is not None and run.records != expect) or run.errors:
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
        if self.cdk:
            # 12 reads of n records in one emulator: at full size (2,001 requests each) that passes BILL's hourly
            # 20,000 per devKey, and the 11th run would wait (BDC_1144) for the hour to turn. Pacing is not measured.
            emu.settings.hourly_limit = None
        try:
            conn: List[Run] = []
            plain: List[Run] = []
            fast: List[Run] = []  # the same loop with orjson: a stricter yardstick, for information
            variant: List[Run] = []  # --cdk-concurrent only
            for i in range(self.sizes["cpu_runs"]):
                # ABBA: connector and orjson loop swap places every round, so a drift of the machine's load
                # weighs on both alike; the stdlib loop runs between them
                order = ("connector", "orjson") if i % 2 == 0 else ("orjson", "connector")
                for who in order:
                    if who == "connector":
                        conn.append(self.connector(f"cpu connector {i + 1}", emu, ["vendors"], n))
                    else:
                        fast.append(self.plain(f"cpu plain orjson {i + 1}", emu, ["vendors"], n, "--parser", "orjson"))
                    if who == order[0]:
                        plain.append(self.plain(f"cpu plain {i + 1}", emu, ["vendors"], n))
                if self.cdk:
                    variant.append(self.variant(f"cpu cdk variant {i + 1}", emu, ["vendors"], n))
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
        # Each round's connector run against the orjson run beside it (ABBA: one of them right after the other).
        # This machine's speed drifts by 10 % or more between rounds minutes apart, and a pair sees the same
        # drift, so the median of the rounds' ratios is the figure; the ratio of the two medians is shown beside.
        paired = [a.cpu_s / b.cpu_s for a, b in zip(conn, fast, strict=True)]
        q = statistics.median(paired)
        self.row(
            "1",
            "CPU ratio connector/plain-with-orjson (median of the ABBA rounds' ratios)",
            q,
            "<= 1.25",
            q <= 1.25,
            f"{q:.2f} (rounds: {', '.join(f'{x:.2f}' for x in paired)})",
        )
        self.row("1", "CPU ratio connector/plain-with-orjson, ratio of the medians", c / f, "-", None, f"{c / f:.2f}")
        self.results["emulator_build_s"] = {f"vendors={n}": built}
        if variant:
            v = statistics.median(r.cpu_s for r in variant)
            pairs = ", ".join(f"{a.cpu_s:.2f}/{b.cpu_s:.2f}" for a, b in zip(variant, plain, strict=True))
            self.row(
                "1",
                f"{VARIANT_TAG}: CPU s, full refresh of {n:,} records",
                v,
                "-",
                None,
                f"{v:.2f} (runs variant/plain: {pairs})",
            )
            self.row(
                "1",
                f"{VARIANT_TAG}: CPU ratio variant/plain (median of 3 alternated)",
                v / p,
                "<= 1.3",
                v / p <= 1.3,
                f"{v / p:.2f}",
            )
            self.row("1", f"{VARIANT_TAG}: CPU ratio variant/connector", v / c, "-", None, f"{v / c:.2f}")
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
        if variant:
            counts = sorted({r.stats.get("total_requests") for r in variant})
            self.row(
                "4",
                f"{VARIANT_TAG}: requests, {n:,}-record read (min {minimum:,})",
                max(counts),
                "-",
                None,
                f"{'/'.join(str(x) for x in counts)} ({max(counts) / minimum:.3f}x)",
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
            va = self.variant("wall (a) cdk variant", emu, streams, k * size) if self.cdk else None
            # (b) one stream; the plain reader is told an even three-way split of updatedTime
            times = sorted(r["updatedTime"] for r in emu.records(SINGLE_STREAM))
            a, b = times[len(times) // 3], times[2 * len(times) // 3]
            cb = self.connector("wall (b) connector", emu, [SINGLE_STREAM], single)
            pb = self.plain("wall (b) plain", emu, [SINGLE_STREAM], single, "--threads", "3", "--split", f"{a},{b}")
            vb_ids: set[Any] = set()
            vb = None
            if self.cdk:  # incremental, no state: ConcurrentCursor cuts [start_date, now] into slice_range windows
                slicing = self.variant_slicing(times[0])
                vb = self.variant(
                    "wall (b) cdk variant", emu, [SINGLE_STREAM], single, incremental=True, config=slicing, ids=vb_ids
                )
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
            # What concurrency costs in CPU where it runs (at this latency; with none, the connector does not slice)
            self.row(
                key,
                f"CPU s, {what}: connector / plain 3 threads (start-up included)",
                conn.cpu_s / plain.cpu_s,
                "-",
                None,
                f"{conn.cpu_s:.2f} / {plain.cpu_s:.2f}",
            )
        for key, var, plain, pages, target, what in (
            ("2a", va, pa, pages_a, 1.15, f"{k} streams x {math.ceil(size / PAGE)} pages, full refresh"),
            ("2b", vb, pb, pages_b, 1.5, f"1 stream x {pages_b} pages, incremental, {self.cdk_partitions} partitions"),
        ):
            if var is None:
                continue
            bound = (pages + 1) * LATENCY_S / LIMIT
            ratio = var.wall_s / plain.wall_s
            self.row(
                key,
                f"{VARIANT_TAG}: wall s @100 ms, {what}",
                var.wall_s,
                "-",
                None,
                f"{var.wall_s:.2f} ({var.stats['total_requests']} requests)",
            )
            self.row(
                key,
                f"{VARIANT_TAG}: wall ratio variant/plain 3 threads",
                ratio,
                f"<= {target}",
                ratio <= target,
                f"{ratio:.2f}",
            )
            self.row(
                key,
                f"{VARIANT_TAG}: wall ratio variant/bound ({bound:.2f} s)",
                var.wall_s / bound,
                "-",
                None,
                f"{var.wall_s / bound:.2f}",
            )
            flight, rejected = var.stats["max_in_flight"], var.stats["rejected_1322"]
            self.row(
                key,
                f"{VARIANT_TAG}: max in flight at the emulator",
                flight,
                f"<= {LIMIT}",
                flight <= LIMIT,
                str(flight),
            )
            self.row(key, f"{VARIANT_TAG}: BDC_1322 rejections", rejected, "== 0", rejected == 0, str(rejected))
        sliced_bound = (pages_b + 1) * 1.02 + 1  # target: minimum x 1.02 + 1 per sliced stream
        for who, run in (("connector", cb), (VARIANT_TAG, vb)):
            if run is None:
                continue
            got = run.stats["total_requests"]
            self.row(
                "2b",
                f"{'' if who == 'connector' else who + ': '}requests, 1 stream x {pages_b} pages, sliced "
                f"(min {pages_b + 1})",
                got,
                f"<= {sliced_bound:.2f}",
                got <= sliced_bound,
                str(got),
            )
        if vb is not None:
            once = len(vb_ids) == single == vb.records
            self.row(
                "2b",
                f"{VARIANT_TAG}: distinct ids / records / emulator's, incremental read",
                len(vb_ids),
                f"all == {single}",
                once,
                f"{len(vb_ids)} / {vb.records} / {single}",
            )
            if not once:
                self.problems.append(
                    f"{vb.label}: {len(vb_ids)} distinct ids in {vb.records} records, expected {single}"
                )

    # --- 2c/2d. adaptive slices on a uniform and a skewed stream ----------------------------------------
    def adaptive(self) -> None:
        """One stream, its updatedTime spread evenly (2c) or sparse early and dense late (2d, an organization that
        grew): the connector's slices against a plain 3-thread reader told the ideal split (the record count's
        thirds), at 100 ms a request."""
        n = self.sizes["adaptive_size"]
        pages = math.ceil(n / PAGE)
        for key, shape, spread in (("2c", "uniform", lambda x: x), ("2d", "skewed", lambda x: x**0.25)):
            emu, _ = self.emulator({SINGLE_STREAM: n})
            try:
                now = parse_instant_ms(emu.now_iso())
                start, span = now - 400 * 86_400_000, 398 * 86_400_000  # ends two days ago: nothing recent
                ids = sorted(r["id"] for r in emu.records(SINGLE_STREAM))
                for i, rid in enumerate(ids):
                    emu.set_updated_time(SINGLE_STREAM, rid, format_ms(start + int(span * spread(i / n))))
                times = sorted(r["updatedTime"] for r in emu.records(SINGLE_STREAM))
                a, b = times[n // 3], times[2 * n // 3]
                emu.settings.latency_s = LATENCY_S
                conn = self.connector(f"adaptive {shape} connector", emu, [SINGLE_STREAM], n)
                plain = self.plain(
                    f"adaptive {shape} plain", emu, [SINGLE_STREAM], n, "--threads", "3", "--split", f"{a},{b}"
                )
            finally:
                emu.stop()
            what = f"1 {shape} stream x {pages} pages"
            ratio = conn.wall_s / plain.wall_s
            self.row(
                key,
                f"wall s @100 ms, {what}: connector / oracle-split plain 3 threads",
                ratio,
                "<= 1.2",
                ratio <= 1.2,
                f"{conn.wall_s:.2f} / {plain.wall_s:.2f} = {ratio:.2f}",
            )
            flight = conn.stats["max_in_flight"]
            self.row(key, f"max in flight (connector), {what}", flight, "== 3", flight == LIMIT, str(flight))
            got, minimum = conn.stats["total_requests"], pages + 1
            self.row(
                key,
                f"requests (connector), {what} (min {minimum})",
                got,
                f"<= {minimum + 3}",
                got <= minimum + 3,
                str(got),
            )
            self.row(
                key,
                f"CPU s, {what}, sliced: connector / plain 3 threads (start-up included)",
                conn.cpu_s / plain.cpu_s,
                "-",
                None,
                f"{conn.cpu_s:.2f} / {plain.cpu_s:.2f}",
            )

    def variant_slicing(self, earliest: str) -> Dict[str, Any]:
        """start_date and slice_range_days for the variant's 1-stream incremental read.

        start_date: the day of the stream's earliest updatedTime (what a user would enter: when the BILL account
        began). slice_range_days: [start_date, now] in ``cdk_partitions`` equal windows, so ConcurrentCursor
        yields that many partitions (a minute of slack so the window that reaches "now" is not a sliver).
        """
        start = datetime.fromisoformat(earliest[:10]).replace(tzinfo=UTC)
        span = datetime.now(UTC) + timedelta(minutes=1) - start
        days = span.total_seconds() / 86400 / self.cdk_partitions
        self.results["cdk_variant_slicing"] = {"start_date": earliest[:10], "slice_range_days": days}
        return {"start_date": earliest[:10], "slice_range_days": days}

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

    # --- 4. requests for a full sync at default sizes, and an incremental child sync ------------------------
    def requests_default(self) -> None:
        emu, _ = self.emulator({})
        try:
            sizes = {s: len(emu.records(s)) for s in STREAMS}
            least, records = request_minimum.full_sync(emu, request_minimum.EVERY_STREAM)
            run = self.connector("requests every stream", emu, request_minimum.EVERY_STREAM, records)
        finally:
            emu.stop()
        got = run.stats["total_requests"]
        bound = least * 1.02 + 3
        self.row(
            "4",
            f"requests, full sync of all {len(request_minimum.EVERY_STREAM)} streams, child lists included, at default "
            f"sizes (min {least})",
            got,
            f"<= {bound:.0f}",
            got <= bound,
            f"{got} ({got / least:.3f}x)",
        )
        self.requests_children()
        minimum = sum(max(1, math.ceil(n / PAGE)) for n in sizes.values()) + 1  # the 22 lists, for the variant
        bound = minimum * 1.02
        if not self.cdk:
            return
        # The same sync, incremental with no state, by the connector and by the variant with the slicing that the
        # 1-stream figure used: ConcurrentCursor cuts every stream's [start_date, now] into slice_range windows,
        # large or small, and each window costs at least one request.
        emu, _ = self.emulator({})
        try:
            total = sum(sizes.values())
            incremental = [d.name for d in declarations() if d.incremental]
            earliest = min(r["updatedTime"] for s in incremental for r in emu.records(s))
            ours = self.connector("requests all streams incremental", emu, list(STREAMS), total, incremental=True)
            theirs = self.variant(
                "requests all streams incremental cdk variant",
                emu,
                list(STREAMS),
                total,
                incremental=True,
                config=self.variant_slicing(earliest),
            )
        finally:
            emu.stop()
        for who, run in (("connector", ours), (VARIANT_TAG, theirs)):
            got = run.stats["total_requests"]
            self.row(
                "4",
                f"{'' if who == 'connector' else who + ': '}requests, incremental sync of all {len(STREAMS)} streams, "
                f"no state (min {minimum})",
                got,
                f"<= {bound:.0f}",
                got <= bound,
                f"{got} ({got / minimum:.3f}x)",
            )

    def requests_children(self) -> None:
        """An incremental sync of the four child streams and their parents after 5 % of the parents changed,
        from the states of a first sync: the changed parents' lists and their parents' filtered pages."""
        names = [*request_minimum.CHILDREN.values(), *request_minimum.CHILDREN]
        emu, _ = self.emulator({})
        try:
            _, records = request_minimum.full_sync(emu, names)
            states: Dict[str, Any] = {}
            self.connector("requests children first sync", emu, names, records, incremental=True, states=states)
            changed, extra = request_minimum.change_parents(emu)
            run = self.connector(
                "requests children incremental", emu, names, None, incremental=True, state=list(states.values())
            )
        finally:
            emu.stop()
        got = run.stats["total_requests"]
        bound = (changed + extra) * 1.05 + 3
        self.row(
            "4",
            f"requests, incremental sync of the 4 child streams and their parents after {changed} parents (5 %) "
            f"changed (changed + extra pages {changed + extra})",
            got,
            f"<= {bound:.1f}",
            got <= bound,
            f"{got} ({got / (changed + extra):.3f}x)",
        )

    # --- 5. records edited during the sync --------------------------------------------------------------
    def mutation(self) -> None:
        """Records edited while a large stream is read (BILL's page tokens may be offsets): how many records that
        did not change are never emitted although the final cursor is past them (lost: no later sync reads them)."""
        n, k = self.sizes["mutation_size"], self.sizes["mutation_edits"]
        stream = SINGLE_STREAM
        at = math.ceil(n / PAGE) // 3
        edited: List[str] = []

        def edit(emu_: BillEmulator, name: str, index: int) -> None:
            if name == stream and index == at and not edited:  # a third of the way through the read
                rows = sorted(emu_.records(stream), key=lambda r: (r["updatedTime"], r["id"]))
                for row in rows[:: max(1, len(rows) // k)][:k]:
                    emu_.update_record(stream, row["id"], {"description": "edited during the sync"})
                    edited.append(row["id"])

        results: List[tuple[str, int, Run]] = []
        contenders = ["connector", VARIANT_TAG] if self.cdk else ["connector"]
        for who in contenders:  # each on a fresh emulator with the same data and the same edits
            emu, _ = self.emulator({stream: n})
            emu.settings.latency_s = 0.02
            edited.clear()
            before = {r["id"]: r["updatedTime"] for r in emu.records(stream)}
            emu.before_list(edit)
            ids: set[Any] = set()
            try:
                if who == "connector":
                    run = self.connector(f"mutation {who}", emu, [stream], None, incremental=True, ids=ids)
                else:
                    slicing = self.variant_slicing(min(before.values()))
                    run = self.variant(
                        "mutation cdk variant", emu, [stream], None, incremental=True, config=slicing, ids=ids
                    )
                after = {r["id"]: r["updatedTime"] for r in emu.records(stream)}
            finally:
                emu.stop()
            if len(edited) != k:
                self.problems.append(f"{run.label}: {len(edited)} records edited, expected {k}")
            unchanged = [rid for rid, t in after.items() if before.get(rid) == t]
            results.append((who, sum(1 for rid in unchanged if rid not in ids), run))
        for who, lost, run in results:
            self.row(
                "5",
                f"{'' if who == 'connector' else who + ': '}records lost when {k} of {n:,} are edited mid-read "
                "(unchanged, never emitted)",
                lost,
                "== 0",
                lost == 0,
                f"{lost} ({run.records:,} records emitted)",
            )

    # --- all of it -----------------------------------------------------------------------------------
    def run(self) -> int:
        started = time.perf_counter()
        self.cpu()
        self.wall()
        self.adaptive()
        self.rss()
        self.requests_default()
        self.mutation()
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
        if self.variant_runs:
            vflight = max(r.stats.get("max_in_flight", 0) for r in self.variant_runs)
            vrejected = sum(r.stats.get("rejected_1322", 0) for r in self.variant_runs)
            self.row(
                "*",
                f"{VARIANT_TAG}: max in flight, all {len(self.variant_runs)} variant runs",
                vflight,
                f"<= {LIMIT}",
                vflight <= LIMIT,
                str(vflight),
            )
            self.row(
                "*",
                f"{VARIANT_TAG}: BDC_1322 rejections, all variant runs",
                vrejected,
                "== 0",
                vrejected == 0,
                str(vrejected),
            )
            self.results["cdk_variant_max_in_flight"] = vflight
            self.results["cdk_variant_rejected_1322"] = vrejected
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
    parser.add_argument(
        "--cdk-concurrent",
        action="store_true",
        help="also measure benchmarks/cdk_concurrent_variant.py (the airbyte-cdk concurrent framework): CPU and wall "
        "rows labelled 'CDK-concurrent variant'",
    )
    parser.add_argument(
        "--cdk-partitions",
        type=int,
        default=CDK_PARTITIONS,
        help=f"with --cdk-concurrent: updatedTime partitions for the 1-stream read (default {CDK_PARTITIONS})",
    )
    args = parser.parse_args(argv)
    # Bytecode for the connector's modules, as `pip install` writes it into the image: without it a machine with
    # PYTHONDONTWRITEBYTECODE set (this project's has) compiles source_bill's 25 modules on every run, 0.2 s of CPU
    # that no installed connector spends. (The plain loop is one script, compiled every run either way.)
    compileall.compile_dir(str(ROOT / "source_bill"), quiet=1)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="source-bill-bench-") as tmp:
        bench = Bench(args.quick, Path(tmp), cdk=args.cdk_concurrent, cdk_partitions=args.cdk_partitions)
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
