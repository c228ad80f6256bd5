"""``ipfs-mcp routing put/get``: signed IPNS records kept in the repo's record store and
resolved from it offline (no node), the best record winning; and the static DNSLink map
(``IPFS_MCP_NS_MAP``, Kubo's ``IPFS_NS_MAP`` syntax) asked before DNS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import dag_cbor
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from multiformats import multihash

from ipfs_mcp.backends.core import ipns, protobuf
from ipfs_mcp.backends.errors import InvalidInput
from ipfs_mcp.backends.retrieval.dnslink import parse_ns_map
from ipfs_mcp.backends.settings import BackendSettings
from ipfs_mcp.server import cli
from ipfs_mcp.server.config import ServerSettings
from ipfs_mcp.tools.names import name_resolver

CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
OTHER = "bafkqaddwgevxmmraojswg33smq"


def _record(tmp_path: Path, key: Ed25519PrivateKey, value: str, sequence: int,
            file: str) -> tuple[str, Path]:
    record = ipns.make_record(key, value, sequence=sequence, lifetime_seconds=3600,
                              ttl_seconds=30)
    path = tmp_path / file
    path.write_bytes(record.raw)
    return record.name, path


def _resolve(name: str) -> str:
    resolver = name_resolver(None, repo_path=BackendSettings.from_env().repo_path)

    async def run() -> str:
        with anyio.fail_after(10):
            return (await resolver.resolve_path(name)).path

    return anyio.run(run)


def test_a_put_record_is_got_back_and_resolves_offline_the_best_one_winning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = Ed25519PrivateKey.generate()
    name, newer = _record(tmp_path, key, f"/ipfs/{CID}", 2, "newer.ipns-record")
    _, older = _record(tmp_path, key, f"/ipfs/{OTHER}", 1, "older.ipns-record")
    assert cli.main(["routing", "put", name, str(newer), "--json"]) == 0
    kept = json.loads(capsys.readouterr().out)
    assert cli.main(["routing", "put", name, str(older)]) == 1
    refused = capsys.readouterr().err
    assert cli.main(["routing", "get", name, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert kept == {**kept, "name": name, "value": f"/ipfs/{CID}", "sequence": 2}
    assert "better record" in refused
    assert got == kept
    # No node runs: the name resolves from the held record alone, a path after it kept.
    assert _resolve(f"{name}/a") == f"/ipfs/{CID}/a"


def test_a_record_signed_by_another_key_is_refused_and_nothing_is_held(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    owner, forger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    name = ipns.ipns_name(ipns.key_multihash(owner.public_key()))
    _, forged = _record(tmp_path, forger, f"/ipfs/{CID}", 9, "forged.ipns-record")
    assert cli.main(["routing", "put", name, str(forged)]) == 1
    refused = capsys.readouterr().err
    assert cli.main(["routing", "get", name]) == 1
    missing = capsys.readouterr().err
    assert refused.startswith("Error: ") and "key" in refused
    assert "no valid record" in missing


def test_the_static_dnslink_map_answers_before_dns(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    name, path = _record(tmp_path, key, f"/ipfs/{CID}", 0, "site.ipns-record")
    assert cli.main(["routing", "put", name, str(path)]) == 0
    # The resolver named for every other domain is a closed port: DNS is never asked.
    monkeypatch.setenv("IPFS_MCP_DNS_RESOLVERS", ".=127.0.0.1:9")
    monkeypatch.setenv("IPFS_MCP_NS_MAP", f"docs.example.org:/ipfs/{OTHER}/sub,"
                                          f"Site.Example.org:{name}")
    settings = ServerSettings.load()
    resolver = name_resolver(None, settings.dns_resolvers, ns_map=settings.ns_map,
                             repo_path=settings.backend.repo_path)

    async def run() -> tuple[str, str]:
        with anyio.fail_after(10):
            docs = await resolver.resolve_path("/ipns/docs.example.org/x")
            site = await resolver.resolve_path("site.example.org")
        return docs.path, site.path

    assert anyio.run(run) == (f"/ipfs/{OTHER}/sub/x", f"/ipfs/{CID}")


@pytest.mark.parametrize("entry", ["docs.example.org", "docs.example.org:bafy",
                                   "docs.example.org:/ipfs/", "not a domain:/ipfs/x"])
def test_a_malformed_dnslink_map_entry_is_refused(entry: str) -> None:
    with pytest.raises(InvalidInput):
        parse_ns_map(entry)


def _rsa_record(bits: int, value: str) -> tuple[str, bytes]:
    """A V2 record signed by a new RSA key of ``bits`` (Kubo's older Qm… names: the name is
    the SHA-256 multihash of the libp2p public key, embedded in the record)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    key_pb = protobuf.varint_field(1, 0) + protobuf.bytes_field(2, der)
    name = ipns.ipns_name(bytes(multihash.digest(key_pb, "sha2-256")))
    validity = ipns.format_validity(datetime.now(UTC) + timedelta(hours=1)).encode()
    data = dag_cbor.encode({"Value": value.encode(), "Validity": validity, "ValidityType": 0,
                            "Sequence": 0, "TTL": 0})
    signature = key.sign(ipns.SIGNATURE_V2_PREFIX + data, padding.PKCS1v15(), hashes.SHA256())
    return name, (protobuf.bytes_field(7, key_pb) + protobuf.bytes_field(8, signature)
                  + protobuf.bytes_field(9, data))


def test_an_rsa_key_record_resolves_and_a_short_rsa_key_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name, raw = _rsa_record(2048, f"/ipfs/{CID}")
    short_name, short = _rsa_record(1024, f"/ipfs/{CID}")
    (tmp_path / "rsa.ipns-record").write_bytes(raw)
    (tmp_path / "short.ipns-record").write_bytes(short)
    assert cli.main(["routing", "put", name, str(tmp_path / "rsa.ipns-record")]) == 0
    capsys.readouterr()
    assert cli.main(["routing", "put", short_name, str(tmp_path / "short.ipns-record")]) == 1
    refused = capsys.readouterr().err
    assert "2048 bits" in refused
    assert _resolve(name) == f"/ipfs/{CID}"
