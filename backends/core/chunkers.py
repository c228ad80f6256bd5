"""Kubo's chunkers (``--chunker``): ``size-N``, ``rabin[-avg | -min-avg-max]`` and ``buzhash``.

Each splits a byte stream exactly where boxo's ``chunker`` package (Kubo 0.43) does, so the
leaves, and with them every CID, are the same:

* ``size-N``: full reads of N bytes (1..2 MiB - 256, boxo's ``ChunkSizeLimit``).
* ``rabin``: a Rabin fingerprint over a 16-byte window with the polynomial
  ``0x3DF305DFB2A805`` (boxo's ``IpfsRabinPoly``, 17437180132763653), as implemented by
  ``github.com/whyrusleeping/chunker`` (restic's chunker): each chunk skips its first
  ``min - 16`` bytes unhashed, starts the window from the state that ``reset`` leaves (one
  byte 1 slid in), and is cut after the byte where ``digest & (2^floor(log2 avg) - 1) == 0``
  once it holds at least ``min`` bytes, or at ``max``. ``rabin`` alone is ``rabin-262144``;
  ``rabin-AVG`` means ``min = AVG // 3``, ``max = AVG + AVG // 2``.
* ``buzhash``: boxo's ``chunker/buzhash.go``: a 32-byte cyclic-polynomial window over the
  256-entry table ``bytehash`` below, copied value for value from that file (boxo v0.43.0,
  ``chunker/buzhash.go``); chunks are 128 KiB..512 KiB, cut where ``state & (2^17 - 1) == 0``.

No Python library implements these two hashes with Kubo's parameters and cut rules (the
``fastcdc`` and ``pyrabin`` packages use other windows, tables and cut points), so they are
written here. The rolling loops run over ``bytes`` with precomputed tables; they are the
slow path (5-8 MB/s on one core here, against GB/s for ``size-N``; the bytes each chunk
skips before its minimum are not hashed at all) and only run when a user asks for a
content-defined chunker.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from typing import BinaryIO, Protocol

from ipfs_mcp.backends.errors import InvalidInput

# boxo chunker/parse.go: BlockSizeLimit (2 MiB) minus ChunkOverheadBudget (256).
CHUNK_SIZE_LIMIT = 2 * 1024 * 1024 - 256
DEFAULT_SIZE = 262144  # boxo's DefaultBlockSize, also the average of a bare ``rabin``

RABIN_POLYNOMIAL = 17437180132763653  # boxo chunker/rabin.go: IpfsRabinPoly
_RABIN_WINDOW = 16  # whyrusleeping/chunker: windowSize
_RABIN_READ = 512 * 1024  # whyrusleeping/chunker: chunkerBufSize (reads of this size)

_BUZ_MIN = 128 << 10  # boxo chunker/buzhash.go: buzMin, buzMax, buzMask
_BUZ_MAX = 512 << 10
_BUZ_MASK = (1 << 17) - 1
_BUZ_WINDOW = 32

# boxo v0.43.0, chunker/buzhash.go, ``var bytehash = [256]uint32{...}``.
_BUZ_TABLE: tuple[int, ...] = (
    0x6236e7d5, 0x10279b0b, 0x72818182, 0xdc526514, 0x2fd41e3d, 0x777ef8c8,
    0x83ee5285, 0x2c8f3637, 0x2f049c1a, 0x57df9791, 0x9207151f, 0x9b544818,
    0x74eef658, 0x2028ca60, 0x0271d91a, 0x27ae587e, 0xecf9fa5f, 0x236e71cd,
    0xf43a8a2e, 0x0bb13380, 0x9e57912c, 0x89a26cdb, 0x9fcf3d71, 0xa86da6f1,
    0x9c49f376, 0x346aecc7, 0xf094a9ee, 0xea99e9cb, 0xb01713c6, 0x088acffb,
    0x2960a0fb, 0x344a626c, 0x7ff22a46, 0x6d7a1aa5, 0x6a714916, 0x41d454ca,
    0x8325b830, 0x0b65f563, 0x447fecca, 0xf9d0ea5e, 0xc1d9d3d4, 0xcb5ec574,
    0x55aae902, 0x86edc0e7, 0x0d3a9e33, 0xe70dc1e1, 0xe3c5f639, 0x9b43140a,
    0xc6490ac5, 0x5e4030fb, 0x8e976dd5, 0xa87468ea, 0xf830ef6f, 0xcc1ed5a5,
    0x611f4e78, 0xddd11905, 0xf2613904, 0x566c67b9, 0x905a5ccc, 0x7b37b3a4,
    0x4b53898a, 0x6b8fd29d, 0xaad81575, 0x511be414, 0x3cfac1e7, 0x8029a179,
    0xd40efeda, 0x07380e02, 0xdc9beffd, 0x2d049082, 0x99bc7831, 0xff5002a8,
    0x21ce7646, 0x01cd049b, 0x0f43994f, 0xc3c6c5a5, 0xbbda5f50, 0x0ec15ec7,
    0x9adb19b6, 0x0c1e80b9, 0xb9b52968, 0xae162419, 0x2542b405, 0x91a42e9d,
    0x6be0f668, 0x6ed7a6b9, 0xbc2777b4, 0xe162ce56, 0x4266aad5, 0x60fdb704,
    0x66f832a5, 0x9595f6ca, 0xfee83ced, 0x55228d99, 0x12bf0e28, 0x66896459,
    0x0789afda, 0x0282baa8, 0x2367a343, 0x591491b0, 0x2ff1a4b1, 0x410739b6,
    0x9b7055a0, 0x2e0eb229, 0x24fc8252, 0x3327d3df, 0xb0782669, 0x1c62e069,
    0x7f503101, 0xf50593ae, 0xd9eb275d, 0xe00eb678, 0x5917ccde, 0x97b9660a,
    0xdd06202d, 0xed229e22, 0xa9c735bf, 0xd6316fe6, 0x6fc72e4c, 0x0206dfa2,
    0xd6b15c5a, 0x69d87b49, 0x09c97745, 0x13445d61, 0x35a975aa, 0x859aa9b9,
    0x65380013, 0xd1fb6391, 0xc29255fd, 0x784a3b91, 0xb9e74c26, 0x63ce4d40,
    0xc07cbe9e, 0xe6e4529e, 0x0fb3632f, 0x9438d9c9, 0x682f94a8, 0xf8fd4611,
    0x257ec1ed, 0x475ce3d6, 0x60ee2db1, 0x2afab002, 0x2b9e4878, 0x86b340de,
    0x1482fdca, 0xfe41b3bf, 0xd4a412b0, 0xe09db98c, 0xc1af5d53, 0x7e55e25f,
    0xd3346b38, 0xb7a12cbd, 0x9c6827ba, 0x71f78bee, 0x8c3a0f52, 0x150491b0,
    0xf26de912, 0x233e3a4e, 0xd309ebba, 0xa0a9e0ff, 0xca2b5921, 0xeeb9893c,
    0x33829e88, 0x9870cc2a, 0x23c4b9d0, 0xeba32ea3, 0xbdac4d22, 0x3bc8c44c,
    0x1e8d0397, 0xf9327735, 0x783b009f, 0x0eb83742, 0x2621dc71, 0xed017d03,
    0x5c760aa1, 0x5a69814b, 0x96e3047f, 0xa93c9cde, 0x615c86f5, 0xb4322aa5,
    0x4225534d, 0x0d2e2de3, 0xccfccc4b, 0x0bac2a57, 0xf0a06d04, 0xbc78d737,
    0xf2d1f766, 0xf5a7953c, 0xbcdfda85, 0x5213b7d5, 0xbce8a328, 0xd38f5f18,
    0xdb094244, 0xfe571253, 0x317fa7ee, 0x4a324f43, 0x3ffc39d9, 0x51b3fa8e,
    0x7a4bee9f, 0x78bbc682, 0x9f5c0350, 0x02fe286c, 0x245ab686, 0xed6bf7d7,
    0x0ac4988a, 0x3fe010fa, 0xc65fe369, 0xa45749cb, 0x2b84e537, 0xde9ff363,
    0x20540f9a, 0xaa8c9b34, 0x5bc476b3, 0x1d574bd7, 0x929100ad, 0x4721de4d,
    0x27df1b05, 0x58b18546, 0xb7e76764, 0xdf904e58, 0x97af57a1, 0xbd4dc433,
    0xa6256dfd, 0xf63998f3, 0xf1e05833, 0xe20acf26, 0xf57fd9d6, 0x90300b4d,
    0x89df4290, 0x68d01cbc, 0xcf893ee3, 0xcc42a046, 0x778e181b, 0x67265c76,
    0xe981a4c4, 0x82991da1, 0x708f7294, 0xe6e2ae62, 0xfc441870, 0x95e1b0b6,
    0x0445f825, 0x5a93b47f, 0x5e9cf4be, 0x84da71e7, 0x9d9582b0, 0x9bf835ef,
    0x591f61e2, 0x43325985, 0x5d2de32e, 0x8d8fbf0f, 0x95b30f38, 0x07ad5b6e,
    0x4e934edf, 0x3cd4990e, 0x9053e259, 0x5c41857d,
)
assert len(_BUZ_TABLE) == 256


class Chunker(Protocol):
    """Splits a stream into the chunks that become a file's leaves (never empty ones)."""

    @property
    def spec(self) -> str:
        """Kubo's ``--chunker`` spelling of this chunker."""
        ...

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]: ...


def _read_full(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at the end of the stream (Go's ``io.ReadFull``).

    A file gives the whole chunk in one ``read``, straight into the bytes returned; reading
    into a buffer and copying it out cost one more copy of every byte added.
    """
    first = stream.read(n) or b""
    if len(first) == n or not first:
        return first
    parts = [first]
    filled = len(first)
    while filled < n:
        more = stream.read(n - filled)
        if not more:
            break
        parts.append(more)
        filled += len(more)
    return b"".join(parts)


@dataclass(frozen=True)
class SizeChunker:
    """``size-N``: chunks of exactly N bytes, the last one shorter."""

    size: int = DEFAULT_SIZE

    def __post_init__(self) -> None:
        if not 1 <= self.size <= CHUNK_SIZE_LIMIT:
            raise InvalidInput(f"chunk size must be in 1..{CHUNK_SIZE_LIMIT} (Kubo's limit), "
                               f"not {self.size}")

    @property
    def spec(self) -> str:
        return f"size-{self.size}"

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        while True:
            chunk = _read_full(stream, self.size)
            if not chunk:
                return
            yield chunk
            if len(chunk) < self.size:
                return


def _pol_mod(x: int, d: int) -> int:
    """``x mod d`` for polynomials over GF(2) held as int bit sets."""
    deg = d.bit_length()
    while x.bit_length() >= deg:
        x ^= d << (x.bit_length() - deg)
    return x


@functools.cache  # made on the first rabin chunk, not on every import (a few ms)
def _rabin_tables(pol: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """whyrusleeping/chunker ``fillTables``: the ``out`` and ``mod`` tables for ``pol``."""
    k = pol.bit_length() - 1
    out = []
    for b in range(256):
        h = _pol_mod(b, pol)
        for _ in range(_RABIN_WINDOW - 1):
            h = _pol_mod(h << 8, pol)
        out.append(h)
    mod = tuple(_pol_mod(b << k, pol) | (b << k) for b in range(256))
    return tuple(out), mod


_RABIN_SHIFT = RABIN_POLYNOMIAL.bit_length() - 1 - 8  # polShift = deg - 8


@dataclass(frozen=True)
class RabinChunker:
    """``rabin-MIN-AVG-MAX``: content-defined chunks, cut by a Rabin fingerprint."""

    min: int
    avg: int
    max: int

    def __post_init__(self) -> None:
        if self.min < _RABIN_WINDOW:
            raise InvalidInput(f"rabin min must be at least {_RABIN_WINDOW}, not {self.min}")
        if not self.min < self.avg < self.max:
            raise InvalidInput("rabin needs min < avg < max, not "
                               f"{self.min} {self.avg} {self.max}")
        if self.max > CHUNK_SIZE_LIMIT:
            raise InvalidInput(f"rabin max may not exceed {CHUNK_SIZE_LIMIT} (Kubo's limit)")

    @classmethod
    def from_average(cls, avg: int) -> RabinChunker:
        """``rabin-AVG`` (boxo ``NewRabin``): min AVG/3, max AVG + AVG/2."""
        return cls(avg // 3, avg, avg + avg // 2)

    @property
    def spec(self) -> str:
        return f"rabin-{self.min}-{self.avg}-{self.max}"

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        mask = (1 << (self.avg.bit_length() - 1)) - 1  # sizepow = floor(log2(avg))
        lo, hi = self.min, self.max
        buf = b""
        start = 0  # chunks are cut from buf[start:] (no copy of the rest per chunk)
        eof = False
        while True:
            if not eof and len(buf) - start < hi:
                parts = [buf[start:]]
                have = len(parts[0])
                while not eof and have < hi:
                    more = _read_full(stream, _RABIN_READ)
                    eof = len(more) < _RABIN_READ
                    parts.append(more)
                    have += len(more)
                buf, start = b"".join(parts), 0
            if start == len(buf):
                return
            cut = self._cut(buf, start, lo, hi, mask)
            yield buf[start:cut]
            start = cut

    @staticmethod
    def _cut(buf: bytes, start: int, lo: int, hi: int, mask: int) -> int:
        """Where the chunk that starts at ``buf[start]`` ends (at the end of ``buf`` if the
        data does)."""
        end = min(len(buf), start + hi)
        if end < start + lo:
            return end
        (out_t, mod_t), shift = _rabin_tables(RABIN_POLYNOMIAL), _RABIN_SHIFT
        first = start + lo  # the first place a chunk may end
        # After reset the window holds one byte 1 (digest 1); the first lo - 16 bytes are
        # skipped unhashed, then 15 bytes push only zeros out of the window.
        digest = 1
        for b in buf[first - _RABIN_WINDOW:first - 1]:
            digest = ((digest << 8) | b) ^ mod_t[digest >> shift]
        # The 16th pushes out the initial 1; from then on the byte 16 back leaves.
        digest ^= out_t[1]
        digest = ((digest << 8) | buf[first - 1]) ^ mod_t[digest >> shift]
        if not digest & mask:
            return first
        # (the fastest spelling measured: positions from count(), no in-place updates)
        for pos, old, b in zip(count(first + 1), buf[first - _RABIN_WINDOW:end - _RABIN_WINDOW],
                               buf[first:end]):
            d = digest ^ out_t[old]
            digest = ((d << 8) | b) ^ mod_t[d >> shift]
            if not digest & mask:
                return pos
        return end


@dataclass(frozen=True)
class BuzhashChunker:
    """``buzhash``: boxo's content-defined chunks of 128..512 KiB."""

    @property
    def spec(self) -> str:
        return "buzhash"

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        buf = b""
        eof = False
        while True:
            if not eof and len(buf) < _BUZ_MAX:
                more = _read_full(stream, _BUZ_MAX - len(buf))
                eof = len(more) < _BUZ_MAX - len(buf)
                buf += more
            if not buf:
                return
            if len(buf) < _BUZ_MIN:
                yield buf
                return
            cut = self._cut(buf)
            yield buf[:cut]
            buf = buf[cut:]

    @staticmethod
    def _cut(buf: bytes) -> int:
        table = _BUZ_TABLE
        state = 0
        for b in buf[_BUZ_MIN - _BUZ_WINDOW:_BUZ_MIN]:
            state = (((state << 1) | (state >> 31)) & 0xFFFFFFFF) ^ table[b]
        last = len(buf) - _BUZ_WINDOW - 1  # boxo: max := b.n + n - 32 - 1
        i = _BUZ_MIN - _BUZ_WINDOW
        for old, new in zip(buf[i:last + 1], buf[i + _BUZ_WINDOW:last + 1 + _BUZ_WINDOW],
                            strict=True):
            if not state & _BUZ_MASK:
                break
            state = (((state << 1) | (state >> 31)) & 0xFFFFFFFF) ^ table[old] ^ table[new]
            i += 1
        return i + _BUZ_WINDOW


_RABIN_FULL = re.compile(r"rabin-(?:min:)?(\d+)-(?:avg:)?(\d+)-(?:max:)?(\d+)")


def parse_chunker(spec: str) -> Chunker:
    """Kubo's ``--chunker`` string: ``size-N``, ``rabin``, ``rabin-AVG``,
    ``rabin-MIN-AVG-MAX`` (labels ``min:``/``avg:``/``max:`` allowed), ``buzhash``;
    ``default`` or an empty string is ``size-262144``.

    Raises:
        InvalidInput: any other spelling, or parameters Kubo refuses.
    """
    if spec in ("", "default"):
        return SizeChunker()
    if spec == "buzhash" or spec.startswith("buzhash-"):
        return BuzhashChunker()  # boxo ignores anything after "buzhash"
    if spec == "rabin":
        return RabinChunker.from_average(DEFAULT_SIZE)
    name, _, rest = spec.partition("-")
    if name == "size" and rest.isdigit():
        return SizeChunker(int(rest))
    if name == "rabin" and rest.isdigit():
        avg = int(rest)
        if avg * 3 // 2 > CHUNK_SIZE_LIMIT:
            raise InvalidInput(f"rabin average {avg} makes chunks over Kubo's limit")
        return RabinChunker.from_average(avg)
    match = _RABIN_FULL.fullmatch(spec)
    if match:
        lo, avg, hi = (int(g) for g in match.groups())
        return RabinChunker(lo, avg, hi)
    raise InvalidInput(f"unsupported chunker {spec!r}: use size-N, rabin, rabin-AVG, "
                       "rabin-MIN-AVG-MAX or buzhash")
