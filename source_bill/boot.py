"""Start-up of the console entry point: load only the parts of airbyte-cdk the connector uses.

``import airbyte_cdk.<anything>`` first runs the package's ``__init__``, and that imports the whole CDK: the
declarative framework (its pydantic component schema alone is 0.3 s), destinations, the file-based sources, the
legacy declarative streams. On the benchmark machine that is 0.7 s of CPU (medians: 2.34 s to import the connector
that way, 1.65 s lean) on every ``spec``, ``check``, ``discover`` and ``read``, for modules the connector never
calls. :func:`fast_attribute_docs` takes another 0.4 s off (1.22 s).

``lean_package("airbyte_cdk")`` registers the package in ``sys.modules`` without running its ``__init__``, so
``import airbyte_cdk.sources.streams`` loads just that submodule and what it imports. Nothing is given up: the first
time anything asks the package itself for a name (``from airbyte_cdk import X``, ``airbyte_cdk.__version__``),
a module ``__getattr__`` (PEP 562) runs the real ``__init__`` in place and answers from it, so such code gets
exactly what it would have got. A submodule already in ``sys.modules`` is answered without it, the attribute the
import system binds once that submodule has loaded (``import airbyte_cdk.sources.utils.casing as casing`` inside
``airbyte_cdk.sources`` asks for it earlier).

Only ``source_bill.run`` (the ``source-bill`` command, ``main.py``, the Docker entry point) calls this, before it
imports the CDK; a process that imported the CDK already (PyAirbyte in-process, the tests) is left as it is. This
module imports nothing from the CDK.
"""

import ast
import functools
import importlib.util
import inspect
import linecache
import sys
import threading
from types import FunctionType, ModuleType
from typing import Any, Dict, List, MutableMapping, Optional


def lean_package(name: str, modules: Optional[MutableMapping[str, ModuleType]] = None) -> bool:
    """Register package ``name`` with its ``__init__`` deferred to the first lookup of a name on it.

    Returns True when it did; False when the package is imported already (nothing to gain, nothing changed) or
    cannot be found or is not a package with a loader (then the normal import runs, and fails, as it would have).
    """
    modules = sys.modules if modules is None else modules
    if name in modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    module = importlib.util.module_from_spec(spec)  # __spec__, __path__, __file__, __loader__; not executed
    loader = spec.loader
    lock = threading.RLock()
    state = {"loaded": False}

    def __getattr__(attr: str) -> Any:  # the PEP 562 hook
        submodule = modules.get(f"{name}.{attr}")
        if submodule is not None:
            # A submodule still importing (``import airbyte_cdk.sources.x as y`` inside ``airbyte_cdk.sources``
            # asks for it before the import system binds it): the attribute it is about to become.
            return submodule
        with lock:
            if not state["loaded"]:
                # Set first: while ``__init__`` runs, a lookup on the half-built package (``from . import sub``
                # does one) must fall through to the import system as it would for a normal package, not recurse.
                state["loaded"] = True
                loader.exec_module(module)
                if attr in module.__dict__:
                    return module.__dict__[attr]
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    modules[name] = module
    return True


# --- serpyco-rs: attribute docs without parsing a module once per class -----------------------------------
def fast_attribute_docs(modules: Optional[MutableMapping[str, ModuleType]] = None) -> bool:
    """Make ``attributes_doc.get_attributes_doc`` find class sources in one parse per file.

    ``airbyte_cdk.models`` builds eight serpyco-rs serializers when imported, and each looks up the docstrings
    of every protocol class's attributes with ``attributes_doc.get_attributes_doc``, which calls
    ``inspect.getsource`` on each class of each MRO. On Python 3.11 ``inspect`` finds a class by parsing its
    whole module and walking the tree, once per call: 112 calls over the protocol module, about 0.5 s of CPU
    on every start of the connector. This installs the same function (its own code object, run with an
    ``inspect`` whose ``getsource`` is :func:`class_source`) before serpyco-rs imports it; ``class_source``
    gives exactly what ``inspect.getsource`` gives, from one parse per file, and calls ``inspect.getsource``
    for anything that is not a class. Returns False, changing nothing, when serpyco-rs has already bound the
    function or the installed ``attributes_doc`` does not look as expected.
    """
    modules = sys.modules if modules is None else modules
    if "serpyco_rs._utils" in modules:
        return False
    try:
        import attributes_doc
        from attributes_doc import _base
    except ImportError:
        return False
    original = getattr(_base, "get_attributes_doc", None)
    if not isinstance(original, FunctionType) or "inspect" not in original.__code__.co_names:
        return False
    if attributes_doc.get_attributes_doc is not original:
        return False
    namespace = dict(original.__globals__)
    namespace["inspect"] = _SourceOnce()
    faster = FunctionType(original.__code__, namespace, original.__name__, original.__defaults__, original.__closure__)
    attributes_doc.get_attributes_doc = functools.wraps(original)(faster)
    return True


def class_source(obj: Any) -> str:
    """``inspect.getsource(obj)``, for a class from one parse of its file (cached) instead of one per call.

    The steps are those of Python 3.11's ``inspect.findsource`` and ``getsourcelines`` for a class: the source
    file's lines from ``linecache``; the first class whose qualified name matches, in the order ``inspect``'s
    class finder walks the tree, starting at its first decorator; the indented block from there. Anything
    else, or a class whose definition is not found, goes to ``inspect.getsource``, which answers or raises as
    it would have.
    """
    obj = inspect.unwrap(obj)
    if not inspect.isclass(obj):
        return inspect.getsource(obj)
    file = inspect.getsourcefile(obj)
    if not file:
        return inspect.getsource(obj)
    linecache.checkcache(file)
    module = inspect.getmodule(obj, file)
    lines = linecache.getlines(file, module.__dict__) if module else linecache.getlines(file)
    start = _class_starts("".join(lines)).get(obj.__qualname__) if lines else None
    if start is None:
        return inspect.getsource(obj)
    return "".join(inspect.getblock(lines[start:]))


class _SourceOnce:
    """``inspect`` as ``get_attributes_doc`` sees it: ``getsource`` is :func:`class_source`, the rest is
    ``inspect``'s own."""

    getsource = staticmethod(class_source)

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)


@functools.lru_cache(maxsize=64)
def _class_starts(source: str) -> Dict[str, int]:
    """Each class's qualified name in ``source`` -> the 0-based line where ``inspect`` says it starts (its first
    decorator, else its ``class`` line); the first definition of a name wins, as in ``inspect._ClassFinder``."""
    starts: Dict[str, int] = {}
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return starts

    def visit(node: ast.AST, stack: List[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, [*stack, child.name, "<locals>"])
            elif isinstance(child, ast.ClassDef):
                name = ".".join([*stack, child.name])
                line = child.decorator_list[0].lineno if child.decorator_list else child.lineno
                starts.setdefault(name, line - 1)
                visit(child, [*stack, child.name])
            else:
                visit(child, stack)

    visit(tree, [])
    return starts
