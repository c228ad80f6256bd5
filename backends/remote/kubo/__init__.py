"""An existing Kubo node as a backend: ``backend`` holds every operation once, as Kubo
commands sent through a ``transport`` (``cli_transport``: the ``ipfs`` binary;
``http_transport``: Kubo's RPC API). ``verified`` checks what the node sends back,
``upload`` makes what an add sends (IPFS Cluster's adds use it too), ``network`` is the
node's swarm and routing as the ``Network`` protocol, ``names`` its keys and IPNS as the
``NameSystem`` protocol, ``factory`` the choice of transport.
"""
