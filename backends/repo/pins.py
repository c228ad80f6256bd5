"""Durable pins: one small JSON file per pin, written atomically.

On disk (inside the repo folder)::

    pins/
      recursive/<CID>.json      {"cid": ..., "name": ..., "size": ..., "created": ...}
      direct/<CID>.json

A pin exists exactly when its file exists. Files are written to ``tmp/``, fsynced and
renamed, and the rename is made durable, so pins survive restarts, kill -9 and power cuts,
and several processes can pin at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from multiformats import CID

from ipfs_mcp.backends.core.cids import cid_str, parse_cid
from ipfs_mcp.backends.errors import IpfsMcpError, PinNotFound
from ipfs_mcp.backends.repo.atomic import DiskSync, atomic_write

PinType = Literal["recursive", "direct"]
PIN_TYPES: tuple[PinType, ...] = ("recursive", "direct")


@dataclass(frozen=True)
class Pin:
    cid: CID
    type: PinType
    name: str = ""
    size: int | None = None  # content bytes, when known at pin time
    created: float = 0.0


class PinStore:
    def __init__(self, root: Path, tmp_dir: Path, *, sync: DiskSync | None = None) -> None:
        self.dir = Path(root) / "pins"
        self.tmp_dir = tmp_dir
        self.sync = sync if sync is not None else DiskSync()
        for kind in PIN_TYPES:
            (self.dir / kind).mkdir(parents=True, exist_ok=True)

    def _path(self, cid: CID, kind: PinType) -> Path:
        return self.dir / kind / f"{cid_str(cid)}.json"

    def add(self, cid: CID, kind: PinType, *, name: str = "", size: int | None = None) -> Pin:
        pin = Pin(cid, kind, name, size, time.time())
        record = {"cid": cid_str(cid), "type": kind, "name": name, "size": size,
                  "created": pin.created}
        try:
            atomic_write(self._path(cid, kind), json.dumps(record).encode(), tmp_dir=self.tmp_dir,
                         sync=self.sync)
        except OSError as exc:
            raise IpfsMcpError(f"cannot write pin for {cid_str(cid)}: {exc.strerror}") from exc
        # A recursive pin covers the root, so a direct pin of it is redundant (as in Kubo).
        if kind == "recursive":
            self._path(cid, "direct").unlink(missing_ok=True)
        return pin

    def remove(self, cid: CID, kind: PinType | None = None) -> list[PinType]:
        """Remove the pin(s) of ``cid``; returns the types removed.

        Raises:
            PinNotFound: ``cid`` is not pinned (with that type).
        """
        removed: list[PinType] = []
        for candidate in PIN_TYPES if kind is None else (kind,):
            try:
                self._path(cid, candidate).unlink()
                removed.append(candidate)
            except FileNotFoundError:
                continue
        if not removed:
            raise PinNotFound(f"{cid_str(cid)} is not pinned")
        return removed

    def get(self, cid: CID) -> Pin | None:
        for kind in PIN_TYPES:
            pin = self._read(self._path(cid, kind), kind)
            if pin is not None:
                return pin
        # A pin written under the other CID version still counts.
        other = cid.set(version=1) if cid.version == 0 else _v0_of(cid)
        if other is not None and other != cid:
            for kind in PIN_TYPES:
                pin = self._read(self._path(other, kind), kind)
                if pin is not None:
                    return pin
        return None

    def __iter__(self) -> Iterator[Pin]:
        for kind in PIN_TYPES:
            for path in sorted((self.dir / kind).glob("*.json")):
                pin = self._read(path, kind)
                if pin is not None:
                    yield pin

    def _read(self, path: Path, kind: PinType) -> Pin | None:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            return Pin(parse_cid(record["cid"]), kind, record.get("name") or "",
                       record.get("size"), float(record.get("created") or 0.0))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            # A hand-damaged record still pins its CID, which the file name carries.
            return Pin(parse_cid(path.stem), kind)


def _v0_of(cid: CID) -> CID | None:
    if cid.codec.name == "dag-pb" and cid.hashfun.name == "sha2-256":
        return cid.set(version=0, base="base58btc")
    return None
