"""The import options as agents and people give them, declared once.

:class:`ImportArgs` is Kubo's import ``profile`` and the ``ipfs add`` flags that shape the
DAG (so the CID), in our names. The MCP tools take it as one ``import`` object argument
(its schema is this model's), the tool functions take it, and the CLI's ``add`` builds its
flags from its fields (names, help text, choices), so the three cannot drift apart. Each field is ``None`` unless given,
meaning "as the profile (or Kubo's defaults) says"; :meth:`ImportArgs.to_options` is the
one place they become the importer's :class:`~ipfs_mcp.backends.core.importer.ImportOptions`.

``nocopy`` is not here: its default depends on where the content comes from (a model in
the HF cache, a path, inline bytes), so each front end declares its own.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ipfs_mcp.backends.core.importer import ImportOptions

# The names of ``importer.PROFILES``, spelled out so the schema can list them (a test keeps
# the two equal).
ProfileName = Literal["unixfs-v0-2015", "legacy-cid-v0", "unixfs-v1-2025"]

Profile = Annotated[ProfileName | None, Field(description=(
    "Kubo's import profile: unixfs-v1-2025 (CIDv1, raw leaves, 1 MiB chunks) or "
    "unixfs-v0-2015 (= legacy-cid-v0, Kubo's defaults). The other fields override it"))]
CidVersion = Annotated[Literal[0, 1] | None, Field(description=(
    "0 (Qm..., Kubo's default) or 1 (bafy...)"))]
RawLeaves = Annotated[bool | None, Field(description=(
    "Raw leaf blocks; default: as Kubo (true for CIDv1)"))]
Chunker = Annotated[str | None, Field(description=(
    "size-N, rabin[-MIN-AVG-MAX] or buzhash (default size-262144)"))]
Trickle = Annotated[bool | None, Field(description="Trickle layout instead of balanced")]
MaxFileLinks = Annotated[int | None, Field(ge=1, description=(
    "Links per file node (default 174)"))]
MaxDirectoryLinks = Annotated[int | None, Field(ge=0, description=(
    "Shard a folder with more entries than this (default 0: no limit)"))]
MaxHamtFanout = Annotated[int | None, Field(ge=8, le=1024, description=(
    "Links per HAMT shard, a power of two (default 256)"))]


class ImportArgs(BaseModel):
    """Kubo's import profile and the ``ipfs add`` flags over it; unset fields follow it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: Profile = None
    cid_version: CidVersion = None
    raw_leaves: RawLeaves = None
    chunker: Chunker = None
    trickle: Trickle = None
    max_file_links: MaxFileLinks = None
    max_directory_links: MaxDirectoryLinks = None
    max_hamt_fanout: MaxHamtFanout = None

    def to_options(self, *, wrap_with_directory: bool = False,
                   hidden: bool = False) -> ImportOptions:
        """The importer's options: the profile (or Kubo's defaults), then every field given.

        Raises:
            InvalidInput: an unknown profile or chunker, or values the importer refuses.
        """
        return ImportOptions.from_profile(
            self.profile, cid_version=self.cid_version, raw_leaves=self.raw_leaves,
            chunker=self.chunker, trickle=self.trickle, max_links=self.max_file_links,
            max_directory_links=self.max_directory_links,
            max_hamt_fanout=self.max_hamt_fanout,
            wrap_with_directory=wrap_with_directory, hidden=hidden)
