"""IPNS over delegated routing (``/routing/v1/ipns/{name}``, IPIP-379): our gateway serves the
record its node holds (validated again, ``application/vnd.ipfs.ipns-record``); a node that
shares no DHT with the publisher resolves the name through that gateway as its delegated
router; a deliberately lying router's forged record is refused and named."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ipfs_mcp.backends.core import ipns
from ipfs_mcp.backends.errors import NameNotFound
from ipfs_mcp.backends.retrieval.delegated_routing import IPNS_RECORD, DelegatedRouting
from ipfs_mcp.p2p.names import NodeNames
from ipfs_mcp.server.gateway import BlockstoreSource, Gateway, serve_gateway
from ipfs_mcp.server.gateway.node_routing import NodeProviders

from .nodes import RunningSlot, node_at, repo_at

pytestmark = pytest.mark.anyio

CID_A = "/ipfs/bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    async with anyio.create_task_group() as tg:
        urls = await tg.start(serve_gateway, app, "127.0.0.1", 0)
        yield urls[0]
        tg.cancel_scope.cancel()


def lying_router(raw: bytes) -> Any:
    """A deliberately lying delegated router: ``raw`` for every IPNS name it is asked."""

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", IPNS_RECORD.encode())]})
        await send({"type": "http.response.body", "body": raw})

    return app


async def test_a_name_resolves_through_our_gateway_as_a_delegated_router_and_a_liar_is_refused(
        tmp_path: Path) -> None:
    forged = ipns.make_record(Ed25519PrivateKey.generate(), CID_A, sequence=50,
                              lifetime_seconds=3600, ttl_seconds=0)
    with trio.fail_after(60):
        async with node_at(tmp_path / "a") as a, node_at(tmp_path / "b") as b:
            names_a = NodeNames.for_host(a.host, a.routing.dht, tmp_path / "a")  # type: ignore[attr-defined]
            published = await names_a.publish(CID_A, ttl_seconds=120)
            providers = NodeProviders(RunningSlot(a), repo_at(tmp_path / "a").blocks, a.peer_id)
            gateway = Gateway(BlockstoreSource(repo_at(tmp_path / "a").blocks),
                              providers=providers)
            async with served(gateway) as url, served(lying_router(forged.raw)) as liar, \
                    httpx.AsyncClient(base_url=url) as http:
                key = published.name.removeprefix("/ipns/")
                answer = await http.get(f"/routing/v1/ipns/{key}",
                                        headers={"Accept": IPNS_RECORD})
                assert answer.status_code == 200
                assert answer.headers["content-type"] == IPNS_RECORD
                assert answer.headers["cache-control"] == "public, max-age=120"
                assert ipns.validate_record(published.name, answer.content).sequence == 0
                stranger = forged.name.removeprefix("/ipns/")
                assert (await http.get(f"/routing/v1/ipns/{stranger}")).status_code == 404
                assert (await http.get("/routing/v1/ipns/not-a-name")).status_code == 400
                # b shares no DHT with a; it knows the liar and a's gateway as routers.
                routers = DelegatedRouting([liar, url])
                names_b = NodeNames.for_host(b.host, b.routing.dht, tmp_path / "b",  # type: ignore[attr-defined]
                                             routers=[routers])
                resolved = await names_b.resolve(published.name)
                assert (resolved.value, resolved.sequence, resolved.source) == (
                    CID_A, 0, "delegated router")
                only_liar = NodeNames.for_host(b.host, b.routing.dht, tmp_path / "b",  # type: ignore[attr-defined]
                                               routers=[DelegatedRouting([liar])])
                with pytest.raises(NameNotFound, match="signature"):
                    await only_liar.resolve(forged.name.replace(stranger, key))
                routers.close()
