#!/usr/bin/env python3
"""Sync source-bill streams into a local DuckDB file with PyAirbyte (offline).

    python scripts/sync_to_duckdb.py                       # no credentials -> bundled BILL emulator
    python scripts/sync_to_duckdb.py --config secrets/config.json
    BILL_USERNAME=... BILL_PASSWORD=... BILL_ORGANIZATION_ID=... BILL_DEV_KEY=... \\
        [BILL_ENVIRONMENT=sandbox] [BILL_START_DATE=2024-01-01T00:00:00Z] [BILL_SPEND_API_TOKEN=...] \\
        python scripts/sync_to_duckdb.py
    BILL_CLIENT_ID=... BILL_CLIENT_SECRET=... BILL_ORGANIZATION_ID=... python scripts/sync_to_duckdb.py   # OAuth

Options: --duckdb PATH (default ./.cache/bill/bill.duckdb for BILL, ./.cache/bill/emulator.duckdb for the
emulator), --streams a,b,c, --full-refresh, --json-summary FILE, --progress-every SECONDS, --emulator (force the
emulator even if credentials are set), --emulator-seed N.

Run it again and it syncs incrementally: PyAirbyte keeps each stream's state in the DuckDB file (table
_airbyte_state) and hands it back to the connector. The file also remembers which BILL filled it (table
_source_bill_origin: environment, organization, base URL); a sync from another BILL, or from the emulator,
into it stops and says what to do. `scripts/sync.sh` wraps this script with the virtualenv setup.

With BILL_SPEND_API_TOKEN (also with the emulator) the Spend & Expense streams are synced too.

Secrets (password, dev_key, client_secret, spend_api_token) are never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import stat
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

# Must be set before `import airbyte`: without offline mode PyAirbyte fetches the connector registry
# from connectors.airbyte.com (fails here), and DO_NOT_TRACK turns its telemetry off.
os.environ["AIRBYTE_OFFLINE_MODE"] = "1"
os.environ["DO_NOT_TRACK"] = "1"

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from source_bill.config import upgrade  # noqa: E402  (after the environment above; the connector's own migration)

SOURCE_NAME = "source-bill"
DEFAULT_DUCKDB = Path(".cache/bill/bill.duckdb")
EMULATOR_DUCKDB = Path(".cache/bill/emulator.duckdb")  # the demo never shares a file with a real account
ORIGIN_TABLE = "_source_bill_origin"
ENV_KEYS = {  # env var -> config key
    "BILL_ORGANIZATION_ID": "organization_id",
    "BILL_ENVIRONMENT": "environment",
    "BILL_START_DATE": "start_date",
    "BILL_BASE_URL": "base_url",
    "BILL_SPEND_API_TOKEN": "spend_api_token",  # optional: also sync the spend_* streams
    "BILL_OAUTH_TOKEN_URL": "oauth_token_url",
}
SIGN_IN_ENV = {  # credentials.auth_type -> env var -> credentials key
    "user_login": {"BILL_USERNAME": "username", "BILL_PASSWORD": "password", "BILL_DEV_KEY": "dev_key"},
    "oauth_client_credentials": {"BILL_CLIENT_ID": "client_id", "BILL_CLIENT_SECRET": "client_secret"},
}
SECRET_KEYS = {"password", "dev_key", "client_secret", "spend_api_token"}


class UserError(Exception):
    """A mistake the user can fix: printed as one line ``error: ...``, exit code 2, no traceback."""


def say(msg: str = "") -> None:
    print(msg, flush=True)


def now() -> str:
    return datetime.now().strftime("%H:%M:%S")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, help="connector config JSON (keys of source_bill/spec.json)")
    p.add_argument(
        "--duckdb",
        type=Path,
        help=f"DuckDB file (default ./{DEFAULT_DUCKDB}; with the emulator ./{EMULATOR_DUCKDB})",
    )
    p.add_argument("--streams", help="comma-separated stream names to sync (default: every stream)")
    p.add_argument(
        "--json-summary",
        type=Path,
        help='write {stream: {"read": records read this run, "rows": rows in its DuckDB table}} here',
    )
    p.add_argument(
        "--full-refresh",
        action="store_true",
        help="ignore saved state, re-read all, replace the tables (also takes over a file another BILL filled)",
    )
    p.add_argument(
        "--progress-every",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="print a progress line (records so far, rate) this often while reading; 0: never (default 30)",
    )
    p.add_argument("--emulator", action="store_true", help="use the bundled BILL emulator even if credentials are set")
    p.add_argument("--emulator-seed", type=int, default=1, help="emulator data seed (default 1)")
    return p.parse_args(argv)


# --- the config: where it comes from, and whether it is one the connector accepts ----------------------
def config_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, Any] | None:
    """The connector config from BILL_* environment variables (OAuth client credentials when BILL_CLIENT_ID is set,
    else a user login), or None when none of the sign-in ones is set."""
    auth_type = "oauth_client_credentials" if environ.get("BILL_CLIENT_ID") else "user_login"
    required = [*SIGN_IN_ENV[auth_type], "BILL_ORGANIZATION_ID"]
    present = [k for k in required if environ.get(k)]
    if not present:
        return None
    missing = [k for k in required if not environ.get(k)]
    if missing:
        raise UserError(
            f"{', '.join(present)} set but {', '.join(missing)} missing: set all of {', '.join(required)}, "
            "or pass --config FILE."
        )
    cfg: dict[str, Any] = {key: environ[env] for env, key in ENV_KEYS.items() if environ.get(env)}
    cfg["credentials"] = {"auth_type": auth_type, **{k: environ[e] for e, k in SIGN_IN_ENV[auth_type].items()}}
    return cfg


def migrated(cfg: dict[str, Any], origin: str) -> dict[str, Any]:
    """A config written before ``credentials`` (flat username, password, dev_key), in the form the spec wants."""
    from airbyte_cdk.utils.traced_exception import AirbyteTracedException

    try:
        return dict(upgrade(cfg)[0])
    except AirbyteTracedException as exc:
        raise UserError(f"the config from {origin} is not valid: {exc.message}") from None


def config_from_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"--config {path}: no such file. Give the path of your connector config JSON.") from None
    except OSError as exc:
        raise UserError(f"--config {path}: cannot read it ({exc.strerror}).") from None
    try:
        cfg = json.loads(text)
    except ValueError as exc:
        raise UserError(
            f"--config {path} is not valid JSON ({exc}). It must be one JSON object such as "
            '{"username": "...", "password": "...", "organization_id": "008...", "dev_key": "..."}.'
        ) from None
    if not isinstance(cfg, dict):
        raise UserError(f"--config {path} must hold a JSON object of connector settings, not {type(cfg).__name__}.")
    return cfg


def check_config(cfg: dict[str, Any], origin: str) -> None:
    """The connector's own spec check, with its key-naming messages, before PyAirbyte starts."""
    import logging

    from source_bill import SourceBill
    from source_bill.config_messages import explain

    spec = SourceBill().spec(logging.getLogger("airbyte")).connectionSpecification
    message = explain(cfg, spec)
    if message:
        raise UserError(f"the config from {origin} is not valid: {message}")


def describe_config(cfg: dict[str, Any]) -> str:
    """The config with every secret masked: the spec's airbyte_secret keys at any depth (e.g. inside a
    ``credentials`` object), and any key whose name says password, secret, token or key."""
    import logging

    from airbyte_cdk.utils.airbyte_secrets_utils import get_secrets

    from source_bill import SourceBill

    spec = SourceBill().spec(logging.getLogger("airbyte")).connectionSpecification

    def mask(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: mask(v, k) for k, v in sorted(value.items())}
        if isinstance(value, list):
            return [mask(v, key) for v in value]
        secret_name = key in SECRET_KEYS or any(w in key for w in ("password", "secret", "token", "key"))
        return "****" if secret_name and value not in (None, "") else value

    text = ", ".join(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in mask(cfg).items())
    for secret in get_secrets(spec, cfg):
        if isinstance(secret, str) and secret:
            text = text.replace(secret, "****")
    return text


def parse_streams(value: Optional[str]) -> Optional[List[str]]:
    if value is None:
        return None
    names = list(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    if not names:
        raise UserError("--streams is empty: give stream names separated by commas, e.g. --streams vendors,bills.")
    return names


# --- which BILL filled the DuckDB file -----------------------------------------------------------------
def origin_of(cfg: dict[str, Any], emulator_seed: Optional[int]) -> Dict[str, str]:
    """The BILL a sync reads: environment, organization and base URL (the emulator's port changes per run)."""
    if emulator_seed is not None:
        return {
            "environment": "emulator",
            "organization_id": str(cfg["organization_id"]),
            "base_url": f"bundled BILL emulator, seed {emulator_seed}",
        }
    from source_bill.config import ENVIRONMENTS

    environment = str(cfg.get("environment") or "production")
    base_url = str(cfg.get("base_url") or ENVIRONMENTS.get(environment, "")).strip().rstrip("/")
    return {"environment": environment, "organization_id": str(cfg["organization_id"]).strip(), "base_url": base_url}


def describe_origin(origin: Dict[str, str]) -> str:
    return f"{origin['environment']} BILL, organization {origin['organization_id']}, {origin['base_url']}"


def stored_origin(db_path: Path) -> tuple[Optional[Dict[str, str]], bool]:
    """The origin recorded in the file, and whether the file holds synced BILL data (saved state)."""
    if not db_path.exists():
        return None, False
    import duckdb

    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except duckdb.Error as exc:
        raise UserError(f"--duckdb {db_path}: cannot open it as a DuckDB file ({exc}). Give another path.") from None
    with con:
        tables = {
            row[0]
            for row in con.execute(
                "select table_name from information_schema.tables where table_schema = 'main'"
            ).fetchall()
        }
        origin = None
        if ORIGIN_TABLE in tables:
            row = con.execute(f"select environment, organization_id, base_url from main.{ORIGIN_TABLE}").fetchone()
            if row:
                origin = {"environment": row[0], "organization_id": row[1], "base_url": row[2]}
        has_data = "_airbyte_state" in tables and bool(
            con.execute("select count(*) from main._airbyte_state where source_name = ?", [SOURCE_NAME]).fetchone()[0]
        )
    return origin, has_data


def guard_origin(db_path: Path, origin: Dict[str, str], full_refresh: bool) -> bool:
    """Stop before a sync would mix two BILLs in one file. True: the file is to be taken over (--full-refresh)."""
    stored, has_data = stored_origin(db_path)
    if stored == origin or (stored is None and not has_data):
        return False
    other = (
        describe_origin(stored)
        if stored
        else "a source this script did not record (an earlier version of it, e.g. with the bundled emulator)"
    )
    if not full_refresh:
        raise UserError(
            f"{db_path} holds data synced from {other}; this run reads {describe_origin(origin)}. Syncing into it "
            "would keep the other rows and resume from the other's saved state, so most records would never be "
            "read. Use another file (--duckdb PATH), or --full-refresh to drop this file's BILL tables and saved "
            "state and read everything again."
        )
    say(f"==> --full-refresh: {db_path} held data from {other}; its BILL tables and saved state will be replaced")
    return True


def take_over(db_path: Path, origin: Dict[str, str], forget_previous: bool) -> None:
    """Record ``origin`` in the file; with ``forget_previous``, first drop the tables and state of the last source."""
    import duckdb

    with duckdb.connect(str(db_path)) as con:
        tables = {
            row[0]
            for row in con.execute(
                "select table_name from information_schema.tables where table_schema = 'main'"
            ).fetchall()
        }
        if forget_previous and "_airbyte_state" in tables:
            synced = con.execute(
                "select table_name from main._airbyte_state where source_name = ?", [SOURCE_NAME]
            ).fetchall()
            for (table,) in synced:
                con.execute(f'drop table if exists main."{table}"')
            con.execute("delete from main._airbyte_state where source_name = ?", [SOURCE_NAME])
        con.execute(
            f"create or replace table main.{ORIGIN_TABLE} "
            "(environment varchar, organization_id varchar, base_url varchar, recorded_at timestamptz)"
        )
        con.execute(
            f"insert into main.{ORIGIN_TABLE} values (?, ?, ?, ?)",
            [origin["environment"], origin["organization_id"], origin["base_url"], datetime.now(UTC)],
        )


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


# --- PyAirbyte: progress lines and where its logs go -------------------------------------------------------
def report_progress(every_seconds: float) -> None:
    """Print a line when each stream starts and ends (with its count), and every ``every_seconds`` the records so
    far and the rate, with or without a terminal (CI, cron, a log file). PyAirbyte 0.71 builds its
    ProgressTracker inside ``Source.read``; a subclass that prints takes its place there."""
    import airbyte.sources.base as source_base
    from airbyte.progress import ProgressTracker

    class PrintingTracker(ProgressTracker):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._stop = threading.Event()
            if every_seconds > 0:
                threading.Thread(target=self._tick, name="progress", daemon=True).start()

        def _tick(self) -> None:
            while not self._stop.wait(every_seconds):
                elapsed = time.time() - self.read_start_time
                rate = self.total_records_read / elapsed if elapsed > 0 else 0.0
                reading = [s for s in self.stream_read_start_times if s not in self.stream_read_end_times]
                if not self.stream_read_start_times:
                    say(f"[{now()}] no records yet: the connector is starting ({elapsed:.0f} s)")
                    continue
                say(
                    f"[{now()}] {self.total_records_read:,} records so far, {rate:,.0f} records/s"
                    + (f"; reading {', '.join(reading)}" if reading else "")
                )

        def log_stream_start(self, stream_name: str) -> None:
            if stream_name not in self.stream_read_start_times:
                say(f"[{now()}] {stream_name}: started")
            super().log_stream_start(stream_name)

        def _log_stream_read_end(self, stream_name: str) -> None:
            seconds = time.time() - self.stream_read_start_times.get(stream_name, self.read_start_time)
            count = self.stream_read_counts.get(stream_name, 0)
            say(f"[{now()}] {stream_name}: done, {count:,} record{'' if count == 1 else 's'} in {seconds:.1f} s")
            super()._log_stream_read_end(stream_name)

        def log_read_complete(self) -> None:
            self._stop.set()
            say(f"[{now()}] read {self.total_records_read:,} records; writing them into DuckDB")
            super().log_read_complete()

        def log_success(self, *args: Any, **kwargs: Any) -> None:
            self._stop.set()
            super().log_success(*args, **kwargs)

        def log_failure(self, *args: Any, **kwargs: Any) -> None:
            self._stop.set()
            super().log_failure(*args, **kwargs)

    source_base.ProgressTracker = PrintingTracker  # type: ignore[misc]


@contextlib.contextmanager
def pyairbyte_notices(log_files: Dict[str, str]) -> Any:
    """Collect PyAirbyte's "Writing ... to file: PATH" notices (printed to stderr, one per log file) so the
    script can say once where the logs are; anything else it printed goes on to stderr."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            yield
    finally:
        for line in captured.getvalue().splitlines():
            match = re.match(r"Writing (.+?) to file: (.+)$", line.strip())
            if match:
                log_files[match.group(1).replace("`", "")] = match.group(2)
            elif line.strip() and not line.startswith("Using local `"):
                print(line, file=sys.stderr)


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
    try:
        return run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2


def run(args: argparse.Namespace) -> int:
    cfg: Optional[dict[str, Any]] = None
    if args.config and not args.emulator:
        source_text = f"config file {args.config}"
        cfg = migrated(config_from_file(args.config), source_text)
    elif not args.emulator:
        cfg = config_from_env()
        source_text = "BILL_* environment variables"
    streams = parse_streams(args.streams)
    db_path = (args.duckdb or (EMULATOR_DUCKDB if cfg is None else DEFAULT_DUCKDB)).expanduser().resolve()
    sys.path.insert(0, str(REPO))

    if cfg is not None:
        check_config(cfg, source_text)
        origin = origin_of(cfg, None)
    else:
        from integration_tests.bill_emulator import DEFAULT_CREDENTIALS

        origin = origin_of(dict(DEFAULT_CREDENTIALS), args.emulator_seed)
    take_over_file = guard_origin(db_path, origin, args.full_refresh)
    db_path.parent.mkdir(parents=True, exist_ok=True)

    emulator = None
    if cfg is None:
        from integration_tests.bill_emulator import BillEmulator

        clock = EmulatorClock(db_path, args.emulator_seed)
        emulator = BillEmulator(seed=args.emulator_seed, host="127.0.0.1", port=0, clock=clock).start()
        cfg = emulator.config()
        if os.environ.get("BILL_SPEND_API_TOKEN"):  # Spend & Expense too: the emulator takes the given token
            emulator.spend.token = cfg["spend_api_token"] = os.environ["BILL_SPEND_API_TOKEN"]
        source_text = "bundled BILL emulator"
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
        say(f"  its own DuckDB file by default ({EMULATOR_DUCKDB}); a real account syncs into {DEFAULT_DUCKDB}")
        say("=" * 78)

    try:
        return run_sync(args, cfg, source_text, db_path, emulator, origin, take_over_file, streams)
    finally:
        if emulator is not None:
            emulator.stop()
            say("Stopped the BILL emulator.")


def run_sync(
    args: argparse.Namespace,
    cfg: dict[str, Any],
    source_text: str,
    db_path: Path,
    emulator: Any,
    origin: Dict[str, str],
    take_over_file: bool,
    streams: Optional[List[str]],
) -> int:
    say(f"==> config from {source_text}: {describe_config(cfg)}")
    say("==> importing PyAirbyte (offline mode)")
    t0 = time.monotonic()
    import warnings

    # google-api-core (pulled in by PyAirbyte's BigQuery extra) nags about Python 3.11 end of life.
    warnings.filterwarnings("ignore", message=r"You are using a Python version", category=FutureWarning)
    log_files: Dict[str, str] = {}
    with pyairbyte_notices(log_files):
        import airbyte as ab
        from airbyte.caches import DuckDBCache
        from airbyte.logs import get_global_stats_logger

        get_global_stats_logger()  # opened once per process; otherwise its notice comes in the middle of the read

        executable = find_executable()
        say(f"==> connector executable: {executable}")
        try:
            source = ab.get_source(SOURCE_NAME, config=cfg, local_executable=executable)
            say("==> check")
            source.check()
        except ab.exceptions.PyAirbyteError as exc:  # e.g. AirbyteConnectorCheckFailedError: bad credentials
            failure: Optional[str] = f"the connection check failed, nothing was synced. {exc.get_message()}"
            if isinstance(exc, ab.exceptions.AirbyteConnectorCheckFailedError) and exc.context:
                failure += f" {exc.context.get('failure_reason') or ''}".rstrip()
        else:
            failure = None
    if log_files:
        say("==> logs: " + "; ".join(f"{name} {path}" for name, path in sorted(log_files.items())))
    if failure:
        say(f"error: {failure}")
        return 1
    say("    connection OK")

    available = source.get_available_streams()
    if streams:
        unknown = [s for s in streams if s not in available]
        if unknown:
            raise UserError(
                f"--streams: no stream named {', '.join(unknown)}. The streams are: {', '.join(sorted(available))}."
            )
        source.select_streams(streams)
    else:
        source.select_all_streams()
    selected = sorted(source.get_selected_streams())
    full_refresh_only = {
        s.name
        for s in source.discovered_catalog.streams
        if all(getattr(m, "value", m) != "incremental" for m in (s.supported_sync_modes or []))
    }

    take_over(db_path, origin, forget_previous=take_over_file)
    cache = DuckDBCache(db_path=db_path, schema_name="main")
    first = count_rows(cache, "_airbyte_state") in (None, 0)
    mode = (
        "FULL REFRESH (forced)"
        if args.full_refresh
        else ("first sync: everything" if first else "INCREMENTAL from the state saved in the DuckDB file")
    )
    say(f"==> reading {len(selected)} streams into {db_path} ({mode})")
    report_progress(args.progress_every)
    t_read = time.monotonic()
    try:
        result = source.read(
            cache=cache,
            force_full_refresh=args.full_refresh,
            write_strategy="replace" if args.full_refresh else "auto",
        )
    except ab.exceptions.PyAirbyteError as exc:
        say(
            f"error: the sync failed after {time.monotonic() - t_read:.1f} s. Records already written and "
            f"the last saved state stay in {db_path}; the next run resumes from there. {exc.get_message()}"
        )
        return 1
    read_seconds = time.monotonic() - t_read

    tracker = getattr(result, "_progress_tracker", None)  # private in PyAirbyte 0.71; counts per stream
    per_stream_read = dict(getattr(tracker, "stream_read_counts", {}) or {})
    summary: dict[str, dict[str, int | None]] = {}
    for name in selected:
        summary[name] = {"read": int(per_stream_read.get(name, 0)), "rows": count_rows(cache, name)}
    total_read = result.processed_records
    total_rows = sum(v["rows"] or 0 for v in summary.values())

    width = max(len(s) for s in [*selected, "stream", "TOTAL"])
    say()
    say(f"{'stream':<{width}} | {'read this run':>13} | {'rows in DuckDB':>14}")
    say(f"{'-' * width}-+-{'-' * 13}-+-{'-' * 14}")
    for name in selected:
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
    if kind == "incremental sync":
        explain_rereads(summary, full_refresh_only)
    say(f"DuckDB file: {db_path}")
    print_query_hint(db_path, selected)

    if args.json_summary:
        args.json_summary.parent.mkdir(parents=True, exist_ok=True)
        args.json_summary.write_text(json.dumps(summary, indent=2, sort_keys=True))
        say(f"JSON summary: {args.json_summary}")
    return 0


def explain_rereads(summary: dict[str, dict[str, int | None]], full_refresh_only: set[str]) -> None:
    """Why an incremental run over unchanged data still reads records."""
    boundary = {s: v["read"] or 0 for s, v in summary.items() if s not in full_refresh_only}
    whole = {s: v["read"] or 0 for s, v in summary.items() if s in full_refresh_only}
    say(
        f"Why records were read although nothing may have changed: each incremental stream asks BILL for records "
        f"updated at or after its saved cursor (updatedTime), so the records at the cursor itself are read again "
        f"rather than risk missing one edited in that same millisecond ({sum(boundary.values()):,} records over "
        f"{len(boundary)} streams; DuckDB keeps one row per primary key)"
        + (
            f"; {', '.join(sorted(whole))} {'is' if len(whole) == 1 else 'are'} full refresh only (no updatedTime) "
            f"and read in full every run ({sum(whole.values()):,} records)."
            if whole
            else "."
        )
    )


def print_query_hint(db_path: Path, streams: List[str]) -> None:
    table = "vendors" if "vendors" in streams else streams[0]
    query = f"select {'id, name, updatedtime' if table == 'vendors' else '*'} from main.{table} limit 5"
    connect = f"duckdb.connect({json.dumps(str(db_path))}, read_only=True)"
    code = f"import duckdb; con = {connect}; con.sql({json.dumps(query)}).show()"
    say("Query it (paste into a shell):")
    say(f"  {shlex.join([sys.executable, '-c', code])}")
    say(f"  {shlex.join(['duckdb', '-readonly', str(db_path), query])}   # with the duckdb CLI, if installed")
    say(
        "  (tables are named after the streams, in schema main; column names are lower-cased;"
        f" state lives in main._airbyte_state, the BILL that filled the file in main.{ORIGIN_TABLE})"
    )


if __name__ == "__main__":
    sys.exit(main())
