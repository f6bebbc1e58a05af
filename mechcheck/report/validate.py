"""Check a results.json against results.schema.json, with the first problem as one line.

Why hand-written: jsonschema is a test dependency only, and its messages are paragraphs; a
hand-edited or damaged shard given to `mechcheck merge` or `mechcheck diff` must be one line
naming the record and the field. This reads the schema file itself (the subset of JSON Schema it
uses: type, const, enum, required, properties, additionalProperties, items, minItems, maxItems,
minimum, minLength, pattern, uniqueItems, oneOf, $ref), so the two never disagree; the tests also
validate the written files with jsonschema.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path

SCHEMA_FILE = Path(__file__).with_name("results.schema.json")
_TYPES = {"object": dict, "array": list, "string": str, "null": type(None), "boolean": bool}


class SchemaError(ValueError):
    """Where a document first departs from the schema (one line)."""


@cache
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def strict_json(text: str):
    """json.loads that refuses NaN / Infinity (not JSON; mechcheck writes them as null)."""
    def refuse(name):
        raise ValueError(f"{name} is not strict JSON (mechcheck writes non-finite numbers as null)")
    return json.loads(text, parse_constant=refuse)


def _is(value, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, _TYPES[kind])


def _short(value) -> str:
    return repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."


def check(value, node: dict | None = None, where: str = "") -> None:
    """SchemaError naming `where` (e.g. claims[3].status) at the first departure from `node`."""
    node = schema() if node is None else node
    at = where or "the document"
    if "$ref" in node:
        node = schema()["$defs"][node["$ref"].rsplit("/", 1)[1]]
    if "oneOf" in node:
        errors = []
        for option in node["oneOf"]:
            try:
                check(value, option, where)
                return
            except SchemaError as exc:
                errors.append(str(exc))
        raise SchemaError(max(errors, key=len) if value is not None else errors[0])
    kinds = node.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            raise SchemaError(f"{at} is {_short(value)}, expected {' or '.join(kinds)}")
    if "const" in node and value != node["const"]:
        raise SchemaError(f"{at} is {_short(value)}, expected {node['const']!r}")
    if "enum" in node and value not in node["enum"]:
        raise SchemaError(f"{at} is {_short(value)}, expected one of {', '.join(map(str, node['enum']))}")
    if isinstance(value, dict):
        for key in node.get("required", []):
            if key not in value:
                raise SchemaError(f"{at} has no {key!r}")
        props = node.get("properties", {})
        extra = node.get("additionalProperties", True)
        for key, v in value.items():
            sub = f"{where}.{key}" if where else key
            if key in props:
                check(v, props[key], sub)
            elif extra is False:
                raise SchemaError(f"{at} has an unknown field {key!r}")
            elif isinstance(extra, dict):
                check(v, extra, sub)
    if isinstance(value, list):
        if len(value) < node.get("minItems", 0) or len(value) > node.get("maxItems", math.inf):
            raise SchemaError(f"{at} has {len(value)} items")
        if node.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            raise SchemaError(f"{at} repeats an item")
        if "items" in node:
            for i, v in enumerate(value):
                check(v, node["items"], f"{where}[{i}]")
    if _is(value, "number") and value < node.get("minimum", -math.inf):
        raise SchemaError(f"{at} is {value}, below {node['minimum']}")
    if isinstance(value, str):
        if len(value) < node.get("minLength", 0):
            raise SchemaError(f"{at} is empty")
        if "pattern" in node and not re.search(node["pattern"], value):
            raise SchemaError(f"{at} is {_short(value)}, not of the form {node['pattern']}")


def check_document(doc) -> None:
    """A whole results.json; a record's problem names its nodeid where it has one."""
    if not isinstance(doc, dict):
        raise SchemaError(f"not a JSON object but {type(doc).__name__}")
    claims = doc.get("claims")
    if isinstance(claims, list):
        for i, r in enumerate(claims):
            name = f"claims[{i}]" + (f" ({r['nodeid']})" if isinstance(r, dict) and isinstance(r.get("nodeid"), str) else "")
            if not isinstance(r, dict):
                raise SchemaError(f"{name} is {_short(r)}, expected a claim record (object)")
            try:
                check(r, {"$ref": "#/$defs/claim"}, "")
            except SchemaError as exc:
                raise SchemaError(f"{name}: {str(exc).replace('the document', 'the record')}") from None
    check(doc)
