"""Where a command's ``-o`` may write, and how bytes get there.

A command may write wherever its user can, as Kubo's do, except inside the hub cache or the
repo (only the hub writer and the repo write there). The folder that is to hold the output
must already exist: a mistyped ``-o /data/projcet/x`` is refused, rather than creating
folders nobody asked for. Bytes are written by handle, to a temp file in the folder opened
when the path was checked, then renamed into place, so a folder swapped for a link after the
check is never written through and a failed write leaves nothing half-written behind.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ipfs_mcp.backends.core.rooted import OutputTarget
from ipfs_mcp.backends.errors import InvalidInput, UnsafePath
from ipfs_mcp.backends.settings import BackendSettings
from ipfs_mcp.tools.roots import ProtectedFolders


def output_of(cid_path: str, output: str | None) -> str:
    """Where ``get`` writes: ``-o``, else the last segment of ``CID[/path]``, as Kubo."""
    return output or cid_path.strip("/").split("/")[-1]


def checked_output(settings: BackendSettings, output: str) -> Path:
    """``output`` as a path a command may write: outside the hub cache and the repo, in a
    folder that exists.

    Raises:
        UnsafePath: it is inside, or resolves into, the hub cache or the repo.
        InvalidInput: the folder that would hold it does not exist (or is not a folder).
    """
    protected = ProtectedFolders.of([settings.hf_hub_cache, settings.repo_path])
    try:
        dest = protected.check(output)
    except UnsafePath as exc:  # told in the CLI's words, not the MCP tools'
        folder = protected.containing(output) or protected.held_by(output)
        if folder is None:
            raise
        raise UnsafePath(f"cannot write {output}: it is (or leads into) {folder}, which only "
                         "ipfs-mcp writes (the HuggingFace hub cache and the repo); to put a "
                         "model into the hub cache use `ipfs-mcp get CID --hf ORG/NAME`, "
                         "otherwise choose another -o") from exc
    parent = Path(os.path.abspath(output)).parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise InvalidInput(f"cannot write {output}: the folder {parent} {what} (create it "
                           "first; -o makes no folders above the output)")
    return dest


def write_bytes(dest: Path, write: Callable[[BinaryIO], None]) -> int:
    """Let ``write`` fill a temp file beside ``dest``, then rename it over ``dest``; the
    bytes written.

    Raises:
        UnsafePath: a component of ``dest``'s folder became a link since it was checked.
        OSError: as the file system raises it (the temp file is removed first).
    """
    with OutputTarget.at(dest) as target:
        folder = target.parent()
        try:
            temp = f".{target.name}.{uuid.uuid4().hex}.part"
            with os.fdopen(folder.create(temp), "wb") as out:
                try:
                    write(out)
                    out.flush()
                    size = out.tell()
                except BaseException:
                    folder.remove(temp)
                    raise
            folder.replace(temp, target.name)
        finally:
            folder.close()
    return size
