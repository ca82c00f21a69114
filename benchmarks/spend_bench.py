#!/usr/bin/env python3
"""Spend & Expense figures: requests a minute, requests for a full S&E sync against the minimum, and transactions
lost when 5 % of them are edited during an incremental read.

    python benchmarks/spend_bench.py            # 10,000 transactions
    python benchmarks/spend_bench.py --quick    # 2,000 transactions: a smoke run
    python benchmarks/spend_bench.py --json out.json --strict   # exit 2 on a FAIL

The connector runs in this process through the Airbyte entrypoint, against the bundled emulator, on one fake clock
shared by both (the connector's pacing sleeps advance it; the emulator counts its 60-a-minute window on it). So the
figures are counts, not timings, and do not depend on the machine's load. Simulated minutes are printed for
information: with 60 requests a minute they are about requests / 60.

Figures:
- most requests in any 60 s (emulator clock, every accepted S&E request of both runs): target <= 60, and no 429;
- requests of a full S&E sync (all eight streams, no edits) against the minimum: ceil(rows / page size) for each
  list (transactions 50, others 100), one per budget and custom field for their children (plus pages), and one per
  budget the list omits: target <= minimum x 1.05 + windows (the transactions read costs one request per window);
- transactions lost: an incremental read of spend_transactions while 5 % of the transactions are edited between
  page answers; lost = transactions never edited and never emitted: target 0;
- a long full-refresh list (spend_cards, as many cards as transactions): requests against ceil(rows / 100) (one row
  of overlap a page: about 1 % more), and cards lost when 10 cards already read are hard-deleted during the read
  (each shifts the rows behind it back): target 0.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airbyte_cdk.models import SyncMode  # noqa: E402
from airbyte_cdk.test.entrypoint_wrapper import read  # noqa: E402

from integration_tests.bill_emulator import BillEmulator  # noqa: E402
from integration_tests.test_spend import SPEND, FakeTime, catalog, most_in_any_minute, records, source  # noqa: E402


def minimum_requests(emu: BillEmulator) -> int:
    spend = emu.spend
    pages = lambda rows, size: max(1, math.ceil(rows / size))  # noqa: E731 - an empty list still costs one request
    budgets = spend.records("budgets")
    hidden = spend.hidden_budget_ids()
    return (
        pages(len(spend.records("transactions")), 50)
        + pages(len(spend.records("cards")), 100)
        + pages(len(budgets) - len(hidden), 100)
        + len(hidden)
        + sum(pages(len(spend.members[b["id"]]), 100) for b in budgets)
        + pages(len(spend.records("users")), 100)
        + pages(len(spend.records("reimbursements")), 100)
        + pages(len(spend.records("custom-fields")), 100)
        + sum(pages(len(rows), 100) for rows in spend.values.values())
    )


def windows_of(output: Any) -> int:
    for message in output.logs:
        found = re.search(r"spend_transactions: (\d+) updatedTime windows", message.log.message)
        if found:
            return int(found.group(1))
    raise SystemExit("the connector did not log its window count")


def run(transactions: int) -> Dict[str, Any]:
    figures: Dict[str, Any] = {}
    time = FakeTime()
    with BillEmulator(seed=21, clock=time, sizes={"vendors": 1}, spend_sizes={"transactions": transactions}) as emu:
        config = emu.config(spend_api_token=emu.spend.token)
        full = read(source(time), config, catalog(SPEND))
        if full.errors:
            raise SystemExit(f"full sync failed: {full.errors[0].trace.error.message}")
        expected = sorted(t["id"] for t in emu.spend.records("transactions"))
        if sorted(r["id"] for r in records(full, "spend_transactions")) != expected:
            raise SystemExit("the full sync did not return exactly the emulator's transactions")
        figures["full_requests"] = len(emu.spend.accepted_at)
        figures["full_minimum"] = minimum_requests(emu)
        figures["full_windows"] = windows_of(full)
        figures["full_minutes"] = (time.now - min(emu.spend.accepted_at)) / 60

        # incremental read from scratch while 5 % are edited between page answers, a minute later (each run has its
        # own pacing window: a run started within a minute of another meets S&E's 429 and waits, as it should)
        time.sleep(60)
        rng = random.Random(5)
        ids = [t["id"] for t in emu.spend.records("transactions")]
        todo: List[str] = rng.sample(ids, len(ids) // 20)
        edited: set = set()
        per_page = max(1, len(todo) // max(1, figures["full_windows"]) + 1)

        def edit(spend: Any, kind: str, index: int) -> None:
            for _ in range(per_page if kind == "transactions" else 0):
                if todo:
                    row_id = todo.pop()
                    spend.edit("transactions", row_id)
                    edited.add(row_id)

        emu.spend.before_serve(edit)
        incremental = read(source(time), config, catalog(["spend_transactions"], SyncMode.incremental))
        if incremental.errors:
            raise SystemExit(f"incremental read failed: {incremental.errors[0].trace.error.message}")
        emitted = {r["id"] for r in records(incremental, "spend_transactions")}
        figures["edited"] = len(edited)
        figures["edited_share"] = len(edited) / len(ids)
        figures["lost"] = len(set(ids) - edited - emitted)
        figures["most_in_60s"] = most_in_any_minute(emu.spend.accepted_at)
        figures["rejected_429"] = emu.spend.rejected_429
    figures.update(long_list(transactions))
    return figures


def long_list(cards: int) -> Dict[str, Any]:
    time = FakeTime()
    sizes = {"cards": cards, "transactions": 0}
    with BillEmulator(seed=22, clock=time, sizes={"vendors": 1}, spend_sizes=sizes) as emu:
        config = emu.config(spend_api_token=emu.spend.token)
        read(source(time), config, catalog(["spend_cards"]))
        figures: Dict[str, Any] = {"list_rows": cards, "list_requests": len(emu.spend.accepted_at)}
        figures["list_minimum"] = math.ceil(cards / 100)
        before = {c["id"] for c in emu.spend.records("cards")}
        emu.spend.settings.delete_while_paging = {"cards": 10}
        time.sleep(60)
        emu.request_log.clear()
        output = read(source(time), config, catalog(["spend_cards"]))
        emitted = [c["id"] for c in records(output, "spend_cards")]
        figures["list_deleted"] = len(emu.spend.deleted_while_paging)
        figures["list_lost"] = len(before - set(emitted))
        figures["list_twice"] = len(emitted) - len(set(emitted))
        figures["list_requests_with_deletes"] = len(emu.request_log)
        return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()
    transactions = 2_000 if args.quick else 10_000
    f = run(transactions)
    bound = f["full_minimum"] * 1.05 + f["full_windows"]
    target = f"<= {f['full_minimum']:,} x 1.05 + {f['full_windows']:,} windows = {bound:,.0f}"
    rows = [
        ("most S&E requests in any 60 s", f"{f['most_in_60s']} (429s: {f['rejected_429']})", "<= 60, no 429",
         f["most_in_60s"] <= 60 and f["rejected_429"] == 0),
        (f"requests, full S&E sync ({transactions:,} transactions)", f"{f['full_requests']:,}",
         target, f["full_requests"] <= bound),
        ("requests / minimum", f"{f['full_requests'] / f['full_minimum']:.2f}", "info", None),
        ("simulated minutes of the full sync", f"{f['full_minutes']:.1f}", "info", None),
        (f"transactions lost, {f['edited_share']:.0%} edited during the read", f"{f['lost']} ({f['edited']:,} edited)",
         "0", f["lost"] == 0),
        (f"requests, spend_cards of {f['list_rows']:,} rows", f"{f['list_requests']:,}",
         f"<= {f['list_minimum']:,} x 1.05", f["list_requests"] <= f["list_minimum"] * 1.05),
        (f"cards lost / twice, {f['list_deleted']} deleted during the read",
         f"{f['list_lost']} / {f['list_twice']} ({f['list_requests_with_deletes']:,} requests)", "0 / 0",
         f["list_lost"] == 0 and f["list_twice"] == 0),
    ]  # fmt: skip
    print(f"source-bill Spend & Expense benchmark ({'quick' if args.quick else 'full'})")
    print("| figure | value | target | result |\n|---|---|---|---|")
    failed = False
    for name, value, target, passed in rows:
        verdict = "info" if passed is None else ("PASS" if passed else "FAIL")
        failed |= passed is False
        print(f"| {name} | {value} | {target} | {verdict} |")
    if args.json:
        args.json.write_text(json.dumps(f, indent=2))
    return 2 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
