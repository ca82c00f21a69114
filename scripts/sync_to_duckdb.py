#!/usr/bin/env python3
"""Sync every source-bill stream into a local DuckDB file with PyAirbyte (offline).

    python scripts/sync_to_duckdb.py                       # no credentials -> bundled BILL emulator
    python scripts/sync_to_duckdb.py --config secrets/config.json
    BILL_USERNAME=... BILL_PASSWORD=... BILL_ORGANIZATION_ID=... BILL_DEV_KEY=... \\
        [BILL_ENVIRONMENT=sandbox] [BILL_START_DATE=2024-01-01T00:00:00Z] python scripts/sync_to_duckdb.py
    BILL_CLIENT_ID=... BILL_CLIENT_SECRET=... BILL_ORGANIZATION_ID=... python scripts/sync_to_duckdb.py   # OAuth

Options: --duckdb PATH (default ./.cache/bill/bill.duckdb), --json-summary FILE, --full-refresh,
--emulator (force the emulator even if credentials are set), --emulator-seed N.

Run it again and it syncs incrementally: PyAirbyte keeps each stream's state in the DuckDB file
(table _airbyte_state) and hands it back to the connector. `scripts/sync.sh` wraps this script
with the virtualenv setup.

Secrets (password, dev_key, client_secret) are never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import Any

# Must be set before `import airbyte`: without offline mode PyAirbyte fetches the connector registry
# from connectors.airbyte.com (fails here), and DO_NOT_TRACK turns its telemetry off.
os.environ["AIRBYTE_OFFLINE_MODE"] = "1"
os.environ["DO_NOT_TRACK"] = "1"

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from source_bill.config import upgrade  # noqa: E402  (after the environment above; the connector's own migration)

SOURCE_NAME = "source-bill"
DEFAULT_DUCKDB = Path(".cache/bill/bill.duckdb")
ENV_KEYS = {  # env var -> config key
    "BILL_ORGANIZATION_ID": "organization_id",
    "BILL_ENVIRONMENT": "environment",
    "BILL_START_DATE": "start_date",
    "BILL_BASE_URL": "base_url",
    "BILL_OAUTH_TOKEN_URL": "oauth_token_url",
}
SIGN_IN_ENV = {  # credentials.auth_type -> env var -> credentials key
    "user_login": {"BILL_USERNAME": "username", "BILL_PASSWORD": "password", "BILL_DEV_KEY": "dev_key"},
    "oauth_client_credentials": {"BILL_CLIENT_ID": "client_id", "BILL_CLIENT_SECRET": "client_secret"},
}
SECRET_KEYS = {"password", "dev_key", "client_secret"}


def say(msg: str = "") -> None:
    print(msg, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, help="connector config JSON (keys of source_bill/spec.json)")
    p.add_argument("--duckdb", type=Path, default=DEFAULT_DUCKDB, help=f"DuckDB file (default ./{DEFAULT_DUCKDB})")
    p.add_argument(
        "--json-summary",
        type=Path,
        help='write {stream: {"read": records read this run, "rows": rows in its DuckDB table}} here',
    )
    p.add_argument("--full-refresh", action="store_true", help="ignore saved state and re-read everything")
    p.add_argument("--emulator", action="store_true", help="use the bundled BILL emulator even if credentials are set")
    p.add_argument("--emulator-seed", type=int, default=1, help="emulator data seed (default 1)")
    return p.parse_args(argv)


def config_from_env() -> dict[str, Any] | None:
    """A config from BILL_* variables: OAuth client credentials when BILL_CLIENT_ID is set, else a user login."""
    auth_type = "oauth_client_credentials" if os.environ.get("BILL_CLIENT_ID") else "user_login"
    required = [*SIGN_IN_ENV[auth_type], "BILL_ORGANIZATION_ID"]
    present = [k for k in required if os.environ.get(k)]
    if not present:
        return None
    missing = [k for k in required if not os.environ.get(k)]
    if missing:
        raise SystemExit(f"error: {', '.join(present)} set but {', '.join(missing)} missing")
    cfg: dict[str, Any] = {key: os.environ[env] for env, key in ENV_KEYS.items() if os.environ.get(env)}
    cfg["credentials"] = {"auth_type": auth_type, **{k: os.environ[e] for e, k in SIGN_IN_ENV[auth_type].items()}}
    return cfg


def describe_config(cfg: dict[str, Any]) -> str:
    def shown(key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{k}={shown(k, v)}" for k, v in sorted(value.items())) + "}"
        return "****" if key in SECRET_KEYS else value

    return ", ".join(f"{k}={shown(k, v)}" for k, v in sorted(cfg.items()))


def find_executable() -> str:
    """The source-bill console script next to this interpreter, else on PATH, else a wrapper around main.py."""
    candidate = Path(sys.executable).parent / SOURCE_NAME
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(SOURCE_NAME)
    if found:
        return found
    # Not installed as a console script: run the repo's main.py with this interpreter.
    wrapper_dir = REPO / ".tmp"
    wrapper_dir.mkdir(parents=True, exist_ok=True)
    wrapper = wrapper_dir / SOURCE_NAME
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "main.py"}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(wrapper)


class EmulatorClock:
    """Keeps the emulator's data identical across runs that share a DuckDB file.

    The emulator generates createdTime/updatedTime relative to its clock at start-up, so a restart
    minutes later shifts every timestamp by those minutes and the saved cursors no longer line up.
    The first run records its start instant next to the DuckDB file; later runs start the
    emulator's clock at that same instant, so the same seed gives byte-identical data.
    """

    def __init__(self, db_path: Path, seed: int):
        self.file = db_path.with_name(db_path.name + ".emulator-clock.json")
        anchor = None
        if db_path.exists() and self.file.exists():
            try:
                saved = json.loads(self.file.read_text())
                if saved.get("seed") == seed:
                    anchor = float(saved["anchor"])
            except (ValueError, KeyError, TypeError):
                anchor = None
        self.reused = anchor is not None
        # Whole seconds: exactly representable, so the emulator's first reading (the instant its data
        # is generated from) is the same millisecond on every run; it ticks in real time after that.
        self.anchor = anchor if anchor is not None else float(int(time.time()))
        self._t0: float | None = None
        if not self.reused:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            self.file.write_text(json.dumps({"seed": seed, "anchor": self.anchor}))

    def __call__(self) -> float:
        if self._t0 is None:
            self._t0 = time.monotonic()
            return self.anchor
        return self.anchor + (time.monotonic() - self._t0)


def count_rows(cache: Any, table: str) -> int | None:
    from sqlalchemy import text

    schema = cache.schema_name
    with cache.get_sql_engine().connect() as conn:
        exists = conn.execute(
            text("select count(*) from information_schema.tables where table_schema = :s and table_name = :t"),
            {"s": schema, "t": table},
        ).scalar()
        if not exists:
            return None
        return int(conn.execute(text(f'select count(*) from "{schema}"."{table}"')).scalar() or 0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    db_path = args.duckdb.expanduser().resolve()
    db_path.parent.mkdir(parents=True, exist_ok=True)

    emulator = None
    if args.config and not args.emulator:
        cfg, _ = upgrade(json.loads(args.config.read_text()))  # a config written before `credentials`, migrated
        origin = f"config file {args.config}"
    elif (env_cfg := None if args.emulator else config_from_env()) is not None:
        cfg = env_cfg
        origin = "BILL_* environment variables"
    else:
        sys.path.insert(0, str(REPO))
        from integration_tests.bill_emulator import BillEmulator

        clock = EmulatorClock(db_path, args.emulator_seed)
        emulator = BillEmulator(seed=args.emulator_seed, host="127.0.0.1", port=0, clock=clock).start()
        cfg = emulator.config()
        origin = "bundled BILL emulator"
        say("=" * 78)
        say(
            f"No --config and no BILL_* credentials: USING THE BUNDLED BILL EMULATOR (fake data, seed "
            f"{args.emulator_seed})"
        )
        say(f"  emulator listening at {emulator.base_url}")
        say(
            f"  emulator clock {'re-used from the previous run' if clock.reused else 'anchored now'} "
            f"({clock.file.name}), so reruns see the same data"
        )
        say("=" * 78)

    try:
        return run_sync(args, cfg, origin, db_path, emulator)
    finally:
        if emulator is not None:
            emulator.stop()
            say("Stopped the BILL emulator.")


def run_sync(args: argparse.Namespace, cfg: dict[str, Any], origin: str, db_path: Path, emulator: Any) -> int:
    say(f"==> config from {origin}: {describe_config(cfg)}")
    say("==> importing PyAirbyte (offline mode)")
    t0 = time.monotonic()
    import warnings

    # google-api-core (pulled in by PyAirbyte's BigQuery extra) nags about Python 3.11 end of life.
    warnings.filterwarnings("ignore", message=r"You are using a Python version", category=FutureWarning)
    import airbyte as ab
    from airbyte.caches import DuckDBCache

    executable = find_executable()
    say(f"==> connector executable: {executable}")
    source = ab.get_source(SOURCE_NAME, config=cfg, local_executable=executable)

    say("==> check")
    try:
        source.check()
    except ab.exceptions.PyAirbyteError as exc:  # e.g. AirbyteConnectorCheckFailedError: bad credentials
        say(f"error: the connection check failed, nothing was synced.\n{exc}")
        return 1
    say("    connection OK")

    source.select_all_streams()
    streams = sorted(source.get_selected_streams())
    cache = DuckDBCache(db_path=db_path, schema_name="main")
    first = count_rows(cache, "_airbyte_state") in (None, 0)
    mode = (
        "FULL REFRESH (forced)"
        if args.full_refresh
        else ("first sync: everything" if first else "INCREMENTAL from the state saved in the DuckDB file")
    )
    say(f"==> reading {len(streams)} streams into {db_path} ({mode})")
    t_read = time.monotonic()
    try:
        result = source.read(cache=cache, force_full_refresh=args.full_refresh)
    except ab.exceptions.PyAirbyteError as exc:
        say(
            f"error: the sync failed after {time.monotonic() - t_read:.1f} s. Records already written and "
            f"the last saved state stay in {db_path}; the next run resumes from there.\n{exc}"
        )
        return 1
    read_seconds = time.monotonic() - t_read

    tracker = getattr(result, "_progress_tracker", None)  # private in PyAirbyte 0.71; counts per stream
    per_stream_read = dict(getattr(tracker, "stream_read_counts", {}) or {})
    summary: dict[str, dict[str, int | None]] = {}
    for name in streams:
        summary[name] = {"read": int(per_stream_read.get(name, 0)), "rows": count_rows(cache, name)}
    total_read = result.processed_records
    total_rows = sum(v["rows"] or 0 for v in summary.values())

    width = max(len(s) for s in [*streams, "stream", "TOTAL"])
    say()
    say(f"{'stream':<{width}} | {'read this run':>13} | {'rows in DuckDB':>14}")
    say(f"{'-' * width}-+-{'-' * 13}-+-{'-' * 14}")
    for name in streams:
        rows = summary[name]["rows"]
        say(f"{name:<{width}} | {summary[name]['read']:>13,} | {('-' if rows is None else f'{rows:,}'):>14}")
    say(f"{'-' * width}-+-{'-' * 13}-+-{'-' * 14}")
    say(f"{'TOTAL':<{width}} | {total_read:>13,} | {total_rows:>14,}")
    say()
    kind = "full refresh" if args.full_refresh else ("first sync" if first else "incremental sync")
    say(
        f"Read {total_read:,} records in {read_seconds:.1f} s ({time.monotonic() - t0:.1f} s incl. setup); "
        f"{kind}"
        f"{' against the emulator' if emulator is not None else ''}."
    )
    say(f"DuckDB file: {db_path}")
    say("Query it:")
    say(f'  duckdb {db_path} "select count(*) from main.vendors"   # duckdb CLI, if installed')
    say(
        f"  {sys.executable} -c \"import duckdb; print(duckdb.connect('{db_path}', read_only=True)"
        ".sql('select id, name, updatedtime from main.vendors limit 5'))\""
    )
    say(
        "  (tables are named after the streams, in schema main; column names are lower-cased;"
        " state lives in main._airbyte_state)"
    )

    if args.json_summary:
        args.json_summary.parent.mkdir(parents=True, exist_ok=True)
        args.json_summary.write_text(json.dumps(summary, indent=2, sort_keys=True))
        say(f"JSON summary: {args.json_summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
