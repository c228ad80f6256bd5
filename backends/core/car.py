"""CAR (Content ARchive) v1 export and v1/v2 import, streaming both ways.

A CAR v1 is a varint-prefixed dag-cbor header ``{"roots": [CID...], "version": 1}``
followed by varint-prefixed sections ``CID bytes + block bytes``. Export writes blocks in
depth-first pre-order, as ``ipfs dag export`` does. Import checks every block against its
CID before storing it; a CAR v2 is read through its inner v1 payload.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import dag_cbor
from multiformats import CID, varint

from ipfs_mcp.backends.core import cbor
from ipfs_mcp.backends.core import varint as fast_varint
from ipfs_mcp.backends.core.cids import BlockVerifier, VerifiedBlock, verify_block
from ipfs_mcp.backends.core.dag import walk
from ipfs_mcp.backends.core.dagpb import cid_from_binary
from ipfs_mcp.backends.core.limits import MAX_CAR_HEADER, MAX_CAR_ROOTS, MAX_CAR_SECTION
from ipfs_mcp.backends.errors import IntegrityError, InvalidInput, TooLarge

# Kept under their old names for callers; the values and reasons live in limits.py.
MAX_SECTION = MAX_CAR_SECTION
MAX_HEADER = MAX_CAR_HEADER
_V2_PRAGMA = bytes.fromhex("0aa16776657273696f6e02")


@dataclass(frozen=True)
class CarImportReport:
    roots: tuple[CID, ...]
    blocks: int
    bytes: int


def write_car(out: BinaryIO, roots: list[CID], blocks: Iterator[tuple[CID, bytes]]) -> int:
    """Write a CAR v1; returns the number of blocks written."""
    header = dag_cbor.encode({"roots": list(roots), "version": 1})
    out.write(varint.encode(len(header)) + header)
    count = 0
    for cid, block in blocks:
        cid_bytes = bytes(cid)
        out.write(varint.encode(len(cid_bytes) + len(block)))
        out.write(cid_bytes)
        out.write(block)
        count += 1
    return count


def export_dag(out: BinaryIO, root: CID, load: Callable[[CID], bytes]) -> int:
    """``ipfs dag export``: the whole DAG under ``root`` in depth-first order."""
    return write_car(out, [root], walk(root, load))


def write_export(out: Path | BinaryIO | None, fill: Callable[[BinaryIO], object]
                 ) -> bytes | None:
    """Run ``fill(stream)`` into ``out``: a path (written atomically), a stream, or, with
    None, memory whose bytes are returned. Every backend's ``dag_export`` ends here."""
    if out is None:
        buf = io.BytesIO()
        fill(buf)
        return buf.getvalue()
    if isinstance(out, str | Path):
        target = Path(out)
        part = target.with_name(f".{target.name}.part")
        try:
            with open(part, "wb") as stream:
                fill(stream)
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
        return None
    fill(out)
    return None


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise InvalidInput("truncated CAR file")
    return data


def _read_varint(stream: BinaryIO) -> int | None:
    raw = b""
    while True:
        byte = stream.read(1)
        if not byte:
            if raw:
                raise InvalidInput("truncated CAR file (inside a varint)")
            return None
        raw += byte
        if not byte[0] & 0x80:
            try:
                return fast_varint.decode(raw, strict=True)[0]
            except InvalidInput as exc:
                raise InvalidInput(f"malformed CAR varint: {exc}") from exc
        if len(raw) >= 9:  # the tenth byte could only make a varint longer than allowed
            raise InvalidInput("malformed CAR varint: longer than 9 bytes")


def _skip(stream: BinaryIO, n: int) -> None:
    """Read past ``n`` bytes in bounded pieces (a hostile offset must not become one read)."""
    while n > 0:
        piece = stream.read(min(n, 1 << 16))
        if not piece:
            raise InvalidInput("truncated CAR file (CAR v2 padding)")
        n -= len(piece)


def _split_cid(section: bytes) -> tuple[CID, bytes]:
    try:
        if section[:2] == b"\x12\x20":
            cid_len = 34
        else:
            view = memoryview(section)
            pos = 0
            for _ in range(3):  # version, codec, hash code
                _, pos = fast_varint.decode(view, pos, strict=True)
            digest_len, pos = fast_varint.decode(view, pos, strict=True)
            cid_len = pos + digest_len
        return cid_from_binary(section[:cid_len]), section[cid_len:]
    except (ValueError, KeyError, IndexError) as exc:
        raise InvalidInput(f"malformed CID in CAR section: {exc}") from exc


def read_car(stream: BinaryIO) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    """Parse a CAR's header and return its roots and a verifying block iterator.

    Raises:
        InvalidInput: not a CAR, or truncated.
        TooLarge: a header or section over the limits, or more than MAX_CAR_ROOTS roots.
        IntegrityError: (from the iterator) a block does not match its CID.
    """
    roots, blocks = read_verified_car(stream)
    return roots, ((block.cid, block.data) for block in blocks)


def read_verified_car(stream: BinaryIO, *, verify: BlockVerifier = verify_block,
                      _inner: bool = False) -> tuple[list[CID], Iterator[VerifiedBlock]]:
    """:func:`read_car`, each block handed out as the proof of its check (made by
    ``verify``), for a store that then takes it without hashing it again.

    Raises:
        As :func:`read_car`.
    """
    first = _read_varint(stream)
    if first is None:
        raise InvalidInput("empty CAR file")
    if first == len(_V2_PRAGMA) - 1 and _read_exact(stream, first) == _V2_PRAGMA[1:]:
        if _inner:  # a v2 payload is a v1; nesting would only be a way to recurse
            raise InvalidInput("CAR v2 payload is itself a CAR v2")
        header = _read_exact(stream, 40)
        data_offset = int.from_bytes(header[16:24], "little")
        data_size = int.from_bytes(header[24:32], "little")
        if data_offset < len(_V2_PRAGMA) + 40:
            raise InvalidInput(f"CAR v2 data offset {data_offset} points into its header")
        _skip(stream, data_offset - len(_V2_PRAGMA) - 40)  # padding up to the v1 payload
        return read_verified_car(cast(BinaryIO, _Limited(stream, data_size)), verify=verify,
                                 _inner=True)
    if first > MAX_HEADER:
        raise TooLarge(f"CAR header of {first} bytes is over {MAX_HEADER}")
    try:
        header_obj = cbor.decode(_read_exact(stream, first), "CAR header")
    except IntegrityError as exc:
        raise InvalidInput(f"CAR header is not dag-cbor: {exc}") from exc
    if not isinstance(header_obj, dict) or header_obj.get("version") != 1:
        raise InvalidInput("not a CAR v1 header")
    roots = header_obj.get("roots") or []
    if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
        raise InvalidInput("CAR roots are not CIDs")
    if len(roots) > MAX_CAR_ROOTS:
        raise TooLarge(f"CAR header lists {len(roots)} roots, over the bound of "
                       f"{MAX_CAR_ROOTS}")
    # each checked to be a CID above
    return cast(list[CID], roots), _sections(stream, verify)


def _sections(stream: BinaryIO, verify: BlockVerifier) -> Iterator[VerifiedBlock]:
    while True:
        size = _read_varint(stream)
        if size is None:
            return
        if size > MAX_SECTION:
            raise TooLarge(f"CAR section of {size} bytes is over {MAX_SECTION}")
        cid, block = _split_cid(_read_exact(stream, size))
        try:
            verified = verify(cid, block)
        except IntegrityError as exc:  # a mismatch, or a hash function we cannot compute
            raise IntegrityError(f"CAR section: {exc}") from exc
        yield verified


class _Limited:
    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._stream = stream
        self._left = limit

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._left:
            n = self._left
        data = self._stream.read(n)
        self._left -= len(data)
        return data
