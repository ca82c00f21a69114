"""The Airbyte CDK standard tests ("FAST" tests, successor of the Connector Acceptance Tests), in-process.

Scenarios come from ``acceptance-test-config.yml`` at the repo root (spec, connection with a good and a
bad config, discovery, basic_read of all 22 streams with schema validation). The configs point at
127.0.0.1:18765, where this module starts the bundled BILL emulator for its duration.

The hooks that parametrize the suite are loaded by the root ``conftest.py`` (pytest honours
``pytest_plugins`` only there). The ``test_docker_image_*`` tests need a Docker engine; they carry the
``image_tests`` marker, which pyproject's ``addopts`` deselects.

Run: ``python -m pytest integration_tests/test_standard_suite.py -q``.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest
import yaml
from airbyte_cdk.test.standard_tests import SourceTestSuiteBase

from integration_tests.bill_emulator import DEFAULT_CREDENTIALS, BillEmulator
from source_bill import SourceBill

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CONFIG = ROOT / "integration_tests" / "sample_config.json"
INVALID_CONFIG = ROOT / "integration_tests" / "invalid_config.json"
SAMPLE_OAUTH = ROOT / "integration_tests" / "sample_config_oauth.json"
INVALID_OAUTH = ROOT / "integration_tests" / "invalid_config_oauth.json"


def _fixed_address() -> tuple[str, int]:
    parts = urlsplit(json.loads(SAMPLE_CONFIG.read_text())["base_url"])
    assert parts.hostname and parts.port, f"{SAMPLE_CONFIG} must name a loopback host and port"
    return parts.hostname, parts.port


@pytest.fixture(scope="module", autouse=True)
def emulator_on_fixed_port() -> Iterator[BillEmulator]:
    """The BILL emulator where sample_config.json and invalid_config.json point (127.0.0.1:18765)."""
    host, port = _fixed_address()
    try:
        emu = BillEmulator(seed=1, host=host, port=port).start()
    except OSError as exc:
        pytest.fail(
            f"cannot start the BILL emulator on {host}:{port} for the standard tests ({exc}); is another "
            "test run or emulator using that port?"
        )
    try:
        yield emu
    finally:
        emu.stop()


class TestBillStandardSuite(SourceTestSuiteBase):
    connector = SourceBill


# --- the inputs of the suite are what they claim to be ---------------------------------------------------


def test_sample_configs_are_the_emulators_and_invalid_ones_differ_only_in_the_secret(
    emulator_on_fixed_port: BillEmulator,
) -> None:
    sample = json.loads(SAMPLE_CONFIG.read_text())
    invalid = json.loads(INVALID_CONFIG.read_text())
    assert sample == emulator_on_fixed_port.config()
    assert {k: sample["credentials"][k] for k in ("username", "password", "dev_key")} == {
        k: DEFAULT_CREDENTIALS[k] for k in ("username", "password", "dev_key")
    }
    assert invalid == emulator_on_fixed_port.config(password=invalid["credentials"]["password"])
    assert invalid["credentials"]["password"] != sample["credentials"]["password"]
    oauth = json.loads(SAMPLE_OAUTH.read_text())
    invalid_oauth = json.loads(INVALID_OAUTH.read_text())
    assert oauth == emulator_on_fixed_port.config("oauth_client_credentials")
    secret = invalid_oauth["credentials"]["client_secret"]
    assert invalid_oauth == emulator_on_fixed_port.config("oauth_client_credentials", client_secret=secret)
    assert secret != oauth["credentials"]["client_secret"]


def test_acceptance_config_lists_both_configs_and_reads_without_a_catalog() -> None:
    config = yaml.safe_load((ROOT / "acceptance-test-config.yml").read_text())
    tests = config["acceptance_tests"]
    connection = {t["config_path"]: t["status"] for t in tests["connection"]["tests"]}
    assert connection == {
        "integration_tests/sample_config.json": "succeed",
        "integration_tests/invalid_config.json": "failed",
        "integration_tests/sample_spend_config.json": "succeed",
        "integration_tests/sample_config_oauth.json": "succeed",
        "integration_tests/invalid_config_oauth.json": "failed",
    }
    for section in ("spec", "discovery", "basic_read"):
        paths = {entry["config_path"] for entry in tests[section]["tests"]}
        assert {"integration_tests/sample_config.json", "integration_tests/sample_config_oauth.json"} <= paths
    for entry in tests["basic_read"]["tests"]:
        # CDK 7.39: with the same config under `spec`, a catalog here makes `spec` get --catalog and exit 2.
        assert "configured_catalog_path" not in entry
    for section in ("spec", "discovery", "basic_read", "incremental"):
        for entry in tests[section]["tests"]:
            assert (ROOT / entry["config_path"]).is_file()
            for key in ("configured_catalog_path", "spec_path"):
                if key in entry:
                    assert (ROOT / entry[key]).is_file()
            future = entry.get("future_state", {}).get("future_state_path")
            if future:
                assert (ROOT / future).is_file()


def test_fixed_port_is_served_by_the_emulator(emulator_on_fixed_port: BillEmulator) -> None:
    host, port = _fixed_address()
    with socket.create_connection((host, port), timeout=5):
        pass
    assert emulator_on_fixed_port.base_url == json.loads(SAMPLE_CONFIG.read_text())["base_url"]
