"""End to end through the installed ``source-bill`` console script, as the Airbyte platform runs it.

Every test runs the connector as a subprocess (``<venv>/bin/source-bill``, or ``python main.py`` when the
script is not installed next to the interpreter) against the bundled BILL emulator, started in this process
on 127.0.0.1 and a free port, and reads the Airbyte protocol messages from its stdout:

* ``spec`` (and ``python main.py spec`` from the repo root): one SPEC message with the contract's keys;
* ``check``: SUCCEEDED with good credentials; FAILED, exit code 0, an actionable message and no traceback
  for a wrong password (BDC_1101), developer key (BDC_1102) and organization id (BDC_1123);
* ``discover``: the 22 streams with their primary keys and cursors, and integration_tests/
  configured_catalog.json agrees with it;
* ``read``, full refresh of all 22 streams: record for record what the emulator holds;
* ``read``, incremental with configured_catalog.json, then edits in the emulator, then a second read with
  ``--state`` built from the last STATE message of each stream: exactly the changed and new records;
* ``read`` with integration_tests/abnormal_state.json (cursors far in the future) and sample_state.json.

Run: ``python -m pytest integration_tests/test_cli_e2e.py -q``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import pytest

import tests_support
from integration_tests.bill_emulator import PRIMARY_KEYS, STREAMS, BillEmulator, parse_instant_ms
from tests_support import assert_records_equal, by_pk, cli_command, pk, write_json

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "integration_tests"
CONFIGURED_CATALOG = HERE / "configured_catalog.json"
ABNORMAL_STATE = HERE / "abnormal_state.json"
SAMPLE_STATE = HERE / "sample_state.json"
CURSOR = "updatedTime"
FULL_REFRESH_ONLY = set(tests_support.FULL_REFRESH_ONLY)
INCREMENTAL = tests_support.INCREMENTAL_STREAMS
TIMEOUT_S = 120

Key = Any  # a record's primary key: its id, or a tuple for composite keys


def _command() -> Tuple[List[str], Path]:
    """The installed console script (tests_support.cli_command), run from the repo root."""
    return cli_command(), ROOT


@dataclass
class Run:
    args: List[str]
    returncode: int
    stdout: str
    stderr: str
    messages: List[Dict[str, Any]] = field(default_factory=list)

    def of_type(self, kind: str) -> List[Dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def describe(self) -> str:
        return (
            f"`source-bill {' '.join(self.args)}` exited {self.returncode}\n--- stdout (tail)\n"
            f"{self.stdout[-3000:]}\n--- stderr (tail)\n{self.stderr[-3000:]}"
        )

    def errors(self) -> List[Dict[str, Any]]:
        return [m["trace"] for m in self.of_type("TRACE") if m["trace"].get("type") == "ERROR"]

    def records(self) -> Dict[str, List[Dict[str, Any]]]:
        out: Dict[str, List[Dict[str, Any]]] = {}
        for message in self.of_type("RECORD"):
            out.setdefault(message["record"]["stream"], []).append(message["record"]["data"])
        return out

    def last_states(self) -> Dict[str, Dict[str, Any]]:
        """The `state` object of the last STATE message of each stream, as the platform keeps it."""
        last: Dict[str, Dict[str, Any]] = {}
        for message in self.of_type("STATE"):
            state = message["state"]
            assert state.get("type") == "STREAM", f"expected per-stream state, got {state}"
            last[state["stream"]["stream_descriptor"]["name"]] = state
        return last

    def statuses(self) -> Dict[str, List[str]]:
        out: Dict[str, List[str]] = {}
        for message in self.of_type("TRACE"):
            trace = message["trace"]
            if trace.get("type") == "STREAM_STATUS":
                status = trace["stream_status"]
                out.setdefault(status["stream_descriptor"]["name"], []).append(status["status"])
        return out


def run_cli(*args: str, cwd: Optional[Path] = None, command: Optional[List[str]] = None) -> Run:
    base, default_cwd = _command()
    env = dict(os.environ)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    proc = subprocess.run(
        [*(command or base), *args],
        cwd=cwd or default_cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    run = Run(list(args), proc.returncode, proc.stdout, proc.stderr)
    for line in proc.stdout.splitlines():
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except ValueError:
            pytest.fail(f"stdout line is not an Airbyte message (JSON): {line[:300]!r}\n{run.describe()}")
        assert isinstance(message, dict) and "type" in message, f"not an Airbyte message: {line[:300]}"
        run.messages.append(message)
    assert "Traceback (most recent call last)" not in proc.stderr, run.describe()
    assert "Traceback (most recent call last)" not in proc.stdout, run.describe()
    return run


def ok(run: Run) -> Run:
    assert run.returncode == 0, run.describe()
    assert not run.errors(), f"error traces: {run.errors()}\n{run.describe()}"
    return run


def ms(value: str) -> int:
    return int(parse_instant_ms(value))


def configured_catalog(full_refresh: bool = False) -> Dict[str, Any]:
    catalog = json.loads(CONFIGURED_CATALOG.read_text())
    if full_refresh:
        for configured in catalog["streams"]:
            configured["sync_mode"] = "full_refresh"
            configured.pop("cursor_field", None)
    return catalog


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu() -> Iterator[BillEmulator]:
    """A read-only emulator shared by the tests that do not change data."""
    with BillEmulator(seed=1, host="127.0.0.1", port=0) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def files(emu: BillEmulator, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cli_e2e")
    return {
        "config": write_json(tmp / "config.json", emu.config()),
        "catalog": CONFIGURED_CATALOG,
        "full_catalog": write_json(tmp / "full_catalog.json", configured_catalog(full_refresh=True)),
        "tmp": tmp,
    }


# --- spec -----------------------------------------------------------------------------------------------

CONTRACT_KEYS = {"credentials", "organization_id", "environment", "start_date", "base_url", "oauth_token_url"}


def _assert_contract_spec(run: Run) -> Dict[str, Any]:
    ok(run)
    specs = run.of_type("SPEC")
    assert len(specs) == 1, f"expected exactly one SPEC message, got {len(specs)}\n{run.describe()}"
    spec = specs[0]["spec"]["connectionSpecification"]
    props = spec["properties"]
    assert CONTRACT_KEYS <= set(props), f"spec lacks {CONTRACT_KEYS - set(props)}"
    assert set(spec["required"]) == {"credentials", "organization_id"}
    for key in ("organization_id", "start_date", "base_url", "oauth_token_url"):
        assert props[key]["type"] == "string", key
    options = {o["properties"]["auth_type"]["const"]: o for o in props["credentials"]["oneOf"]}
    assert list(options) == ["user_login", "oauth_client_credentials"]
    assert set(options["user_login"]["required"]) == {"auth_type", "username", "password", "dev_key"}
    assert set(options["oauth_client_credentials"]["required"]) == {"auth_type", "client_id", "client_secret"}
    for option, secret in (
        ("user_login", "password"),
        ("user_login", "dev_key"),
        ("oauth_client_credentials", "client_secret"),
    ):
        assert options[option]["properties"][secret].get("airbyte_secret") is True, secret
    assert props["oauth_token_url"].get("airbyte_hidden") is True
    assert set(props["environment"]["enum"]) == {"production", "sandbox"}
    assert props["environment"].get("default", "production") == "production"
    assert props["base_url"].get("airbyte_hidden") is True
    assert props["start_date"].get("format") == "date-time"
    return specs[0]


def test_spec_prints_one_spec_with_the_contract_keys(tmp_path: Path) -> None:
    _assert_contract_spec(run_cli("spec", cwd=tmp_path))  # any working directory


def test_python_main_py_spec_from_the_repo_root_matches_the_console_script() -> None:
    via_main = _assert_contract_spec(run_cli("spec", cwd=ROOT, command=[sys.executable, "main.py"]))
    assert via_main == _assert_contract_spec(run_cli("spec"))


# --- check ----------------------------------------------------------------------------------------------


def test_check_with_good_credentials_succeeds(files: Dict[str, Path]) -> None:
    run = ok(run_cli("check", "--config", str(files["config"])))
    statuses = run.of_type("CONNECTION_STATUS")
    assert [s["connectionStatus"]["status"] for s in statuses] == ["SUCCEEDED"], run.describe()


BAD_CREDENTIALS = [
    pytest.param("password", "wrong-password-123", "BDC_1101", ("password",), id="wrong-password"),
    pytest.param("dev_key", "wrong-dev-key-456", "BDC_1102", ("developer key", "dev_key"), id="wrong-dev-key"),
    pytest.param("organization_id", "00801WRONGORG0001", "BDC_1123", ("organization id",), id="wrong-org-id"),
]


@pytest.mark.parametrize("key, value, code, hints", BAD_CREDENTIALS)
def test_check_with_a_wrong_credential_fails_with_an_actionable_message(
    emu: BillEmulator, tmp_path: Path, key: str, value: str, code: str, hints: Tuple[str, ...]
) -> None:
    config = write_json(tmp_path / "config.json", emu.config(**{key: value}))
    run = run_cli("check", "--config", str(config))
    assert run.returncode == 0, run.describe()
    statuses = run.of_type("CONNECTION_STATUS")
    assert len(statuses) == 1, run.describe()
    status = statuses[0]["connectionStatus"]
    assert status["status"] == "FAILED", run.describe()
    message = status.get("message") or ""
    assert code in message, f"the message should name BILL's code {code}: {message!r}"
    assert any(hint in message.lower() for hint in hints), f"the message should say what to fix ({hints}): {message!r}"
    # secrets of the config never appear, wrong or right
    for secret_key in ("password", "dev_key"):
        written = json.loads(config.read_text())
        secret = written["credentials"].get(secret_key) or written[secret_key]
        assert secret not in run.stdout and secret not in run.stderr, f"{secret_key} leaked"


# --- discover -------------------------------------------------------------------------------------------


def _discover(files: Dict[str, Path]) -> Dict[str, Dict[str, Any]]:
    run = ok(run_cli("discover", "--config", str(files["config"])))
    catalogs = run.of_type("CATALOG")
    assert len(catalogs) == 1, run.describe()
    return {s["name"]: s for s in catalogs[0]["catalog"]["streams"]}


def test_discover_lists_the_22_streams_with_primary_keys_and_cursors(files: Dict[str, Path]) -> None:
    every = _discover(files)
    assert set(STREAMS) <= set(every), f"missing {set(STREAMS) - set(every)}"  # the others: test_more_e2e.py
    streams = {name: stream for name, stream in every.items() if name in STREAMS}
    for name, stream in streams.items():
        assert stream["source_defined_primary_key"] == [[k] for k in PRIMARY_KEYS[name]], name
        props = stream["json_schema"]["properties"]
        assert all(k in props for k in PRIMARY_KEYS[name]), name
        if name in FULL_REFRESH_ONLY:
            assert stream["supported_sync_modes"] == ["full_refresh"], name
            assert not stream.get("default_cursor_field"), name
        else:
            assert set(stream["supported_sync_modes"]) == {"full_refresh", "incremental"}, name
            assert stream.get("source_defined_cursor") is True, name
            assert stream.get("default_cursor_field") == [CURSOR], name
            assert CURSOR in props, name


def test_configured_catalog_json_matches_discover(files: Dict[str, Path]) -> None:
    streams = _discover(files)
    configured = configured_catalog()["streams"]
    assert [c["stream"]["name"] for c in configured] == list(STREAMS), "all 22 streams, in the contract's order"
    for c in configured:
        discovered = streams[c["stream"]["name"]]
        incremental = "incremental" in discovered["supported_sync_modes"]
        assert c["sync_mode"] == ("incremental" if incremental else "full_refresh"), c["stream"]["name"]
        assert c["destination_sync_mode"] == "append_dedup"
        assert c["primary_key"] == discovered["source_defined_primary_key"]
        assert c["stream"]["supported_sync_modes"] == discovered["supported_sync_modes"]
        assert c["stream"].get("source_defined_primary_key") == discovered["source_defined_primary_key"]
        if incremental:
            assert c["cursor_field"] == discovered["default_cursor_field"] == [CURSOR]
        else:
            assert "cursor_field" not in c


# --- full refresh -----------------------------------------------------------------------------------------


def test_full_refresh_read_of_all_22_streams_returns_exactly_the_emulators_records(
    emu: BillEmulator, files: Dict[str, Path]
) -> None:
    run = ok(run_cli("read", "--config", str(files["config"]), "--catalog", str(files["full_catalog"])))
    records = run.records()
    assert set(records) == set(STREAMS), f"streams without records: {set(STREAMS) - set(records)}"
    for stream in STREAMS:
        assert_records_equal(stream, records[stream], emu.records(stream))
    statuses = run.statuses()
    for stream in STREAMS:
        assert statuses.get(stream, [])[-1:] == ["COMPLETE"], f"{stream}: statuses {statuses.get(stream)}"


# --- incremental ------------------------------------------------------------------------------------------


def _cursor(state: Dict[str, Any]) -> str:
    return state["stream"]["stream_state"][CURSOR]


def test_incremental_second_read_returns_exactly_the_changed_and_new_records(tmp_path: Path) -> None:
    with BillEmulator(seed=1, host="127.0.0.1", port=0) as emu:
        config = write_json(tmp_path / "config.json", emu.config())
        before = {s: emu.records(s) for s in STREAMS}

        # 1. first sync: no state, so every record of every stream
        first = ok(run_cli("read", "--config", str(config), "--catalog", str(CONFIGURED_CATALOG)))
        records = first.records()
        for stream in STREAMS:
            assert_records_equal(stream, records.get(stream, []), before[stream])
        states = first.last_states()
        assert set(INCREMENTAL) <= set(states), f"no STATE for {set(INCREMENTAL) - set(states)}"
        for stream in INCREMENTAL:
            assert ms(_cursor(states[stream])) == max(ms(r[CURSOR]) for r in before[stream]), stream

        # 2. changes in BILL: updates in 3 streams, one archived record, new records in 2 streams
        changed: Dict[str, Set[Key]] = {s: set() for s in STREAMS}
        vendors = before["vendors"]
        for i, record in enumerate((vendors[5], vendors[17], vendors[-1])):
            emu.update_record("vendors", record["id"], {"name": f"Renamed Vendor {i}"})
            changed["vendors"].add(record["id"])
        emu.update_record("bills", before["bills"][3]["id"], {"description": "Changed after the first sync"})
        changed["bills"].add(before["bills"][3]["id"])
        for record in before["invoices"][10:12]:
            emu.update_record("invoices", record["id"], {"invoiceNumber": record["invoiceNumber"] + "-R"})
            changed["invoices"].add(record["id"])
        live_customer = next(r for r in before["customers"] if not r.get("archived"))
        assert emu.archive_record("customers", live_customer["id"])["archived"] is True
        changed["customers"].add(live_customer["id"])
        for _ in range(2):
            changed["vendors"].add(emu.insert_record("vendors")["id"])
        changed["items"].add(emu.insert_record("items")["id"])
        after = {s: emu.records(s) for s in STREAMS}
        for stream in INCREMENTAL:
            saved = ms(_cursor(states[stream]))
            for record in after[stream]:
                if pk(stream, record) in changed[stream]:
                    assert ms(record[CURSOR]) > saved, f"{stream}: an edit must move updatedTime past the cursor"

        # 3. second sync with the platform's state: the last STATE message of each stream, as a list
        state_file = write_json(tmp_path / "state.json", list(states.values()))
        emu.reset_stats()
        second = ok(
            run_cli("read", "--config", str(config), "--catalog", str(CONFIGURED_CATALOG), "--state", str(state_file))
        )
        got = second.records()
        new_states = second.last_states()
        for stream in INCREMENTAL:
            saved = ms(_cursor(states[stream]))
            current = by_pk(stream, after[stream])
            # A change made less than a second before the sync starts looks, by BILL's whole-second Date header,
            # like an edit made during the sync: the connector may then re-read from that page (a catch-up
            # pass) and send a changed record twice. Harmless with append_dedup; allowed only as exact copies.
            read = by_pk(stream, got.get(stream, []), identical_twice_ok=True)
            at_cursor = {k for k, r in current.items() if ms(r[CURSOR]) == saved}  # gte re-reads these
            assert changed[stream] <= set(read), f"{stream}: changes not read: {changed[stream] - set(read)}"
            unexpected = set(read) - changed[stream] - at_cursor
            assert not unexpected, (
                f"{stream}: re-read {len(unexpected)} unchanged records, e.g. {sorted(unexpected)[:3]}"
            )
            for key, record in read.items():
                assert record == current[key], f"{stream} {key!r}: read {record}, BILL has {current[key]}"
            # the state moves forward: to the newest change, or stays where it was
            new_cursor = ms(_cursor(new_states[stream]))
            assert new_cursor == max(ms(r[CURSOR]) for r in after[stream]), stream
            if changed[stream]:
                assert new_cursor > saved, f"{stream}: state did not move forward"
            else:
                assert new_cursor == saved, f"{stream}: state moved without changes"
        # each incremental stream asked BILL only for records at or after its saved cursor
        for stream in INCREMENTAL:
            queries = [q for method, rel, q, _ in emu.request_log if method == "GET" and rel == STREAMS[stream]]
            assert queries, f"{stream}: not read"
            prefix = f"{CURSOR}:gte:"
            first_filter = queries[0].get("filters", "")
            assert first_filter.startswith(prefix), f"{stream}: first request's filters {first_filter!r}"
            assert ms(first_filter[len(prefix) :].strip('"')) == ms(_cursor(states[stream])), first_filter
        # the full-refresh-only stream is read whole again
        for stream in FULL_REFRESH_ONLY:
            assert_records_equal(stream, got.get(stream, []), after[stream])
        # the second sync read little: far fewer records than the first
        total_second = sum(len(v) for k, v in got.items() if k not in FULL_REFRESH_ONLY)
        assert total_second <= 2 * sum(len(c) for c in changed.values()) + len(INCREMENTAL)


# --- abnormal and sample state ----------------------------------------------------------------------------


def _state_cursors(path: Path) -> Dict[str, str]:
    return {m["stream"]["stream_descriptor"]["name"]: _cursor(m) for m in json.loads(path.read_text())}


@pytest.mark.parametrize("with_start_date", [False, True], ids=["no-start-date", "start-date"])
def test_abnormal_state_with_future_cursors_warns_and_rereads_from_start_date(
    emu: BillEmulator, files: Dict[str, Path], with_start_date: bool
) -> None:
    future = _state_cursors(ABNORMAL_STATE)
    assert future and all(ms(c) > ms("2100-01-01T00:00:00Z") for c in future.values())
    config_obj = emu.config()
    start_ms: Optional[int] = None
    if with_start_date:
        times = sorted(r[CURSOR] for r in emu.records("vendors"))
        start_date = times[len(times) // 2]
        config_obj["start_date"] = start_date
        start_ms = ms(start_date)
    config = write_json(files["tmp"] / f"config_start_{with_start_date}.json", config_obj)
    run = ok(
        run_cli("read", "--config", str(config), "--catalog", str(CONFIGURED_CATALOG), "--state", str(ABNORMAL_STATE))
    )
    records = run.records()
    warnings = [m["log"]["message"] for m in run.of_type("LOG") if m["log"]["level"] in ("WARN", "WARNING")]
    states = run.last_states()
    for stream in future:
        expected = [r for r in emu.records(stream) if start_ms is None or ms(r[CURSOR]) >= start_ms]
        assert expected, f"{stream}: the test needs records after start_date"
        assert_records_equal(stream, records.get(stream, []), expected)
        assert any(stream in w and "future" in w for w in warnings), f"{stream}: no warning about the future cursor"
        new_cursor = _cursor(states[stream])
        assert ms(new_cursor) == max(ms(r[CURSOR]) for r in expected), f"{stream}: state {new_cursor}"


def test_sample_state_reads_only_records_at_or_after_each_saved_cursor(
    emu: BillEmulator, files: Dict[str, Path]
) -> None:
    cursors = _state_cursors(SAMPLE_STATE)
    run = ok(
        run_cli(
            "read", "--config", str(files["config"]), "--catalog", str(CONFIGURED_CATALOG), "--state", str(SAMPLE_STATE)
        )
    )
    records = run.records()
    for stream in STREAMS:
        expected = emu.records(stream)
        if stream in cursors:
            expected = [r for r in expected if ms(r[CURSOR]) >= ms(cursors[stream])]
        assert_records_equal(stream, records.get(stream, []), expected)
    assert any(len(emu.records(s)) > len(records.get(s, [])) for s in cursors), (
        "sample_state.json should hold at least one cursor that skips some records"
    )
