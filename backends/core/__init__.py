"""Codecs and DAG logic, with no I/O of their own: CIDs, varint, protobuf, dag-pb, UnixFS,
chunkers, the trickle layout, HAMT shards, the importer and exporter, CAR, the bounds of
every walk (``limits``) and the DAG walker, and provider reputation scoring.

Imports nothing of ours but the error tree; everything else builds on it.
"""
