"""The listing cursor a caller hands back is untrusted: whatever it is, opening it either
gives the position this server wrote or raises the project's InvalidInput, never another
error, and no change to a real cursor passes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipfs_mcp.backends.errors import InvalidInput
from ipfs_mcp.tools.paging import MAX_CURSOR_CHARS, Cursors

CURSORS = Cursors(b"k" * 32)
REAL = CURSORS.issue("folder", "bafyroot", 100, 3000)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=MAX_CURSOR_CHARS + 10),
                 st.from_regex(r"[A-Za-z0-9_-]{0,80}\.[A-Za-z0-9_-]{0,40}", fullmatch=True)))
def test_any_text_is_refused_with_the_projects_error(text: str) -> None:
    if text == REAL:
        return
    with pytest.raises(InvalidInput):
        CURSORS.open(text, "folder", "bafyroot")


def test_no_one_character_change_of_a_real_cursor_passes() -> None:
    assert CURSORS.open(REAL, "folder", "bafyroot").at == 100
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    for i, char in enumerate(REAL):
        for other in alphabet[:8] + alphabet[-3:]:
            if other == char:
                continue
            changed = REAL[:i] + other + REAL[i + 1:]
            with pytest.raises(InvalidInput):
                CURSORS.open(changed, "folder", "bafyroot")


def test_a_cursor_opens_only_for_its_listing_and_its_server() -> None:
    with pytest.raises(InvalidInput, match="another listing"):
        CURSORS.open(REAL, "folder", "bafyother")
    with pytest.raises(InvalidInput, match="another listing"):
        CURSORS.open(REAL, "pins", "bafyroot")
    with pytest.raises(InvalidInput, match="start the listing again"):
        Cursors(b"x" * 32).open(REAL, "folder", "bafyroot")
