"""The scene the write attacks play in, shared by the MCP, stdio and CLI tests.

A home folder holds the user's project (``work``) and the HuggingFace home, whose hub cache
already has a model, ``victim/m``, laid out as ``huggingface_hub`` lays out a download. The
attacks are the ones measured in the security issue: each names a place to write that the
agent must not reach, or an existing revision it must not move.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

VICTIM = "victim/m"
VICTIM_COMMIT = "a" * 40
VICTIM_FILES = {"config.json": b'{"model_type": "victim"}\n',
                "model.safetensors": b"the real weights " * 1000}
NOTES = b"the user's own notes\n"
ATTACKER_TEXT = "attacker bytes"


@dataclass(frozen=True)
class Scene:
    home: Path
    work: Path
    hf_home: Path
    hub: Path
    repo: Path
    victim: Path
    victim_blob: Path
    notes: Path
    evil_model: Path

    def env(self, allow: list[Path]) -> dict[str, str]:
        """The environment of a server or CLI run in this scene."""
        env = {**os.environ, "HF_HOME": str(self.hf_home), "HF_HUB_OFFLINE": "1",
               "IPFS_MCP_ALLOW_ROOTS": os.pathsep.join(str(p) for p in allow)}
        env.pop("HF_HUB_CACHE", None)
        return env


def make_scene(base: Path) -> Scene:
    home = base / "home"
    work = home / "work"
    hf_home = home / ".cache" / "huggingface"
    hub = hf_home / "hub"
    victim = hub / "models--victim--m"
    (victim / "refs").mkdir(parents=True)
    (victim / "refs" / "main").write_text(VICTIM_COMMIT)
    (victim / "blobs").mkdir()
    for rel, data in VICTIM_FILES.items():
        etag = hashlib.sha256(data).hexdigest()
        (victim / "blobs" / etag).write_bytes(data)
        blob = victim / "blobs" / etag
        link = victim / "snapshots" / VICTIM_COMMIT / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(victim / "blobs" / etag, link.parent))
    work.mkdir(parents=True)
    notes = work / "notes.txt"
    notes.write_bytes(NOTES)
    evil = work / "evil"
    evil.mkdir()
    (evil / "config.json").write_text('{"model_type": "evil"}\n')
    (evil / "model.safetensors").write_bytes(b"attacker weights " * 100)
    # Attack 3: a folder inside the project that is a symlink into the hub cache, and a
    # dangling link whose target would be a new blob.
    (work / "models-link").symlink_to(victim)
    (work / "dangling").symlink_to(victim / "blobs" / ("d" * 64))
    return Scene(home=home, work=work, hf_home=hf_home, hub=hub, repo=hf_home / "ipfs",
                 victim=victim, victim_blob=blob, notes=notes, evil_model=evil)


def write_attacks(scene: Scene, cid: str, first_root: Path) -> dict[str, dict[str, object]]:
    """Attacks 1, 2, 3 and 5 of the issue (and the IPFS repo), as fetch_cid arguments;
    relative paths are relative to ``first_root``, the first writable root."""
    blobs = scene.victim / "blobs"
    relative = os.path.relpath(scene.work / "models-link" / "refs" / "main", first_root)
    attacks: dict[str, dict[str, object]] = {
        "overwrite a cached blob": {"cid": cid, "output_path": str(scene.victim_blob)},
        "overwrite a cached blob, overwrite=true": {
            "cid": cid, "output_path": str(scene.victim_blob), "overwrite": True},
        "a new file in blobs/": {"cid": cid, "output_path": str(blobs / ("0" * 64))},
        "a folder symlinked into the hub cache": {
            "cid": cid, "output_path": str(scene.work / "models-link" / "blobs" / ("1" * 64)),
            "overwrite": True},
        "a dangling symlink into blobs/": {"cid": cid, "output_path": str(scene.work / "dangling"),
                                           "overwrite": True},
        "the IPFS repo": {"cid": cid, "output_path": str(scene.repo / "planted"),
                          "overwrite": True},
        "a folder that holds the hub cache": {"cid": cid, "output_path": str(scene.hf_home),
                                              "overwrite": True},
        "the user's file": {"cid": cid, "output_path": str(scene.notes)},
    }
    if ".." not in Path(relative).parts:  # ".." is refused outright, whatever follows
        attacks["a relative path through the symlink"] = {
            "cid": cid, "output_path": relative, "overwrite": True}
    return attacks


def tree_digest(folder: Path) -> str:
    """One hash over every name, file byte and symlink target below ``folder``."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            path = Path(dirpath) / name
            digest.update(os.fsencode(path.relative_to(folder)) + b"\0")
            if path.is_symlink():
                digest.update(b"L" + os.fsencode(os.readlink(path)))
            elif path.is_file():
                digest.update(b"F" + path.read_bytes())
            else:
                digest.update(b"D")
    return digest.hexdigest()
