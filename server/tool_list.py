"""``tools/list`` as sent: the same schemas, without what only costs a model's context.

A client puts the whole tool list in front of the model on every turn, so each byte is paid
again and again. pydantic's schemas carry a ``title`` on every property (the property's
own name, capitalised), a ``default: null`` on every optional one, and spell an optional
value as ``anyOf: [X, null]``; dropping those changes no answer a schema gives: the same
arguments validate.

Output schemas are not sent: they doubled the list (a model reads what a tool answers,
not its schema), and the server still checks every result against its model before it
leaves. The results' models are in :mod:`ipfs_mcp.tools.models`.
"""

from __future__ import annotations

from typing import Any

_NULL = {"type": "null"}
_TYPED_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
                 "maxLength", "pattern")


def compact(schema: Any, *, drop: tuple[str, ...] = ()) -> Any:
    """``schema`` without titles (nor the keys ``drop``), an ``anyOf`` of one plain type and
    null written as a type list. Property names are kept whatever they are called."""
    if isinstance(schema, list):
        return [compact(item, drop=drop) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = _nullable(schema)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" or key in drop or (key == "default" and value is None):
            continue
        if key == "properties":  # a map of names, not schema keywords
            out[key] = {name: compact(sub, drop=drop) for name, sub in value.items()}
        elif key == "$defs":  # the models' docstrings are written for programmers
            out[key] = {name: _undescribed(compact(sub, drop=drop))
                        for name, sub in value.items()}
        else:
            out[key] = compact(value, drop=drop)
    return out


def _undescribed(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: v for k, v in schema.items() if k != "description"}
    return schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` written in one schema where that means the same: a plain type or
    one with bounds (bounds apply to numbers and strings only, so null still passes) as a
    type list, an enum as the enum with null (its values say the type)."""
    arms = schema.get("anyOf")
    if not isinstance(arms, list) or len(arms) != 2 or _NULL not in arms:
        return schema
    other = next(arm for arm in arms if arm != _NULL)
    if not (isinstance(other, dict) and isinstance(other.get("type"), str)
            and not set(other) & set(schema)):
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    if set(other) == {"type", "enum"}:
        return {**rest, "enum": [*other["enum"], None]}
    if set(other) <= {"type", *_TYPED_BOUNDS}:
        return {**rest, **other, "type": [other["type"], "null"]}
    return schema


def compact_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """One tool of a ``tools/list`` answer (wire names): its input schema compacted, its
    output schema left out."""
    out = {k: v for k, v in tool.items() if k != "outputSchema"}
    if isinstance(out.get("inputSchema"), dict):
        out["inputSchema"] = compact(out["inputSchema"])
    hints = out.get("annotations")
    if isinstance(hints, dict) and hints.get("readOnlyHint") is True:
        # The spec gives these meaning only for a tool that writes.
        out["annotations"] = {k: v for k, v in hints.items()
                              if k not in ("destructiveHint", "idempotentHint")}
    return out
