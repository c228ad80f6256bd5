"""The embedded IPFS repo on disk: the blockstore, durable pins, the filestore (leaves kept
by reference), placements (received leaves written straight into their file), atomic
writes, the repo with GC and verify, the receiver and the prefetch that reads a DAG while
it arrives.

May import ``core``, the error tree and the small contracts (``fetcher``, ``cancel``).
"""
