"""A simulated internet (network namespaces, NAT routers) and the P2P tests that run on it:
see :mod:`.lab`."""
