"""What the backends need from the network, as a protocol the P2P node implements.

``backends`` never imports ``p2p``: the server hands a ``BlockFetcher`` to the router.
Both methods are synchronous and called from worker threads; an implementation that lives
on an event loop bridges to it (``anyio.from_thread``). Implementations verify every block
against its CID and store it in the local blockstore before returning.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from multiformats import CID


@runtime_checkable
class BlockFetcher(Protocol):
    def fetch_block(self, cid: CID, cancel: threading.Event | None = None) -> bytes:
        """Get one block from peers, verified and stored locally. Setting ``cancel`` stops
        the network work at once (then ``OperationCancelled``).

        Raises:
            BlockNotFound: no provider had it within the fetcher's time budget.
        """
        ...

    def fetch_dag(self, root: CID, cancel: threading.Event | None = None) -> None:
        """Get every block under ``root`` from peers into the local blockstore.

        Raises:
            BlockNotFound: some block could not be found; the error names it.
        """
        ...
