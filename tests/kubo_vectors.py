"""What Kubo's ``ipfs add`` gives for a few inputs (INTEROP.md): CIDs that every importer,
ours and the real ones, must reproduce."""

from __future__ import annotations

__all__ = ["DIR_VECTOR", "FILE_VECTORS"]

# input -> (CIDv0 with Kubo's defaults, CIDv1 with raw leaves)
FILE_VECTORS: list[tuple[bytes, str, str]] = [
    (b"", "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
     "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    (b"hello world\n", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
     "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"),
    (bytes(1 << 20), "QmVkbauSDEaMP4Tkq6Epm9uW75mWm136n81YH8fGtfwdHU",
     "bafybeiggzq4ryi7hscq5hzvzcnk4urnxt3asp37dhgvnjilf7exskximla"),
]

# a folder of two files -> (CIDv0, CIDv1), the same way
DIR_VECTOR: tuple[dict[str, bytes], str, str] = (
    {"a.txt": b"aaa\n", "b.txt": b"bbb\n"},
    "Qmbf84Ab1zsAStesz6Q7CTHJWKhZyMd9KtYPqrxEvFuBsF",
    "bafybeieb2ojvdcdqsm2dwkzjc4unjujhh7dkkbr4njv4tzh5fb3fjdx4wu")
