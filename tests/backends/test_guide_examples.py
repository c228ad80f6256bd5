"""The replaced router's guide, run as its users would: its examples written out as it shows
them, on our seed API (``from ipfs_accelerate_py import ipfs_backend_router`` becomes
``from ipfs_mcp.backends import ipfs_backend_router``), with small local data.

The guide's datasets and transformers workflows need ``datasets`` (about 90 MB of wheels with
pyarrow, pandas and numpy) and ``transformers`` with torch (far more), neither a test
dependency. So the transformers workflow runs on huggingface_hub's own ``save_pretrained`` /
``from_pretrained`` (``ModelHubMixin``: the same folder round trip, without torch), and the
datasets workflow on a small dataset folder written and read back as JSON lines.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import ModelHubMixin
from multiformats import CID

from ipfs_mcp.backends import ipfs_backend_router, router
from ipfs_mcp.backends.backend import PartialBackend
from ipfs_mcp.backends.core.importer import ImportOptions
from ipfs_mcp.backends.core.rooted import OutputTarget
from ipfs_mcp.backends.errors import (
    AllBackendsFailed,
    BackendUnavailable,
    IntegrityError,
    InvalidInput,
    TargetExists,
    Unsupported,
)
from ipfs_mcp.backends.router import RouterDeps


class CustomBackend:
    """The guide's custom backend, with its two methods made real: content is kept in memory
    under its raw CIDv1, the CID ``ipfs add --cid-version 1`` gives content of one chunk."""

    def __init__(self) -> None:
        self.blocks: dict[str, bytes] = {}
        self.pinned: dict[str, bool] = {}

    def add_bytes(self, data: bytes, *, pin: bool = True) -> str:
        cid = str(CID("base32", 1, "raw", ("sha2-256", hashlib.sha256(data).digest())))
        self.blocks[cid] = data
        self.pinned[cid] = pin
        return cid

    def cat(self, cid: str) -> bytes:
        return self.blocks[cid]


@pytest.fixture
def guide_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lets the guide's own ``os.environ[...] = ...`` lines run as written: set here first,
    the variable is put back after the test."""
    monkeypatch.setenv("IPFS_BACKEND", "hf_cache")


def test_quick_start_basic_usage(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(os.urandom(300_000))  # two chunks: a real DAG, not one block

    # Store data and get CID
    data = b"Hello, IPFS!"
    cid = ipfs_backend_router.add_bytes(data, pin=True)
    print(f"Stored with CID: {cid}")

    # Retrieve data
    retrieved = ipfs_backend_router.cat(cid)
    assert retrieved == data

    # Store a file
    cid = ipfs_backend_router.add_path(str(model), pin=True)

    # Retrieve to specific path
    ipfs_backend_router.get_to_path(cid, output_path=str(tmp_path / "output.bin"))

    assert (tmp_path / "output.bin").read_bytes() == model.read_bytes()
    assert router.selection().backend == "hf_cache"


def test_custom_backend_example(guide_environ: None) -> None:
    # Register
    ipfs_backend_router.register_ipfs_backend(
        "custom",
        lambda: CustomBackend()
    )

    # Use
    import os
    os.environ["IPFS_BACKEND"] = "custom"
    cid = ipfs_backend_router.add_bytes(b"data")

    assert ipfs_backend_router.cat(cid) == b"data"
    assert router.selection().backend == "custom"
    read = router.last_read()
    assert read is not None and read.backend == "custom"
    # A real CID: the embedded repo gives the same one for the same bytes and options.
    embedded = ipfs_backend_router.get_backend(backend="hf_cache")
    assert embedded.add_bytes(b"data", options=ImportOptions(cid_version=1)) == cid


def test_a_method_the_custom_backend_lacks_is_unsupported_naming_both(
        guide_environ: None) -> None:
    ipfs_backend_router.register_ipfs_backend("custom", lambda: CustomBackend())
    os.environ["IPFS_BACKEND"] = "custom"
    with pytest.raises(Unsupported, match="block_put.*custom") as info:
        ipfs_backend_router.block_put(b"raw")
    assert (info.value.backend, info.value.capability) == ("custom", "block_put")
    assert "CustomBackend has no block_put method" in str(info.value)


def test_keywords_the_backend_does_not_take_are_passed_only_at_their_default(
        guide_environ: None) -> None:
    ipfs_backend_router.register_ipfs_backend("custom", lambda: CustomBackend())
    os.environ["IPFS_BACKEND"] = "custom"
    chosen = router.default_router()
    # The Router passes name= and options= (and cat passes offset= and length=) at their
    # defaults: dropped. pin= is taken, and honoured.
    cid = chosen.add_bytes(b"not pinned", pin=False)
    custom = chosen.primary
    assert isinstance(custom, PartialBackend) and isinstance(custom.wrapped, CustomBackend)
    assert custom.wrapped.pinned[cid] is False
    assert chosen.cat(cid) == b"not pinned"
    # A keyword that would change the outcome is not dropped: the call is refused.
    with pytest.raises(Unsupported, match="name='kept'.*takes no name"):
        chosen.add_bytes(b"named", name="kept")
    with pytest.raises(Unsupported, match="options="):
        chosen.add_bytes(b"v1", options=ImportOptions(cid_version=1))
    assert b"named" not in custom.wrapped.blocks.values()
    # A read it cannot do is asked of the next working backend, which says why it failed.
    with pytest.raises(AllBackendsFailed) as info:
        chosen.cat(cid, offset=2)
    assert isinstance(info.value.errors["custom"], Unsupported)
    assert "takes no offset" in str(info.value.errors["custom"])


def test_an_error_of_the_custom_backends_own_is_translated_and_the_read_goes_on(
        guide_environ: None) -> None:
    ipfs_backend_router.register_ipfs_backend("custom", lambda: CustomBackend())
    embedded = ipfs_backend_router.add_bytes(b"only in the embedded repo", backend="hf_cache")
    os.environ["IPFS_BACKEND"] = "custom"
    # CustomBackend.cat raises KeyError for what it lacks: the read goes on to hf_cache.
    assert ipfs_backend_router.cat(embedded) == b"only in the embedded repo"
    report = router.last_read()
    assert report is not None and report.backend == "hf_cache"
    assert "custom: cat raised KeyError" in report.failed["custom"]
    # A write never switches: the custom backend's own error is the caller's to see.
    ipfs_backend_router.register_ipfs_backend("full", FullBackend)
    with pytest.raises(BackendUnavailable, match="never switch.*raised OSError") as info:
        ipfs_backend_router.add_bytes(b"x", backend="full")
    assert isinstance(info.value.__cause__, BackendUnavailable)
    assert isinstance(info.value.__cause__.__cause__, OSError)


class FullBackend(CustomBackend):
    def add_bytes(self, data: bytes, *, pin: bool = True) -> str:
        raise OSError(28, "No space left on device")


def test_one_argument_factories_and_classes_register_too() -> None:
    seen: list[RouterDeps] = []

    def with_deps(deps: RouterDeps) -> CustomBackend:
        seen.append(deps)
        return CustomBackend()

    ipfs_backend_router.register_ipfs_backend("with_deps", with_deps)
    ipfs_backend_router.register_ipfs_backend("by_class", CustomBackend)
    cid = ipfs_backend_router.add_bytes(b"one", backend="with_deps")
    assert ipfs_backend_router.cat(cid, backend="with_deps") == b"one"
    assert len(seen) == 1 and isinstance(seen[0], RouterDeps)
    by_class = ipfs_backend_router.get_backend(backend="by_class")
    assert isinstance(by_class, PartialBackend) and by_class.name == "by_class"


def test_a_type_error_inside_a_factory_is_not_hidden() -> None:
    # Arity is read from the signature: a factory is called once, with what it takes, so a
    # TypeError it raises itself reaches the caller instead of a retry with other arguments.
    def zero() -> CustomBackend:
        raise TypeError("bug inside the zero-argument factory")

    def one(deps: RouterDeps) -> CustomBackend:
        raise TypeError("bug inside the one-argument factory")

    ipfs_backend_router.register_ipfs_backend("zero", zero)
    ipfs_backend_router.register_ipfs_backend("one", one)
    with pytest.raises(TypeError, match="bug inside the zero-argument factory"):
        ipfs_backend_router.get_backend(backend="zero")
    with pytest.raises(TypeError, match="bug inside the one-argument factory"):
        ipfs_backend_router.get_backend(backend="one")


def test_a_factory_that_takes_two_arguments_is_refused_when_registered() -> None:
    def two(deps: RouterDeps, extra: int) -> CustomBackend:
        return CustomBackend()

    with pytest.raises(InvalidInput, match="no argument or one"):
        ipfs_backend_router.register_ipfs_backend("two", two)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="not callable"):
        ipfs_backend_router.register_ipfs_backend("thing", CustomBackend())  # type: ignore[arg-type]
    assert "two" not in router.known_backends()


def test_objects_without_a_name_are_named_by_their_registration() -> None:
    mine = CustomBackend()
    ipfs_backend_router.set_default_ipfs_backend(mine)
    cid = ipfs_backend_router.add_bytes(b"to mine")
    assert mine.blocks[cid] == b"to mine"
    assert ipfs_backend_router.get_backend().name == "CustomBackend"
    assert router.selection().backend == "CustomBackend"
    other = CustomBackend()
    assert ipfs_backend_router.get_backend(backend=other).name == "CustomBackend"
    assert ipfs_backend_router.cat(ipfs_backend_router.add_bytes(b"o", backend=other),
                                   backend=other) == b"o"

    # Registered and built, then handed back as an instance: it keeps its registered name.
    ipfs_backend_router.register_ipfs_backend("mine", lambda: mine)
    built = ipfs_backend_router.get_backend(backend="mine")
    assert isinstance(built, PartialBackend) and built.wrapped is mine
    ipfs_backend_router.set_default_ipfs_backend(mine)
    assert router.selection().backend == "mine"
    ipfs_backend_router.set_default_ipfs_backend(None)
    assert router.selection().backend == "hf_cache"


class LyingBackend(CustomBackend):
    """Hands out identifiers and blocks that are not what it was given (as the replaced
    design's local backends did)."""

    def add_bytes(self, data: bytes, *, pin: bool = True) -> str:
        return "Qm" + hashlib.sha256(data).hexdigest()[:44]  # shaped like a CID, is none

    def block_put(self, data: bytes, *, codec: str = "raw") -> str:
        return super().add_bytes(data + b"!")

    def block_get(self, cid: str) -> bytes:
        return b"other bytes"


def test_a_lying_custom_backend_is_caught() -> None:
    ipfs_backend_router.register_ipfs_backend("liar", LyingBackend)
    with pytest.raises(IntegrityError, match="liar: add_bytes returned 'Qm"):
        ipfs_backend_router.add_bytes(b"data", backend="liar")
    with pytest.raises(IntegrityError, match="does not match"):
        ipfs_backend_router.block_put(b"data", backend="liar")
    real = ipfs_backend_router.block_put(b"data")  # the embedded repo's, right
    # The liar's wrong bytes are refused, and the read goes on to a backend that has them.
    assert ipfs_backend_router.block_get(real, backend="liar") == b"data"
    report = router.last_read()
    assert report is not None and report.backend == "hf_cache"
    assert "does not match" in report.failed["liar"]


def test_datasets_workflow_with_a_small_local_dataset(tmp_path: Path) -> None:
    rows = [{"id": str(i), "question": f"What is {i} + {i}?", "answers": {"text": [str(2 * i)]}}
            for i in range(100)]  # the guide's squad train[:100], made here

    # Store dataset to IPFS (the folder dataset.save_to_disk writes: data, info, state)
    sample = tmp_path / "squad_sample"
    sample.mkdir()
    (sample / "data-00000-of-00001.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in rows))
    (sample / "dataset_info.json").write_text(json.dumps({"dataset_name": "squad"}))
    (sample / "state.json").write_text(json.dumps(
        {"_data_files": [{"filename": "data-00000-of-00001.jsonl"}], "_split": "train[:100]"}))
    cid = ipfs_backend_router.add_path(str(sample), recursive=True)

    # Share CID, others can retrieve
    ipfs_backend_router.get_to_path(cid, output_path=str(tmp_path / "squad_retrieved"))
    retrieved = _load_from_disk(tmp_path / "squad_retrieved")

    assert retrieved == rows


def _load_from_disk(folder: Path) -> list[dict[str, Any]]:
    state = json.loads((folder / "state.json").read_text())
    return [json.loads(line) for entry in state["_data_files"]
            for line in (folder / entry["filename"]).read_text().splitlines()]


class TinyModel(ModelHubMixin):
    """A model as huggingface_hub saves and loads one: config.json from its init arguments,
    its weights in a file of their own."""

    def __init__(self, hidden_size: int = 4, vocab: list[str] | None = None) -> None:
        self.hidden_size = hidden_size
        self.vocab = vocab or []
        self.weights = b""

    def _save_pretrained(self, save_directory: Path) -> None:
        (save_directory / "model.bin").write_bytes(self.weights)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None,
                         cache_dir: str | Path | None, force_download: bool,
                         local_files_only: bool, token: str | bool | None,
                         **model_kwargs: Any) -> TinyModel:
        model = cls(**model_kwargs)
        model.weights = (Path(model_id) / "model.bin").read_bytes()
        return model


def test_transformers_workflow_with_a_small_local_model(tmp_path: Path) -> None:
    bert = tmp_path / "bert"

    # Save model locally
    model = TinyModel(hidden_size=8, vocab=["[PAD]", "[CLS]", "hello", "ipfs"])
    model.weights = os.urandom(600_000)  # three chunks
    model.save_pretrained(str(bert))

    # Store to IPFS
    cid = ipfs_backend_router.add_path(str(bert), recursive=True)
    print(f"Model CID: {cid}")

    # Retrieve from IPFS
    ipfs_backend_router.get_to_path(cid, output_path=str(tmp_path / "bert_from_ipfs"))
    model_retrieved = TinyModel.from_pretrained(str(tmp_path / "bert_from_ipfs"))

    assert (model_retrieved.hidden_size, model_retrieved.vocab) == (8, model.vocab)
    assert model_retrieved.weights == model.weights


def test_debug_mode_names_the_backend_in_use() -> None:
    # This will show backend selection and operations
    backend = ipfs_backend_router.get_backend()
    print(f"Using backend: {type(backend).__name__}")
    assert type(backend).__name__ == "HFCacheBackend"


def test_troubleshooting_cache_clear_selects_again_and_keeps_registrations(
        guide_environ: None) -> None:
    ipfs_backend_router.register_ipfs_backend("custom", lambda: CustomBackend())
    before = ipfs_backend_router._get_default_backend_cached()
    assert before.name == "hf_cache"
    ipfs_backend_router._get_default_backend_cached.cache_clear()
    os.environ["IPFS_BACKEND"] = "custom"
    after = ipfs_backend_router._get_default_backend_cached()
    assert after.name == "custom" and after is not before


def test_migration_from_the_older_router_block_put() -> None:
    data = b"a raw block"
    # New code (drop-in replacement)
    cid = ipfs_backend_router.block_put(data)
    assert ipfs_backend_router.block_get(cid) == data
    assert set(ipfs_backend_router.__all__) >= {
        "add_bytes", "cat", "pin", "unpin", "block_put", "block_get", "add_path",
        "get_to_path", "get_backend", "set_default_ipfs_backend", "register_ipfs_backend"}
    assert ipfs_backend_router.IPFSBackend is router.Backend


class OlderProtocolBackend(CustomBackend):
    """A backend written to the replaced router's own protocol, whose pin, unpin and
    get_to_path take only the CID and an output path, and return None."""

    def pin(self, cid: str) -> None:
        self.pinned[cid] = True

    def unpin(self, cid: str) -> None:
        self.pinned[cid] = False

    def get_to_path(self, cid: str, *, output_path: str) -> None:
        Path(output_path).write_bytes(self.cat(cid))  # by path, replacing what is there


def test_a_backend_of_the_older_protocol_pins_and_writes_within_our_rules(
        tmp_path: Path) -> None:
    ipfs_backend_router.register_ipfs_backend("older", OlderProtocolBackend)
    cid = ipfs_backend_router.add_bytes(b"older", pin=False, backend="older")
    ipfs_backend_router.pin(cid, backend="older")
    older = ipfs_backend_router.get_backend(backend="older")
    assert isinstance(older, PartialBackend) and isinstance(older.wrapped, CustomBackend)
    assert older.wrapped.pinned[cid] is True
    assert older.pin(cid).type == "recursive"
    ipfs_backend_router.unpin(cid, backend="older")
    assert older.wrapped.pinned[cid] is False

    out = tmp_path / "out.bin"
    assert ipfs_backend_router.get_to_path(cid, output_path=out, backend="older") is None
    assert out.read_bytes() == b"older"
    # Its get_to_path would replace what is there: without overwrite, refused before it runs.
    out.write_bytes(b"mine")
    with pytest.raises(TargetExists):
        ipfs_backend_router.get_to_path(cid, output_path=out, backend="older")
    assert out.read_bytes() == b"mine"
    older.get_to_path(cid, output_path=out, overwrite=True)
    assert out.read_bytes() == b"older"

    # A folder held open (how the tools write, by handle) is never handed to a backend that
    # writes by path: it is asked of the backends that write by handle, which lack the CID.
    held_at = tmp_path / "held" / "file.bin"
    (tmp_path / "held").mkdir()
    with OutputTarget.at(held_at) as held, pytest.raises(AllBackendsFailed) as info:
        router.Router(router.default_router().registry, "older").get_to_path(
            cid, output_path=held)
    assert isinstance(info.value.errors["older"], Unsupported)
    assert not held_at.exists()
