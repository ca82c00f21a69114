"""The README and the docs page agree with the code: errors table, streams, config keys, the two commands."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List

import pytest

from source_bill import errors
from source_bill.declarations import StreamDeclaration, declarations
from source_bill.source import SourceBill

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS_PAGE = ROOT / "docs" / "integrations" / "sources" / "bill.md"
SPEC = ROOT / "source_bill" / "spec.json"
CI = ROOT / ".ci" / "run"
START = "<!-- errors-table:start -->"
END = "<!-- errors-table:end -->"
PLACEHOLDER_CONFIG = {"username": "u@example.com", "password": "x", "organization_id": "008abc", "dev_key": "k"}


def _between_markers(text: str) -> str:
    lines = text.splitlines()
    assert lines.count(START) == 1 and lines.count(END) == 1, f"each of {START} and {END} once, on its own line"
    start, end = lines.index(START), lines.index(END)
    assert start < end
    return "\n".join(lines[start + 1 : end])


def _section(text: str, heading: str) -> str:
    """The body of the '## heading' section, up to the next '## ' heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def _table_rows(section: str) -> Dict[str, List[str]]:
    """Rows of the first markdown table in a section, keyed by the first cell without backticks."""
    rows = {}
    for line in section.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0].strip("`")] = cells
    return rows


def _streams() -> List[StreamDeclaration]:
    return list(declarations())


@pytest.mark.parametrize("page", [README, DOCS_PAGE], ids=["README", "docs-page"])
def test_given_a_docs_page_when_reading_its_errors_table_then_it_equals_the_generated_table(page: Path) -> None:
    assert _between_markers(page.read_text(encoding="utf-8")) == errors.markdown_table()


def test_given_the_streams_when_reading_the_readme_streams_table_then_each_has_a_row_with_its_path() -> None:
    rows = _table_rows(_section(README.read_text(encoding="utf-8"), "Streams"))
    streams = _streams()
    assert len(streams) == 22
    for stream in streams:
        assert stream.name in rows, f"stream {stream.name} missing from the README streams table"
        row = " | ".join(rows[stream.name])
        assert f"`/v3/{stream.path}`" in row, f"{stream.name}: path /v3/{stream.path} not in its row: {row}"
        for key in stream.primary_key:
            assert f"`{key}`" in row, f"{stream.name}: primary key {key} not in its row"
        incremental = rows[stream.name][-1]
        assert incremental.startswith("yes" if stream.cursor_field else "no"), f"{stream.name}: {incremental}"
    every = {s.name for s in SourceBill().streams(PLACEHOLDER_CONFIG)}
    assert set(rows) - {"stream"} == every, "the README streams table and the connector's streams differ"


def test_given_the_streams_when_reading_the_docs_page_then_each_is_listed_with_its_path() -> None:
    rows = _table_rows(_section(DOCS_PAGE.read_text(encoding="utf-8"), "Supported streams"))
    by_name = {re.sub(r"^\[([^\]]+)\].*$", r"\1", name): cells for name, cells in rows.items()}
    for stream in _streams():
        assert stream.name in by_name, f"stream {stream.name} missing from the docs page"
        assert f"`/v3/{stream.path}`" in " | ".join(by_name[stream.name])


def _spec_keys() -> Dict[str, bool]:
    """Every key of the spec, the sign-in options' as ``credentials.<key>``, and whether it is required."""
    spec = json.loads(SPEC.read_text(encoding="utf-8"))["connectionSpecification"]
    keys = {key: key in spec["required"] for key in spec["properties"]}
    for option in spec["properties"]["credentials"]["oneOf"]:
        for key in option["properties"]:
            if key != "auth_type":
                keys[f"credentials.{key}"] = key in option["required"]
    return keys


def test_given_the_spec_when_reading_the_readme_configuration_table_then_every_property_has_a_row() -> None:
    rows = _table_rows(_section(README.read_text(encoding="utf-8"), "Configuration"))
    keys = _spec_keys()
    for key, required in keys.items():
        assert key in rows, f"spec key {key} missing from the README configuration table"
        assert rows[key][1].startswith("yes" if required else "no"), f"{key}: required is {rows[key][1]!r}"
    assert set(rows) - {"key"} == set(keys), "the README documents keys the spec lacks"


def test_given_the_readme_when_reading_its_first_code_block_then_it_opens_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"^```[a-z]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    assert block, "README has no code block"
    commands = [line.strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands[:2] == ["bash scripts/sync.sh", "bash scripts/test.sh"]
    before = [line for line in text[: block.start()].splitlines() if line.strip()]
    assert before[0].startswith("# ") and len(before) <= 2, "only a title and a one-line description before them"


def test_given_ci_when_reading_its_entry_then_it_runs_the_readme_test_command_with_every_test() -> None:
    commands = [line.strip() for line in CI.read_text(encoding="utf-8").splitlines()]
    assert any(re.fullmatch(r"(exec )?bash scripts/test\.sh --all( .*)?", line) for line in commands)


@pytest.mark.parametrize("page", [README, DOCS_PAGE], ids=lambda p: p.name)
def test_given_a_changelog_when_reading_its_newest_row_then_it_is_the_package_version(page: Path) -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    rows = re.findall(r"^\| (\d+\.\d+\.\d+) \|", _section(page.read_text(), "Changelog"), flags=re.MULTILINE)
    assert rows, f"{page.name}: no changelog rows"
    assert rows[0] == version, f"{page.name}: newest changelog row is {rows[0]}, the package is {version}"
    assert rows == sorted(rows, key=lambda v: tuple(map(int, v.split("."))), reverse=True)
