"""Where a missing block comes from besides the P2P node: trustless HTTP gateways (whole
DAGs as verified CAR streams, single blocks per request), a delegated routing client, the
sources asked together on a miss, and the address scope that keeps a hostile router from
steering us at local hosts.

May import ``core``, ``repo``, the contracts and the error tree.
"""
