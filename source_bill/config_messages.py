"""Config errors that name the key: the spec's JSON-schema check, in words a person can act on.

The CDK checks the config against ``spec.json`` before the connector sees it, and answers in
jsonschema's words (``'01EMULATOR0001' does not match '^008[0-9A-Za-z]+$'``, ``**** is not of type
'string'``), which leave the user guessing which key is wrong. :func:`problems` runs the same check
and says, for each problem, the key's path (``organization_id``, ``credentials.password``), its title,
what it must be, and the key's description from the spec, which says where to find the right value.
Everything comes from the spec and the error's path: a new key, or keys nested in a ``oneOf`` choice,
need no change here. The value of a key marked ``airbyte_secret`` is never quoted.

:class:`BillEntrypoint` is the CDK's entrypoint with this check in place of the CDK's; ``run.py``
launches it, so ``check`` still answers with a FAILED connection status and ``discover``/``read`` with a
``config_error`` trace, only the words change.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from typing import Any, DefaultDict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.logger import is_platform_debug_log_enabled
from airbyte_cdk.models import AirbyteMessage, ConnectorSpecification
from airbyte_cdk.sources.connector_state_manager import HashableStreamDescriptor
from airbyte_cdk.sources.utils.schema_helpers import check_config_against_spec_or_exit, split_config
from airbyte_cdk.utils.constants import ENV_REQUEST_CACHE_PATH
from jsonschema import ValidationError
from jsonschema.validators import validator_for

from .config import config_error
from .messages import RecordBatch

_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a JSON object",
    "array": "a list",
    "null": "empty",
}


def problems(config: Any, schema: Mapping[str, Any]) -> List[str]:
    """One sentence per problem of ``config`` against the JSON schema ``schema``, in the spec's key order."""
    validator = validator_for(schema)(schema)
    found: List[str] = []
    for error in sorted(validator.iter_errors(config), key=lambda e: _order(schema, e)):
        for sentence in _describe(error):
            if sentence not in found:
                found.append(sentence)
    return found


def explain(config: Any, schema: Mapping[str, Any]) -> Optional[str]:
    """All problems as one message, or None when the config is valid."""
    found = problems(config, schema)
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    return f"The config has {len(found)} problems. " + " ".join(f"({i}) {p}" for i, p in enumerate(found, 1))


# --- one validation error -> sentences ------------------------------------------------------------------
def _describe(error: ValidationError) -> List[str]:
    path = list(error.absolute_path)
    node: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    kind = error.validator
    if kind == "required":
        properties = node.get("properties", {})
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        return [
            f"{_name([*path, key], properties.get(key, {}))} is missing.{_about(properties.get(key, {}))}"
            for key in error.validator_value
            if key not in instance
        ]
    if kind in ("oneOf", "anyOf"):
        return _describe_choice(error, path, node)
    if kind == "additionalProperties" and isinstance(error.instance, Mapping):
        known = list(node.get("properties", {}))
        unknown = [k for k in error.instance if k not in known]
        return [
            f"{_name(path, node) if path else 'The config'} has unknown keys {', '.join(unknown)}; "
            f"the keys are {', '.join(known)}."
        ]
    shown = _shown(error.instance, node, with_kind=kind == "type")
    return [f"{_name(path, node)} {_must(kind, node, error)}, not {shown}.{_about(node)}"]


def _describe_choice(error: ValidationError, path: List[Any], node: Mapping[str, Any]) -> List[str]:
    """A ``oneOf`` (e.g. how to sign in): the problems of the option the config chose, else how to choose."""
    options: Sequence[Mapping[str, Any]] = node.get(str(error.validator), [])
    instance = error.instance
    if not isinstance(instance, Mapping):
        return [f"{_name(path, node)} must be {_TYPE_WORDS['object']}, not {_shown(instance, node)}.{_about(node)}"]
    discriminators = _discriminators(options)
    for index, option in enumerate(options):
        consts = {key: option["properties"][key]["const"] for key in discriminators if key in option["properties"]}
        if consts and all(instance.get(key) == value for key, value in consts.items()):
            chosen = [e for e in error.context or [] if e.relative_schema_path and e.relative_schema_path[0] == index]
            return [sentence for sub in chosen for sentence in _describe(sub)] or [
                f"{_name(path, node)} matches more than one option; {_options(options)}."
            ]
    if discriminators:
        key = discriminators[0]
        choices = ", ".join(
            f"{option['properties'][key]['const']!r} ({option.get('title', '')})".replace(" ()", "")
            for option in options
            if key in option.get("properties", {})
        )
        return [
            f"{_name([*path, key], {})} must be one of {choices}, not {_shown(instance.get(key), {})}.{_about(node)}"
        ]
    return [f"{_name(path, node)} matches none of its options; {_options(options)}.{_about(node)}"]


def _discriminators(options: Sequence[Mapping[str, Any]]) -> List[str]:
    """Keys every option fixes with ``const`` (``auth_type``): they say which option a config means."""
    keys: Optional[List[str]] = None
    for option in options:
        fixed = [k for k, v in option.get("properties", {}).items() if isinstance(v, Mapping) and "const" in v]
        keys = fixed if keys is None else [k for k in keys if k in fixed]
    return keys or []


def _options(options: Sequence[Mapping[str, Any]]) -> str:
    titles = [str(o.get("title")) for o in options if o.get("title")]
    return f"choose one of: {', '.join(titles)}" if titles else "see the spec for the accepted forms"


def _must(kind: Any, node: Mapping[str, Any], error: ValidationError) -> str:
    expected = node.get("type")
    if kind == "type":
        types = expected if isinstance(expected, list) else [expected]
        return "must be " + " or ".join(_TYPE_WORDS.get(str(t), str(t)) for t in types) + _bounds(node)
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"must be {_TYPE_WORDS.get(str(expected), 'a number')}{_bounds(node)}"
    if kind == "enum":
        return "must be one of " + ", ".join(repr(v) for v in node.get("enum", []))
    if kind == "const":
        return f"must be {node.get('const')!r}"
    if kind == "pattern":
        shape = node.get("pattern_descriptor") or f"the pattern {node.get('pattern')}"
        example = (node.get("examples") or [None])[0]
        return f"must look like {shape}" + (f" (e.g. {example})" if example is not None else "")
    if kind == "minLength" and node.get("minLength") == 1:
        return "must not be empty"
    if kind in ("minLength", "maxLength"):
        return f"must be {_length(node)}"
    if kind == "format":
        return f"must be a {node.get('format')}"
    return f"is not valid ({error.validator} {error.validator_value!r})"


def _bounds(node: Mapping[str, Any]) -> str:
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" of at least {low}"
    if high is not None:
        return f" of at most {high}"
    return ""


def _length(node: Mapping[str, Any]) -> str:
    low, high = node.get("minLength"), node.get("maxLength")
    if low is not None and high is not None:
        return f"{low} to {high} characters long"
    return f"at least {low} characters long" if low is not None else f"at most {high} characters long"


def _name(path: Iterable[Any], node: Mapping[str, Any]) -> str:
    dotted = ".".join(str(p) for p in path) or "The config"
    title = node.get("title") if isinstance(node, Mapping) else None
    return f"{dotted} ({title})" if title else dotted


def _about(node: Mapping[str, Any]) -> str:
    description = node.get("description") if isinstance(node, Mapping) else None
    return f" {description}" if description else ""


def _shown(value: Any, node: Mapping[str, Any], with_kind: bool = True) -> str:
    """The value as the user wrote it (and its kind), or only its kind for a secret."""
    kind = {str: "text", bool: "true/false", int: "a number", float: "a number", dict: "an object", list: "a list"}
    what = "null" if value is None else kind.get(type(value), type(value).__name__)
    if node.get("airbyte_secret"):
        return f"{what} (hidden: a secret)"
    if value is None or isinstance(value, (dict, list)):
        return what
    return f"{value!r} ({what})" if with_kind else repr(value)


def _order(schema: Mapping[str, Any], error: ValidationError) -> List[Any]:
    """Sort by the spec's ``order`` of the top-level key, then by path."""
    path = list(error.absolute_path)
    top = path[0] if path else None
    spec_order = schema.get("properties", {}).get(top, {}).get("order", 0) if top is not None else -1
    return [spec_order, [str(p) for p in path]]


# --- the entrypoint -------------------------------------------------------------------------------------
class BillEntrypoint(AirbyteEntrypoint):
    """The CDK's entrypoint, with config errors that name the key (see :func:`problems`), and a ``read`` that
    writes a page of records at once (``source_bill.messages``)."""

    def run(self, parsed_args: argparse.Namespace) -> Iterable[str]:
        """What the CDK's run() yields: one string per message, a page of records as one string of lines."""
        for item in self.run_lines(parsed_args):
            yield item.decode() if isinstance(item, bytes) else item

    def run_lines(self, parsed_args: argparse.Namespace) -> Iterator[Union[str, bytes]]:
        """``run``, with a page of records as UTF-8 bytes (lines), as ``run.py`` writes them: no decoding and
        encoding again of the bulk of the output."""
        if getattr(parsed_args, "command", None) != "read":
            yield from super().run(parsed_args)
            return
        # The CDK's run() writes read messages through AirbyteEntrypoint.airbyte_message_to_string, named by its
        # class, so it has no public way to write a RecordBatch; this is its read branch, writing batches as lines.
        if getattr(parsed_args, "debug", False) or is_platform_debug_log_enabled():
            self.logger.setLevel(logging.DEBUG)
            self.logger.debug("Debug logs enabled")
        else:
            self.logger.setLevel(logging.INFO)
        source_spec = self.source.spec(self.logger)
        source: Any = self.source  # SourceBill (or a test's source without batches)
        batches = hasattr(source, "batch_records")
        if batches:
            source.batch_records = True
        try:
            with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as temp_dir:
                os.environ[ENV_REQUEST_CACHE_PATH] = temp_dir
                raw_config = self.source.read_config(parsed_args.config)
                config = self.source.configure(raw_config, temp_dir)
                yield from map(self.airbyte_message_to_string, self._emit_queued_messages(self.source))
                catalog = self.source.read_catalog(parsed_args.catalog)
                state = self.source.read_state(parsed_args.state)
                for message in self.read(source_spec, config, catalog, state):
                    if isinstance(message, RecordBatch):
                        if message.records:
                            yield message.lines()
                    else:
                        yield self.airbyte_message_to_string(message)
        finally:
            if batches:
                source.batch_records = False  # for this read only: another entrypoint may run it next
            yield from map(self.airbyte_message_to_string, self._emit_queued_messages(self.source))

    @staticmethod
    def handle_record_counts(
        message: AirbyteMessage, stream_message_count: DefaultDict[HashableStreamDescriptor, float]
    ) -> AirbyteMessage:
        if isinstance(message, RecordBatch):
            stream_message_count[HashableStreamDescriptor(name=message.stream, namespace=None)] += float(
                len(message.records)
            )
            return message
        return AirbyteEntrypoint.handle_record_counts(message, stream_message_count)

    @staticmethod
    def validate_connection(source_spec: ConnectorSpecification, config: Mapping[str, Any]) -> None:
        connector_config, _ = split_config(config)
        message = explain(dict(connector_config), source_spec.connectionSpecification)
        if message:
            raise config_error(message)
        check_config_against_spec_or_exit(connector_config, source_spec)
