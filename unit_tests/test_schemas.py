"""The stream schemas: resolvable by the CDK, complete, open, and reproducible.

The schemas are generated (tools/generate_schemas.py) from the field lists in
bill-api-fields.json; set BILL_API_FIELDS to point at another copy of that file.
"""

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airbyte_cdk.sources.utils.schema_helpers import ResourceSchemaLoader

from source_bill.declarations import declarations

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = REPO_ROOT / "source_bill" / "schemas"
GENERATOR = REPO_ROOT / "tools" / "generate_schemas.py"
FIELDS_FILE = Path(
    os.environ.get("BILL_API_FIELDS", str(Path(__file__).resolve().parents[1] / "tools" / "bill-api-fields.json"))
)
DRAFT_07 = "http://json-schema.org/draft-07/schema#"

# The streams (also their keys in the fields file), as the connector declares them.
STREAMS = [d.name for d in declarations()]

# Fields BILL's API reference documents as newer than the field lists (tools/generate_schemas.py adds them).
NEWER_FIELDS = {
    "invoices": {
        "recordStatus": "string",
        "paymentTermId": "string",
        "createdBy": "string",
    },
    "customers": {"hasBankAccount": "boolean", "authorizedToCharge": "boolean"},
    "bills": {"vendorName": "string", "purchaseOrderNumber": "string"},
}

needs_fields_file = pytest.mark.skipif(
    not FIELDS_FILE.is_file(),
    reason=f"field lists not found at {FIELDS_FILE} (set BILL_API_FIELDS)",
)


def resolved_schema(stream: str) -> dict[str, Any]:
    """The schema exactly as the connector's streams get it (Stream.get_json_schema)."""
    return ResourceSchemaLoader("source_bill").get_schema(stream)


def field_lists() -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(FIELDS_FILE.read_text(encoding="utf-8"))
    return fields


def schema_files() -> list[Path]:
    return sorted(SCHEMAS_DIR.rglob("*.json"))


def types_of(node: dict[str, Any]) -> set[str]:
    raw = node.get("type", [])
    return {raw} if isinstance(raw, str) else set(raw)


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, sub-schema) pair below node, node included."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}/{index}")


def field_paths(node: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted path, schema) of each field in a field list; [] marks array items."""
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        yield path, child
        yield from field_paths(child, f"{path}.")
        if "items" in child:
            yield f"{path}[]", child["items"]
            yield from field_paths(child["items"], f"{path}[].")


def node_at(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = schema
    for part in dotted.split("."):
        is_items = part.endswith("[]")
        name = part[:-2] if is_items else part
        assert name in node.get("properties", {}), f"missing field {dotted!r} (at {name!r})"
        node = node["properties"][name]
        if is_items:
            assert "items" in node, f"{dotted!r}: no items"
            node = node["items"]
    return node


@pytest.mark.parametrize("stream", STREAMS)
def test_given_stream_when_cdk_loads_schema_then_every_ref_is_resolved(
    stream: str,
) -> None:
    raw = json.loads((SCHEMAS_DIR / f"{stream}.json").read_text(encoding="utf-8"))
    assert raw["$schema"] == DRAFT_07
    assert raw["type"] == "object"

    schema = resolved_schema(stream)

    leftover = [path for path, node in walk(schema) if isinstance(node, dict) and "$ref" in node]
    assert leftover == []
    assert schema["properties"], "resolved schema has no properties"


@needs_fields_file
@pytest.mark.parametrize("stream", STREAMS)
def test_given_field_list_when_schema_resolved_then_every_field_is_there_nullable(
    stream: str,
) -> None:
    fields = field_lists()[stream]
    schema = resolved_schema(stream)

    for path, expected in field_paths(fields):
        actual = node_at(schema, path)
        actual_types = types_of(actual)
        assert "null" in actual_types, f"{stream}.{path} is not nullable: {actual_types}"
        for json_type in types_of(expected) - {"null"}:
            compatible = {json_type, "number"} if json_type == "integer" else {json_type}
            assert actual_types & compatible, f"{stream}.{path}: {actual_types}, want {json_type}"
        if "format" in expected:
            assert actual.get("format") == expected["format"], f"{stream}.{path}: format"


@pytest.mark.parametrize("stream", STREAMS)
def test_given_stream_then_its_key_and_cursor_fields_are_declared(stream: str) -> None:
    properties = resolved_schema(stream)["properties"]

    if stream == "card_account_users":
        assert types_of(properties["cardAccountId"]) == {"null", "string"}
        assert types_of(properties["userId"]) == {"null", "string"}
        return
    assert types_of(properties["id"]) == {"null", "string"}
    assert types_of(properties["updatedTime"]) == {"null", "string"}
    assert properties["updatedTime"]["format"] == "date-time"
    assert properties["createdTime"]["format"] == "date-time"


@pytest.mark.parametrize("stream", sorted(NEWER_FIELDS))
def test_given_fields_newer_than_field_list_then_schema_declares_them(
    stream: str,
) -> None:
    properties = resolved_schema(stream)["properties"]

    for name, json_type in NEWER_FIELDS[stream].items():
        assert name in properties, f"{stream}.{name} missing"
        assert types_of(properties[name]) == {"null", json_type}


@pytest.mark.parametrize("stream", STREAMS)
def test_given_resolved_schema_then_it_is_open_nullable_and_has_no_closed_lists(
    stream: str,
) -> None:
    schema = resolved_schema(stream)

    for path, node in walk(schema):
        if not isinstance(node, dict) or path.endswith("/properties"):
            continue
        assert "enum" not in node, f"enum at {path}"
        assert "required" not in node, f"required at {path}"
        if "object" in types_of(node):
            assert node.get("additionalProperties") is True, f"closed object at {path}"
        if path.rsplit("/", 2)[-2:-1] == ["properties"] or path.endswith("/items"):
            assert "null" in types_of(node), f"not nullable: {path}"


@pytest.mark.parametrize("path", schema_files(), ids=lambda p: str(p.relative_to(SCHEMAS_DIR)))
def test_given_schema_file_then_no_enum_required_or_closed_object_and_refs_use_cdk_form(
    path: Path,
) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))

    for where, node in walk(raw):
        if not isinstance(node, dict) or where.endswith("/properties"):
            continue
        assert "enum" not in node, f"enum at {where}"
        assert "required" not in node, f"required at {where}"
        assert node.get("additionalProperties", True) is not False, f"closed at {where}"
        if "$ref" in node:
            # ResourceSchemaLoader looks refs up in schemas/shared/ by file name;
            # "shared/x.json" would become schemas/shared/shared/x.json and fail.
            assert "/" not in node["$ref"], f"{where}: write {node['$ref']!r} as a bare file name"
            assert (SCHEMAS_DIR / "shared" / node["$ref"]).is_file(), f"{where}: no such shared file"
            assert set(node) == {"$ref"}, f"{where}: keys beside $ref are dropped by the CDK"


def test_given_shared_pieces_then_each_is_used_by_some_schema() -> None:
    refs = {
        node["$ref"]
        for path in schema_files()
        for _, node in walk(json.loads(path.read_text(encoding="utf-8")))
        if isinstance(node, dict) and "$ref" in node
    }

    shared = {path.name for path in (SCHEMAS_DIR / "shared").glob("*.json")}
    assert shared - refs == set(), "unused shared schema files"
    assert {"address.json", "classifications.json"} <= shared


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("generate_schemas", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def _assert_same_as_committed(out: Path) -> None:
    generated = sorted(path.relative_to(out) for path in out.rglob("*.json"))
    assert {f"{stream}.json" for stream in STREAMS} <= {str(path) for path in generated}
    for relative in generated:
        committed = SCHEMAS_DIR / relative
        assert committed.is_file(), f"{relative} is generated but not in source_bill/schemas"
        assert committed.read_bytes() == (out / relative).read_bytes(), (
            f"{relative} is stale: run tools/generate_schemas.py"
        )


@needs_fields_file
def test_given_generator_when_rerun_in_process_then_files_are_byte_identical(tmp_path: Path) -> None:
    assert _generator().main(["--fields", str(FIELDS_FILE), "--out", str(tmp_path)]) == 0
    _assert_same_as_committed(tmp_path)


@needs_fields_file
@pytest.mark.slow
def test_given_generator_run_as_a_script_when_rerun_then_files_are_byte_identical(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(GENERATOR),
            "--fields",
            str(FIELDS_FILE),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    _assert_same_as_committed(tmp_path)
