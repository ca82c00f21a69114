"""What each stream reads, as plain data: its name, BILL path, primary key, cursor and fixed query parameters.

The stream classes in ``source_bill.streams`` (``STREAM_CLASSES``) are the one place these facts are written.
Everything else that needs the list of streams (the BILL emulator in integration_tests/bill_emulator/, the
schema generator tools/generate_schemas.py, the plain reader benchmarks/plain_reader.py and the tests) reads
it from here, so adding a stream class is the whole change.

No HTTP and no config: the facts are read from the classes, through an instance made without running its
constructor (``name`` and a classification's ``object_path`` are properties, computed from the class alone).

    >>> from source_bill.declarations import declaration
    >>> declaration("chart_of_accounts").path
    'classifications/chart-of-accounts'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Dict, Mapping, Optional, Tuple

from .streams import STREAM_CLASSES


@dataclass(frozen=True)
class StreamDeclaration:
    """One stream: ``GET /v3/<path>?<extra_params>``, records keyed by ``primary_key``, ordered by ``cursor_field``."""

    name: str
    path: str  # under /v3/, without a leading slash
    primary_key: Tuple[str, ...]  # one field, or several for a composite key
    cursor_field: Optional[str]  # None: no cursor, full refresh only
    extra_params: Mapping[str, str] = field(default_factory=dict)

    @property
    def incremental(self) -> bool:
        return self.cursor_field is not None

    def key_of(self, record: Mapping[str, Any]) -> Any:
        """The record's primary key: the value of a one-field key, else a tuple of the values."""
        if len(self.primary_key) == 1:
            return record[self.primary_key[0]]
        return tuple(record[name] for name in self.primary_key)


def _fields(value: Any) -> Tuple[str, ...]:
    """A CDK primary key or cursor field (a name, a list of names, or nested lists for nested fields) as names."""
    if isinstance(value, str):
        return (value,)
    names = []
    for item in value or ():
        if not isinstance(item, str):
            raise TypeError(f"nested key or cursor fields are not supported here: {value!r}")
        names.append(item)
    return tuple(names)


def _declare(stream_class: type[Any]) -> StreamDeclaration:
    bare = object.__new__(stream_class)  # attributes and properties only: no constructor, no client
    name: str = bare.name
    path: str = getattr(bare, "object_path", "") or name.replace("_", "-")
    cursor = _fields(getattr(bare, "cursor_field", ()))
    if len(cursor) > 1:
        raise TypeError(f"{name}: a cursor of several fields is not supported: {cursor!r}")
    extra: Dict[str, str] = dict(getattr(bare, "extra_params", {}) or {})
    return StreamDeclaration(
        name=name,
        path=path.strip("/"),
        primary_key=_fields(bare.primary_key),
        cursor_field=cursor[0] if cursor else None,
        extra_params=extra,
    )


@lru_cache(maxsize=1)
def declarations() -> Tuple[StreamDeclaration, ...]:
    """Every stream the connector offers, in the order of ``STREAM_CLASSES`` (discover's order)."""
    return tuple(_declare(stream_class) for stream_class in STREAM_CLASSES)


def declaration(name: str) -> StreamDeclaration:
    """The stream called ``name``; KeyError if there is none."""
    for declared in declarations():
        if declared.name == name:
            return declared
    raise KeyError(name)


def stream_names() -> Tuple[str, ...]:
    return tuple(declared.name for declared in declarations())


def shape_stream_names() -> Tuple[str, ...]:
    """The streams of other answer shapes (one object, a bare array, another records key), in discover's order."""
    from .more_streams import MORE_STREAM_CLASSES

    return tuple(object.__new__(stream_class).name for stream_class in MORE_STREAM_CLASSES)


def child_streams() -> Dict[str, Tuple[str, str]]:
    """Each child stream's parent stream and the parent's id field in each child row, in discover's order."""
    from .children import CHILD_STREAM_CLASSES

    return {
        object.__new__(child).name: (object.__new__(child.parent_class).name, child.parent_key)
        for child in CHILD_STREAM_CLASSES
    }
