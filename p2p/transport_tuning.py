"""Bulk-transfer tuning of py-libp2p's yamux, in one place, applied when a host is built.

Two settings, both measured (``bench/transport.py``) and both invisible on the wire to a
stock peer:

- **Frames sized to one noise message.** py-libp2p writes yamux DATA frames of
  ``MAX_MESSAGE_SIZE`` = 65536 bytes (header included); noise carries at most 65519
  plaintext bytes per message, so every frame became two encrypted messages (65519 + 17
  bytes), doubling the per-message work (an AEAD call, a length prefix, a socket write) on
  both sides. With 65519 the frame is exactly one message. Any yamux peer accepts it: it
  is smaller than the 64 KiB go-yamux sends and far below the 256 KiB initial window. The
  library has no argument for it; the module constant is read at each write, so it is set
  here, once.
- **Window updates in batches.** By default the library sends one encrypted
  WINDOW_UPDATE for every read that its hysteresis would defer ("release on read"),
  about one per 64 KiB received: a fifth of the receiver's time in profiles. Its own knob,
  the ``PY_YAMUX_RELEASE_ON_READ`` environment variable (read at each read), turns that
  off; credit then goes back once half the window has been consumed, as go-yamux does.
  A value the user set is left alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH
from libp2p.stream_muxer.yamux import yamux as _yamux

# One yamux frame, its 12-byte header included, per noise message.
YAMUX_FRAME_SIZE = MAX_PLAINTEXT_LENGTH
RELEASE_ON_READ_ENV = "PY_YAMUX_RELEASE_ON_READ"


@dataclass(frozen=True)
class TransportTuning:
    """What the library will do now (read back from it, not from what we asked)."""

    yamux_frame_size: int  # bytes per DATA frame written, header included
    release_on_read: bool  # one WINDOW_UPDATE per read instead of per half window


def current_tuning() -> TransportTuning:
    return TransportTuning(yamux_frame_size=_yamux.MAX_MESSAGE_SIZE,
                           release_on_read=_yamux._yamux_release_on_read())


def apply_transport_tuning() -> TransportTuning:
    """Set both knobs (idempotent) and return what the library now reports."""
    _yamux.MAX_MESSAGE_SIZE = YAMUX_FRAME_SIZE
    os.environ.setdefault(RELEASE_ON_READ_ENV, "0")
    return current_tuning()
