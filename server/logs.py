"""Where the server's logs go, and which loggers may speak there.

Everything goes to stderr: on stdio, stdout belongs to the protocol. Our own loggers
(``ipfs_mcp.*``) log at the chosen level (``--log-level``, default WARNING), so our warnings
reach the user.

The libraries under the P2P node log routine network events at WARNING and above: a
peer resetting a DHT stream becomes ``Failed to read DHT message from stream: ...``. An MCP
client shows whatever a stdio server writes to stderr as server errors, so these records
are shown only with ``--log-level DEBUG``, and then marked DEBUG. py-libp2p, on import,
detaches its logger from the root (no handler, no propagation), which sends its warnings
to Python's last-resort stderr handler; hence each library logger gets a handler of its
own here, after py-libp2p has been imported.
"""

from __future__ import annotations

import importlib
import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers of the libraries beneath the P2P node: their records are noise unless debugging.
LIBRARY_LOGGERS = ("libp2p", "zeroconf", "multiaddr")
OFF = logging.CRITICAL + 1


def _as_debug(record: logging.LogRecord) -> bool:
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return True


def configure_logging(level: str, *, p2p: bool = True) -> None:
    """Send logs to stderr at ``level``; library loggers speak only when it is DEBUG.

    ``p2p`` says the P2P node will run: py-libp2p is then imported first, since its
    import resets its logger.
    """
    logging.basicConfig(level=level, stream=sys.stderr, format=FORMAT)
    logging.getLogger("ipfs_mcp").setLevel(level)
    if p2p:
        importlib.import_module("libp2p")
    debug = level == "DEBUG"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_as_debug)
    handler.setLevel(logging.DEBUG if debug else OFF)
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers = [handler]
        library.propagate = False
        library.setLevel(logging.DEBUG if debug else OFF)
