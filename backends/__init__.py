"""The storage side of ipfs-mcp: codecs, the on-disk repo, retrieval, the hub layout,
remote daemons, and the Router that puts one of them behind the seed API.

Layers, lowest first. A module imports only from its own layer or lower
(``tests/test_layout.py`` reads every import from the source and fails on a cycle or an
upward import)::

    errors          one error tree, imported by everything
    core/           codecs and DAG logic, no I/O of its own: CIDs, varint, protobuf,
                    dag-pb, UnixFS, chunkers, trickle, HAMT, importer, exporter, CAR,
                    limits, the DAG walker, provider reputation
    cancel, fetcher, network, settings, http_answers
                    small contracts: the cancel token, the BlockFetcher and Network
                    protocols, frozen settings, what every HTTP client does with an answer
    repo/           the embedded repo on disk: blockstore, pins, filestore, placements,
                    atomic writes, the repo, the receiver, prefetch
    backend         the Backend protocol and its reports
    retrieval/      sources asked on a miss: trustless gateways, delegated routing,
                    address scope
    hub/            the HuggingFace hub cache layout, and models in and out of it
    remote/         daemons we drive: kubo/ (RPC and CLI), cluster, ipfs_kit
    hf_cache        the embedded default backend (the repo behind the Backend protocol)
    router          the Router: picks a backend, falls back, reports which one answered

``ipfs_mcp.p2p`` sits above all this but uses only ``core`` and ``errors``: the server hands
the node what it needs (a blockstore, a fetcher) through protocols.
"""
