"""Circuit Relay v2: reaching peers behind NAT through a relay.

* :mod:`.wire` the protocol ids, messages and framing, shared by both sides;
* :mod:`.limits` which connections are relayed and limited, and how much they may still carry;
* :mod:`.client` reservations on relays, accepting relayed connections (the ``stop`` side);
* :mod:`.circuit_dial` dialing a peer through a relay (a hop CONNECT, then an upgrade);
* :mod:`.service` the relay itself (the ``hop`` side), for a master or ``--relay-service``;
* :mod:`.accounting` its reservations and circuits, and their bounds (pure, clock passed in).
"""
