"""dag-json decoding of bytes a content provider chose, bounded before the decoder runs.

The decoding is the ``dag-json`` library's (links ``{"/": "<cid>"}`` and bytes
``{"/": {"bytes": "<base64>"}}`` become CIDs and bytes). Two things are added around it,
because it does not do them:

- nesting is bounded first (an iterative scan of the brackets outside strings): both the
  standard ``json`` parser and the library's conversion recurse, so a value nested a few
  thousand deep would raise ``RecursionError``;
- a map whose ``/`` key has siblings is a map, not a link: the library looks at the first
  key only, so ``{"/": "<cid>", "x": 1}`` would silently lose ``x``. The spec reserves such
  maps; they are refused here rather than read two ways.

Whatever the library still raises leaves as :class:`~ipfs_mcp.backends.errors.IntegrityError`.
"""

from __future__ import annotations

import json

import dag_json  # type: ignore[import-untyped]

from ipfs_mcp.backends.errors import IntegrityError

from .cbor import MAX_NESTING

__all__ = ["decode", "encode_pretty"]

_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def _check_nesting(raw: bytes, what: str) -> None:
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > MAX_NESTING:
                raise IntegrityError(f"invalid {what}: nested deeper than {MAX_NESTING}")
        elif byte in _CLOSE:
            depth -= 1


def _reserved_maps(value: object) -> bool:
    """Whether a map holds ``/`` beside other keys anywhere in ``value`` (iteratively)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "/" in item and len(item) > 1:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def decode(data: bytes, what: str = "dag-json block") -> object:
    """The IPLD value encoded in ``data`` (CIDs for links, bytes for bytes).

    Raises:
        IntegrityError: not dag-json, nested deeper than MAX_NESTING, or a reserved map
            (``/`` beside other keys); the message names ``what``.
    """
    _check_nesting(data, what)
    try:
        parsed = json.loads(data.decode("utf-8"))
        if _reserved_maps(parsed):
            raise IntegrityError(f"invalid {what}: a map holds '/' beside other keys")
        return dag_json.decode(parsed)
    # multiformats raises IndexError too: a link whose text decodes to no bytes ({"/": "0"}).
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        reason = next(iter(str(exc).splitlines()), "") or type(exc).__name__
        raise IntegrityError(f"invalid {what}: {reason}") from exc


def encode_pretty(value: object) -> str:
    """``value`` (as dag-cbor or dag-json decode it) as indented dag-json text, for people.

    Raises:
        IntegrityError: a value dag-json cannot hold (a float that is not finite).
    """
    try:
        canonical = dag_json.encode(value)
    except (ValueError, TypeError) as exc:
        raise IntegrityError(f"cannot show this value as dag-json: {exc}") from exc
    return json.dumps(json.loads(canonical), indent=2, ensure_ascii=False)

