"""Fixtures for the P2P tests: real py-libp2p hosts on 127.0.0.1/tcp/0, on trio.

Every node gets its own repo under ``tmp_path`` and short timeouts, so a silent or lying
peer costs a test about a second, never a hang. Tests wait on events and results, bounded
by ``trio.fail_after``; none sleeps for a fixed time.
"""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _quiet_libp2p() -> None:
    # py-libp2p logs every DHT stream that ends with EOF as an error; that is normal here.
    logging.getLogger("libp2p").setLevel(logging.CRITICAL if not __import__("os").environ.get("P2P_DEBUG") else logging.DEBUG)
