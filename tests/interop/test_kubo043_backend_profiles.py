"""Import profiles on the Kubo backend (over RPC and CLI) against a real Kubo 0.43 daemon.

Kubo's HAMT threshold and size estimation are node configuration, not ``add`` flags, so a
profile that changes them (``unixfs-v1-2025``: block size estimation) cannot be honoured
for folders; but they never shape a file, so files added with that profile must get the
profile's CID, the one our importer gives.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.importer import Importer, ImportOptions
from ipfs_mcp.backends.errors import InvalidInput
from ipfs_mcp.backends.remote.kubo.backend import KuboBackend

from .kubo_daemon import KuboDaemon

pytestmark = pytest.mark.interop
PROFILE = "unixfs-v1-2025"


@pytest.fixture(params=["rpc", "cli"])
def backend(request: pytest.FixtureRequest, kubo043: KuboDaemon) -> Iterator[KuboBackend]:
    made = (KuboBackend.over_http(kubo043.api_url) if request.param == "rpc"
            else KuboBackend.over_cli(kubo043.cli_command, env=kubo043.cli_env))
    yield made
    made.close()


def test_a_file_added_with_a_profile_that_sets_hamt_options_gets_the_profiles_cid(
        tmp_path: Path, backend: KuboBackend, kubo043: KuboDaemon) -> None:
    options = ImportOptions.from_profile(PROFILE)
    assert options.hamt_size_estimation != "links"  # the case this is about
    data = os.urandom(1_500_000)  # two 1 MiB chunks under the profile
    expected = cid_str(Importer(options=options).add_bytes(data).cid_obj)
    assert backend.add_bytes(data, options=options) == expected
    (tmp_path / "weights.bin").write_bytes(data)
    assert cid_str(backend.add_path(tmp_path / "weights.bin", options=options).root) == expected
    assert backend.cat(expected) == data
    assert kubo043.rpc("block/stat", arg=expected)["Key"] == expected  # the node holds it


def test_a_folder_with_such_a_profile_is_refused_naming_the_node_setting(
        tmp_path: Path, backend: KuboBackend) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    options = ImportOptions.from_profile(PROFILE)
    with pytest.raises(InvalidInput, match="UnixFSHAMTDirectorySizeThreshold"):
        backend.add_path(folder, options=options)
    wrapped = ImportOptions.from_profile(PROFILE, wrap_with_directory=True)
    with pytest.raises(InvalidInput, match="shape folders"):
        backend.add_bytes(b"x", options=wrapped)
    with pytest.raises(InvalidInput, match="shape folders"):
        backend.add_path(folder / "a.txt", options=wrapped)
