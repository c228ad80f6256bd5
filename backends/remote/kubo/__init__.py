"""An existing Kubo node as a backend, reached over its HTTP RPC (``rpc``) or its CLI
(``cli``); ``common`` holds the verified reads both use, ``network`` the node's swarm and
routing as the ``Network`` protocol, ``factory`` the choice between the two.
"""
