"""The console entry point's start-up (``source_bill.boot``): a lean package import and serializers built
without parsing a module per class, each giving exactly what the normal import gives.

The packages here are written into a temporary directory so that each test sees a package nobody imported yet;
the CDK itself is already imported in this process, so the CLI's own start-up is checked in a child process.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator, List

import attributes_doc
import pytest
from airbyte_cdk.models import airbyte_protocol

from source_bill import boot

ROOT = Path(__file__).resolve().parents[1]


# --- lean_package ---------------------------------------------------------------------------------------
@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``leanpkg``: an ``__init__`` that counts its runs and imports ``heavy``; ``light`` that imports a
    sibling the way ``airbyte_cdk.sources.streams.core`` does (``import pkg.a.b as c`` while ``pkg.a`` is
    still importing)."""
    name = "leanpkg_" + tmp_path.name.replace("-", "_")
    root = tmp_path / name
    (root / "inner").mkdir(parents=True)
    (root / "__init__.py").write_text(
        "import builtins\n"
        "builtins.LEAN_INIT_RUNS = getattr(builtins, 'LEAN_INIT_RUNS', 0) + 1\n"
        "from . import heavy\n"
        "VALUE = 42\n"
        "__version__ = '1.2.3'\n"
    )
    (root / "heavy.py").write_text("LOADED = True\n")
    (root / "inner" / "__init__.py").write_text("from .light import LIGHT\n")
    (root / "inner" / "light.py").write_text(f"import {name}.inner.tool as tool\nLIGHT = tool.TOOL + 1\n")
    (root / "inner" / "tool.py").write_text("TOOL = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("builtins.LEAN_INIT_RUNS", 0, raising=False)
    try:
        yield name
    finally:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


def init_runs() -> int:
    import builtins

    return int(builtins.LEAN_INIT_RUNS)  # type: ignore[attr-defined]


def test_a_submodule_imports_without_the_package_init(package: str) -> None:
    assert boot.lean_package(package) is True
    inner = __import__(f"{package}.inner", fromlist=["LIGHT"])
    assert inner.LIGHT == 2  # light.py's "import pkg.inner.tool as tool" ran while pkg.inner was importing
    assert init_runs() == 0
    assert f"{package}.heavy" not in sys.modules


def test_a_name_asked_of_the_package_runs_its_init_once(package: str) -> None:
    boot.lean_package(package)
    __import__(f"{package}.inner")
    module = sys.modules[package]
    assert module.VALUE == 42  # type: ignore[attr-defined]
    assert module.__version__ == "1.2.3"  # type: ignore[attr-defined]
    namespace: dict[str, Any] = {}
    exec(f"from {package} import VALUE, heavy", namespace)
    assert (namespace["VALUE"], namespace["heavy"].LOADED) == (42, True)
    assert init_runs() == 1
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        module.missing  # noqa: B018
    assert init_runs() == 1


def test_from_package_import_runs_the_init_first_thing(package: str) -> None:
    boot.lean_package(package)
    namespace: dict[str, Any] = {}
    exec(f"from {package} import VALUE", namespace)
    assert namespace["VALUE"] == 42
    assert init_runs() == 1


def test_lean_package_leaves_what_it_cannot_improve(package: str) -> None:
    assert boot.lean_package("no_such_package_anywhere") is False
    assert "no_such_package_anywhere" not in sys.modules
    assert boot.lean_package("json.decoder") is False  # a module, not a package: imported as usual
    __import__(package)
    before = sys.modules[package]
    assert boot.lean_package(package) is False  # imported already
    assert sys.modules[package] is before
    assert init_runs() == 1


# --- class_source: inspect.getsource from one parse per file ----------------------------------------------
SAMPLE = '''
import dataclasses


def deco(cls):
    return cls


class Twice:
    """the first of two classes with this name"""
    a: int = 1


class Twice:  # noqa: F811
    b: int = 2


@deco
@dataclasses.dataclass
class Decorated:
    x: int = 0
    """x's doc"""


class Outer:
    class Inner:
        y: str = ""
        """y's doc"""

    def method(self):
        class Local:
            z = 3
            """z's doc"""

        return Local


def factory():
    class Made:
        w = 4
        """w's doc"""

    return Made
'''


@pytest.fixture
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    name = "boot_sample_" + tmp_path.name.replace("-", "_")
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SAMPLE))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield __import__(name)
    finally:
        sys.modules.pop(name, None)


def classes_of(module: Any) -> List[type]:
    """Every class ``module`` defines or imports (the protocol module star-imports the protocol's models)."""
    return [value for value in vars(module).values() if inspect.isclass(value)]


def test_class_source_is_inspect_getsource(sample: Any) -> None:
    classes = [
        sample.Twice,
        sample.Decorated,
        sample.Outer,
        sample.Outer.Inner,
        sample.Outer().method(),
        sample.factory(),
    ]
    for cls in classes:
        assert boot.class_source(cls) == inspect.getsource(cls), cls.__qualname__
    assert "the first of two" in boot.class_source(sample.Twice)  # inspect takes the first definition
    assert boot.class_source(sample.Decorated).startswith("@deco\n")
    assert boot.class_source(sample.deco) == inspect.getsource(sample.deco)  # not a class: inspect's own


def test_class_source_matches_inspect_over_the_protocol_models() -> None:
    classes = classes_of(airbyte_protocol)
    assert len(classes) > 40
    for cls in classes:
        for parent in cls.mro():
            try:
                expected = inspect.getsource(parent)
            except (TypeError, OSError) as exc:
                with pytest.raises(type(exc)):
                    boot.class_source(parent)
                continue
            assert boot.class_source(parent) == expected, parent


# --- fast_attribute_docs -----------------------------------------------------------------------------------
def test_fast_attribute_docs_gives_the_same_docs(monkeypatch: pytest.MonkeyPatch, sample: Any) -> None:
    original = attributes_doc.get_attributes_doc
    monkeypatch.setattr(attributes_doc, "get_attributes_doc", original)
    assert boot.fast_attribute_docs(modules={}) is True
    faster = attributes_doc.get_attributes_doc
    assert faster is not original and faster.__name__ == original.__name__
    classes = [*classes_of(airbyte_protocol), sample.Decorated, sample.Outer.Inner, sample.factory()]
    for cls in classes:
        assert faster(cls) == original(cls), cls
    assert faster(sample.Decorated) == {"x": "x's doc"}
    assert faster(sample.factory()) == {"w": "w's doc"}


def test_fast_attribute_docs_changes_nothing_once_serpyco_holds_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    original = attributes_doc.get_attributes_doc
    monkeypatch.setattr(attributes_doc, "get_attributes_doc", original)
    assert boot.fast_attribute_docs() is False  # serpyco_rs._utils is imported in this process
    monkeypatch.setattr(attributes_doc, "get_attributes_doc", lambda cls: {})
    assert boot.fast_attribute_docs(modules={}) is False  # not the function it knows
    assert attributes_doc.get_attributes_doc(int) == {}


# --- the CLI's own start-up ---------------------------------------------------------------------------------
PROBE = """
import hashlib, json, sys
{setup}
from airbyte_cdk.models import airbyte_protocol_serializers as s
schemas = [v.get_json_schema() for n, v in sorted(vars(s).items()) if isinstance(v, s.Serializer)]
print(json.dumps({{
    "schemas": hashlib.sha256(json.dumps(schemas, sort_keys=True).encode()).hexdigest(),
    "count": len(schemas),
    "declarative": any(".declarative" in m for m in sys.modules),
    "destinations": "airbyte_cdk.destinations" in sys.modules,
}}))
"""


def probe(setup: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


@pytest.mark.slow
def test_the_cli_imports_only_what_it_uses_and_builds_the_same_serializers() -> None:
    lean = probe("import source_bill.run")
    full = probe("import airbyte_cdk, source_bill.run")
    assert lean["count"] == full["count"] == 8
    assert lean["schemas"] == full["schemas"]  # the serializers' schemas, attribute docs included
    assert (lean["declarative"], lean["destinations"]) == (False, False)
    assert (full["declarative"], full["destinations"]) == (True, True)
