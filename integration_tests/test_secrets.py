"""No secret ever leaves the connector: the password, the developer key and every BILL session id.

Runs the installed ``source-bill`` CLI with ``--debug`` (spec, check, discover, read; check and read with a
failing login; a read whose sessions expire mid-stream so new session ids are issued) against the bundled
emulator with distinctive credentials, and searches all of stdout and stderr.

The emulator does not list the session ids it issued (its ``_sessions`` table forgets expired ones), so the
test wraps the emulator instance's ``_login`` to record every ``sessionId`` it answers with.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, List, Tuple
from urllib.parse import quote

import pytest

from integration_tests.bill_emulator import BillEmulator
from tests_support import cli_command, configured_catalog_json

pytestmark = pytest.mark.slow  # runs the CLI

SECRET_CREDENTIALS = {
    "username": "robot-sync@example.com",
    "password": "Pw-Zebra9Quokka-7731-secret",
    "organization_id": "00801SECRETS00042",
    "dev_key": "DK-Mango4Lynx-55290-devkey",
}
WRONG_PASSWORD = "Wrong-Pw-Narwhal-40417"
WRONG_DEV_KEY = "DK-Wrong-Ocelot-88123"
STREAMS = ["vendors", "bills", "invoices", "users", "card_account_users"]


def run(args: List[str], directory: Path) -> Tuple[List[str], int, str]:
    import subprocess

    try:
        proc = subprocess.run([*cli_command(), *args], capture_output=True, text=True, timeout=90, cwd=directory)
        return args, proc.returncode, proc.stdout + "\n" + proc.stderr
    except subprocess.TimeoutExpired as exc:
        return args, -999, f"{exc.stdout or ''}\n{exc.stderr or ''}"


def forms(secret: str) -> List[str]:
    """The secret as written, JSON-escaped and URL-encoded: any of them in the output is a leak."""
    return sorted({secret, json.dumps(secret)[1:-1], quote(secret, safe="")})


def test_given_debug_runs_and_expiring_sessions_when_output_searched_then_no_password_dev_key_or_session_id(
    tmp_path: Path,
) -> None:
    """Breaks if the password or dev key is logged (e.g. the login body in a debug or error message, the config
    echoed), or if a session id is (e.g. "session ... rejected", request headers in debug logs, an error
    detail), including session ids issued after a mid-stream expiry.
    """
    with BillEmulator(seed=81, sizes={"vendors": 450, "bills": 450, "invoices": 300}) as emu:
        emu.credentials = dict(SECRET_CREDENTIALS)
        issued: List[str] = []
        real_login = emu._login

        def recording_login(body: Any, raw: bytes) -> Any:
            response = real_login(body, raw)
            if response.status == 200:
                issued.append(json.loads(response.body)["sessionId"])
            return response

        emu._login = recording_login  # type: ignore[method-assign]

        good = emu.config()
        assert good["credentials"]["password"] == SECRET_CREDENTIALS["password"]
        assert good["credentials"]["dev_key"] == SECRET_CREDENTIALS["dev_key"]
        files = {
            "good": good,
            "wrong_password": emu.config(password=WRONG_PASSWORD),
            "wrong_dev_key": emu.config(dev_key=WRONG_DEV_KEY),
        }
        for name, config in files.items():
            (tmp_path / f"{name}.json").write_text(json.dumps(config))
        (tmp_path / "catalog.json").write_text(json.dumps(configured_catalog_json(STREAMS)))

        def cfg(name: str) -> List[str]:
            return ["--config", str(tmp_path / f"{name}.json")]

        cat = ["--catalog", str(tmp_path / "catalog.json")]
        batch = [
            ["spec", "--debug"],
            ["check", "--debug", *cfg("good")],
            ["discover", "--debug", *cfg("good")],
            ["read", "--debug", *cfg("good"), *cat],
            ["check", "--debug", *cfg("wrong_password")],
            ["read", "--debug", *cfg("wrong_password"), *cat],
            ["check", "--debug", *cfg("wrong_dev_key")],
        ]
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            results = list(pool.map(lambda a: run(a, tmp_path), batch))
        sessions_before_expiry = len(issued)

        # sessions die every 4 requests: new session ids are issued in the middle of each stream
        emu.settings.session_max_requests = 4
        rejected_before = emu.stats.status_counts.get(401, 0)
        results.append(run(["read", "--debug", *cfg("good"), *cat], tmp_path))
        expiries = emu.stats.status_counts.get(401, 0) - rejected_before

    outcomes = [(" ".join(a), rc) for a, rc, _ in results]
    assert all(rc != -999 for _, rc, _ in results), outcomes
    assert results[0][1] == 0 and '"SPEC"' in results[0][2]
    assert results[1][1] == 0 and '"SUCCEEDED"' in results[1][2]
    assert results[2][1] == 0 and '"CATALOG"' in results[2][2]
    assert results[3][1] == 0 and '"RECORD"' in results[3][2]
    assert '"FAILED"' in results[4][2] and '"FAILED"' in results[6][2]  # failing logins answered, not crashed
    assert results[5][1] != 0 and "config_error" in results[5][2]
    assert results[7][1] == 0 and '"RECORD"' in results[7][2]
    assert expiries >= 3, "the sessions did not expire mid-stream"
    assert len(issued) - sessions_before_expiry >= 3, "no new session ids were issued mid-stream"
    assert len(set(issued)) == len(issued) >= 6

    secrets = {
        "password": SECRET_CREDENTIALS["password"],
        "dev_key": SECRET_CREDENTIALS["dev_key"],
        "wrong password": WRONG_PASSWORD,
        "wrong dev_key": WRONG_DEV_KEY,
        **{f"session id #{i}": sid for i, sid in enumerate(issued)},
    }
    leaks = []
    for args, _, output in results:
        for what, secret in secrets.items():
            for form in forms(secret):
                if form in output:
                    at = output.index(form)
                    context = output[max(0, at - 120) : at]
                    leaks.append(f"{what} in `source-bill {' '.join(args[:2])}`: ...{context}<HERE>")
    assert not leaks, "\n".join(leaks)
