"""The import options agents and the CLI give, and the importer's options they become."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from ipfs_mcp.backends.core.importer import PROFILES, ImportOptions
from ipfs_mcp.tools.import_options import ImportArgs, ProfileName


def test_the_profiles_offered_are_the_importers() -> None:
    assert set(typing.get_args(ProfileName)) == set(PROFILES)


def test_unset_fields_follow_the_profile_and_given_ones_override_it() -> None:
    assert ImportArgs().to_options() == ImportOptions()
    assert ImportArgs(profile="unixfs-v1-2025").to_options() == \
        ImportOptions.from_profile("unixfs-v1-2025")
    given = ImportArgs(profile="unixfs-v1-2025", cid_version=0, raw_leaves=False,
                       chunker="buzhash", trickle=True, max_file_links=3,
                       max_directory_links=2, max_hamt_fanout=16)
    options = given.to_options(hidden=True)
    assert (options.cid_version, options.raw_leaves, options.chunker_spec, options.trickle,
            options.max_links, options.max_directory_links, options.max_hamt_fanout,
            options.hamt_size_estimation, options.hidden) == \
        (0, False, "buzhash", True, 3, 2, 16, "block", True)


@pytest.mark.parametrize("values", [{"cid_version": 2}, {"max_hamt_fanout": 4},
                                    {"max_file_links": 0}, {"profile": "unixfs-v2"},
                                    {"chunk_size": 1024}])
def test_values_outside_the_schema_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ImportArgs.model_validate(values)
