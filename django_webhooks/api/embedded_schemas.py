"""Catalog JSON Schemas made fit to live inside an OpenAPI 3.1 document.

An OpenAPI 3.1 Schema Object is JSON Schema 2020-12, but a catalog schema is written for a
document of its own: it may name another draft in ``$schema`` (``validator_for`` honours it, so
draft-07 ``definitions``, tuple ``items`` and ``dependencies`` work in the catalog), carry an
``$id`` that would become the base of every reference under it, and point into itself with
``#/definitions/...``, which inside the OpenAPI document would point at the document's root.
:func:`embedded_schema` rewrites one such schema for the place it is put at: dialect keywords
renamed to their 2020-12 spelling, ``$schema``/``$id`` dropped, local references rebased on that
place. Keywords are only rewritten where a schema is expected, never inside ``enum``, ``const``,
``default`` or ``examples`` (data), nor in the names of ``properties``.

:func:`schema_from_example` describes data by an example, for types the catalog gives no schema.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import quote, unquote

from jsonschema.exceptions import SchemaError
from jsonschema.validators import (
    Draft3Validator,
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
    validator_for,
)

#: Keywords whose value is a schema.
SCHEMA_KEYWORDS = frozenset(
    {
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "contentSchema",
        "items",
        "additionalItems",
    }
)
#: Keywords whose value maps names to schemas.
SCHEMA_MAP_KEYWORDS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
#: Keywords whose value is a list of schemas.
SCHEMA_LIST_KEYWORDS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
#: Keywords that only make sense in a document of its own (its dialect and base URI).
DOCUMENT_KEYWORDS = frozenset({"$schema", "$id", "$recursiveAnchor"})
#: Dialects before 2020-12: tuple ``items``/``additionalItems``; before 2019-09 also ``dependencies``
#: and ``$ref`` siblings being ignored.
BEFORE_2020_12 = (Draft3Validator, Draft4Validator, Draft6Validator, Draft7Validator, Draft201909Validator)
BEFORE_2019_09 = (Draft3Validator, Draft4Validator, Draft6Validator, Draft7Validator)
#: Annotations kept next to a ``$ref`` of a dialect that ignores its siblings.
REF_ANNOTATIONS = ("title", "description")

Path = tuple[str, ...]


class EmbeddedSchema(NamedTuple):
    """A catalog schema as it goes into the document, and why it could not go in as written ("" when it could)."""

    schema: dict[str, Any] | bool
    problem: str = ""


def embedded_schema(schema: dict[str, Any] | bool, pointer: str) -> EmbeddedSchema:
    """``schema`` rewritten as a JSON Schema 2020-12 to be placed at ``pointer`` (``#/components/schemas/X``).

    References into the schema itself (``#``, ``#/definitions/address``, ``#/properties/a``, or the
    same with the schema's own ``$id`` in front) are rebased on ``pointer`` and follow renamed
    keywords; other references (anchors, other documents) are kept as written. When the result is
    still no valid 2020-12 schema (a draft 3 schema, say), it is replaced by an empty schema whose
    description says why, and ``problem`` tells it.
    """
    if isinstance(schema, bool):
        return EmbeddedSchema(schema)
    dialect = validator_for(schema, default=Draft202012Validator)
    rewriter = _Rewriter(dialect, own_id=schema.get("$id") if isinstance(schema.get("$id"), str) else None)
    result = rewriter.rewrite(schema, (), ())
    rewriter.rebase_references(pointer)
    try:
        Draft202012Validator.check_schema(result)
    except SchemaError as exc:
        problem = f"its JSON Schema cannot be shown as OpenAPI 3.1 (JSON Schema 2020-12): {exc.message}"
        return EmbeddedSchema({"description": f"The catalog's schema is not shown: {problem}."}, problem)
    return EmbeddedSchema(result)


class _Rewriter:
    """One schema's rewrite: the new tree, where each old schema location went, and the references to rebase."""

    def __init__(self, dialect: Any, own_id: str | None) -> None:
        self.dialect = dialect
        self.own_id = own_id.split("#", 1)[0] if own_id else None
        #: old path of every schema -> its new path
        self.moved: dict[Path, Path] = {}
        #: the rewritten schemas holding a ``$ref`` to rebase
        self.references: list[dict[str, Any]] = []

    def rewrite(self, node: Any, old: Path, new: Path) -> Any:
        self.moved[old] = new
        if not isinstance(node, dict):
            return node
        if "$ref" in node and self.dialect in BEFORE_2019_09:
            node = {key: node[key] for key in ("$ref", *REF_ANNOTATIONS) if key in node}
        if self.dialect in (Draft3Validator, Draft4Validator):
            node = self._draft4_bounds(node)
        tuple_items = isinstance(node.get("items"), list) and self.dialect in BEFORE_2020_12
        renamed = {
            "definitions": "definitions" if "$defs" in node else "$defs",
            "items": "prefixItems" if tuple_items else "items",
            "additionalItems": "items",
        }
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in DOCUMENT_KEYWORDS or (key == "id" and self.dialect in (Draft3Validator, Draft4Validator)):
                continue
            if key == "additionalItems" and not tuple_items:
                continue  # ignored next to a single "items" schema, and not a 2020-12 keyword
            if key == "dependencies" and isinstance(value, dict):
                self._dependencies(value, old, new, out)
                continue
            if key == "$recursiveRef":
                key = "$ref"
            target = renamed.get(key, key)
            out[target] = self._rewrite_keyword(key, value, (*old, key), (*new, target))
        if "$ref" in out:
            self.references.append(out)
        return out

    def _rewrite_keyword(self, key: str, value: Any, old: Path, new: Path) -> Any:
        if key in SCHEMA_MAP_KEYWORDS and isinstance(value, dict):
            return {name: self.rewrite(item, (*old, name), (*new, name)) for name, item in value.items()}
        if (key in SCHEMA_LIST_KEYWORDS or key == "items") and isinstance(value, list):
            return [self.rewrite(item, (*old, str(index)), (*new, str(index))) for index, item in enumerate(value)]
        if key in SCHEMA_KEYWORDS:
            return self.rewrite(value, old, new)
        return value

    @staticmethod
    def _draft4_bounds(node: dict[str, Any]) -> dict[str, Any]:
        """Draft 4's ``exclusiveMaximum: true`` qualifies ``maximum``; since draft 6 it is the bound itself."""
        node = dict(node)
        for key, bound in (("exclusiveMaximum", "maximum"), ("exclusiveMinimum", "minimum")):
            if isinstance(node.get(key), bool) and node.pop(key) and bound in node:
                node[key] = node.pop(bound)
        return node

    def _dependencies(self, value: dict[str, Any], old: Path, new: Path, out: dict[str, Any]) -> None:
        """``dependencies`` (before 2019-09): lists of names became ``dependentRequired``, schemas ``dependentSchemas``."""
        for name, dependency in value.items():
            if isinstance(dependency, list):
                out.setdefault("dependentRequired", {})[name] = dependency
            else:
                target = (*new, "dependentSchemas", name)
                out.setdefault("dependentSchemas", {})[name] = self.rewrite(
                    dependency, (*old, "dependencies", name), target
                )

    def rebase_references(self, pointer: str) -> None:
        base = pointer.removeprefix("#")
        for holder in self.references:
            reference = holder["$ref"]
            if not isinstance(reference, str):
                continue
            if self.own_id and reference.startswith(self.own_id + "#"):
                reference = reference[len(self.own_id) :]
            if reference == "#" or reference.startswith("#/"):
                holder["$ref"] = "#" + base + _encode(self._moved_path(_decode(reference[1:])))

    def _moved_path(self, path: Path) -> Path:
        """Where ``path`` (a location in the schema as written) is in the rewritten schema."""
        for length in range(len(path), -1, -1):
            moved = self.moved.get(path[:length])
            if moved is not None:
                return (*moved, *path[length:])
        return path


def _decode(fragment: str) -> Path:
    if not fragment:
        return ()
    return tuple(unquote(token).replace("~1", "/").replace("~0", "~") for token in fragment.split("/")[1:])


def _encode(path: Path) -> str:
    return "".join("/" + quote(token.replace("~", "~0").replace("/", "~1"), safe="$~!&'()*+,;=:@-._") for token in path)


#: JSON Schema type of each JSON value type from the json module (bool before int: a bool is an int).
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def schema_from_example(example: Any) -> dict[str, Any]:
    """A schema of the shape of ``example``: each value's type, objects' properties, a list's first item.

    Nothing is required and nothing else refused: one example does not tell what may be left out.
    """
    if example is None:
        return {"type": "null"}
    kind = next((name for python_type, name in _JSON_TYPES if isinstance(example, python_type)), None)
    if kind is None:
        return {}
    schema: dict[str, Any] = {"type": kind}
    if isinstance(example, dict):
        schema["properties"] = {str(key): schema_from_example(value) for key, value in example.items()}
    elif isinstance(example, list) and example:
        schema["items"] = schema_from_example(example[0])
    return schema
