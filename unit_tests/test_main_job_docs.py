"""The main job's and the benchmark's commands as the READMEs write them.

* ``scripts/sync.sh`` and the README state the Python versions of pyproject.toml's ``requires-python``.
* Every benchmark command in README.md and benchmarks/README.md runs ``bench.py`` with the project's
  ``.venv`` interpreter (plain ``python`` has no connector: every run failed after a minute), and both say the
  same about how long a full run takes.
* ``bench.py`` run by an interpreter without the connector stops at once with one line saying which to use.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]


def supported_pythons() -> str:
    spec = re.search(r'requires-python = ">=3\.(\d+),<3\.(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert spec, "requires-python is not of the form >=3.X,<3.Y"
    return f"3.{spec[1]} to 3.{int(spec[2]) - 1}"


def test_sync_sh_and_readme_state_the_python_versions_of_pyproject() -> None:
    versions = supported_pythons()

    stated = re.findall(r"python3 \((3\.\d+[^,)]*)", (ROOT / "scripts" / "sync.sh").read_text())
    assert stated == [versions], stated
    assert f"`python3` ({versions})" in (ROOT / "README.md").read_text()


def test_benchmark_commands_use_the_venv_interpreter_and_agree_on_the_duration() -> None:
    durations = set()
    for readme in READMES:
        text = readme.read_text()
        runs = re.findall(r"^(?:`)?(\S*python\S*) benchmarks/bench\.py", text, re.M)
        assert runs and set(runs) == {".venv/bin/python"}, (readme.name, runs)
        durations.update(re.findall(r"bench\.py[^\n]*about ([\d.]+ minutes)", text))
    assert durations == {"5 minutes"}, durations


@pytest.mark.slow  # a real process
def test_given_python_without_the_connector_when_bench_runs_then_one_line_error_at_once(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)  # a Python with the standard library only
    start = time.monotonic()

    proc = subprocess.run(
        [str(bare / "bin" / "python"), "benchmarks/bench.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: {bare / 'bin' / 'python'} cannot import airbyte_cdk. Run the benchmark with the "
        "interpreter the connector is installed in: .venv/bin/python benchmarks/bench.py (bash scripts/test.sh "
        "creates .venv)."
    ]
    assert time.monotonic() - start < 30


@pytest.mark.slow  # a real process
def test_the_readme_interpreter_runs_the_connector() -> None:
    interpreter = ROOT / ".venv" / "bin" / "python"
    if not interpreter.exists():  # the README's command assumes the default VENV of scripts/test.sh
        import pytest

        pytest.skip(".venv is not at the repository root (VENV was overridden)")
    proc = subprocess.run(
        [str(interpreter), "-c", "import airbyte_cdk, source_bill.run; print(source_bill.run.__name__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (proc.returncode, proc.stdout) == (0, "source_bill.run\n"), proc.stderr
    assert sys.version_info[:2] >= (3, 11)
