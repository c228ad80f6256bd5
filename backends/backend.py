"""The ``Backend`` protocol: the seed router API, as one small interface per backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from .exporter import Entry
from .importer import ImportOptions, ImportResult


@runtime_checkable
class Backend(Protocol):
    """What every backend does. CIDs go in and out as strings, as in the seed API.

    Implementations raise the project's errors: ``InvalidCID``, ``BlockNotFound``,
    ``IntegrityError``, ``BackendUnavailable``; never a made-up CID.
    """

    name: str

    def add_bytes(self, data: bytes, *, pin: bool = True,
                  options: ImportOptions | None = None) -> str: ...

    def add_path(self, path: str | Path, *, recursive: bool = True, pin: bool = True,
                 options: ImportOptions | None = None) -> ImportResult: ...

    def cat(self, cid: str, *, offset: int = 0, length: int | None = None) -> bytes: ...

    def cat_stream(self, cid: str, *, offset: int = 0, length: int | None = None
                   ) -> Iterator[bytes]: ...

    def get_to_path(self, cid: str, *, output_path: str | Path) -> Entry: ...

    def ls(self, cid: str) -> list[Entry]: ...

    def pin(self, cid: str, *, recursive: bool = True) -> None: ...

    def unpin(self, cid: str) -> None: ...

    def block_put(self, data: bytes, *, codec: str = "raw") -> str: ...

    def block_get(self, cid: str) -> bytes: ...

    def dag_export(self, cid: str, out: Path | None = None) -> bytes | None: ...
