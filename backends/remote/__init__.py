"""Daemons we drive rather than embed: Kubo (``kubo/``, over its RPC or its CLI), IPFS
Cluster in front of Kubo, and ipfs_kit_py.

May import every lower layer; nothing below imports it (the Router loads it on demand).
"""
