"""``ipfs-mcp``: the command line, for people and scripts.

``ipfs-mcp serve`` runs the MCP server; the other commands work on the same repo and
backend the server uses, in the spelling of Kubo's ``ipfs`` CLI. Errors print one line to
stderr and exit non-zero (2 for an unexpected one: a bug); a user never sees a traceback
unless ``--debug`` asks for it. Progress bars appear only on a
terminal; ``--json`` prints machine-readable output.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import traceback
import typing
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

from ipfs_mcp.backends import router
from ipfs_mcp.backends.core.cids import cid_str
from ipfs_mcp.backends.core.rooted import OutputTarget
from ipfs_mcp.backends.errors import InvalidInput, IpfsMcpError, UnsafePath, Unsupported
from ipfs_mcp.backends.hub import models as hub
from ipfs_mcp.backends.repo.repository import Repo
from ipfs_mcp.backends.router import Router
from ipfs_mcp.backends.settings import BackendSettings
from ipfs_mcp.tools.import_options import ImportArgs
from ipfs_mcp.tools.roots import AllowedRoots, describe_existing

from . import cli_fetch, cli_names, cli_pubsub
from .cli_errors import explain
from .cli_output import checked_output, output_of, write_bytes
from .version import installed_version


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=None, default=str))


def _print_rows(as_json: bool, rows: list[dict[str, Any]],
                line: Callable[[dict[str, Any]], str]) -> None:
    """A listing: one JSON array (``--json``), or one line per row for people."""
    if as_json:
        _print_json(rows)
    else:
        for row in rows:
            print(line(row))


@contextlib.contextmanager
def _progress(description: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on a terminal (stderr), nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from .cli_progress import progress_bars

    with progress_bars(sys.stderr) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _router() -> Router:
    """The Router every command works through: the seed API's default one, built from the
    environment (the same settings the server reads)."""
    return router.default_router()


def _embedded_repo(backend: Router, what: str) -> Repo:
    """The embedded repo, for the commands that only it can serve.

    Raises:
        Unsupported: the backend in use keeps no embedded repo.
    """
    repo = backend.repo
    if repo is None:
        raise Unsupported(backend.name, f"`{what}`", "it works on the embedded hf_cache repo")
    return repo


# -- commands -------------------------------------------------------------------------------
def _check_references(path: Path, hub_cache: Path, hidden: bool) -> None:
    """A nocopy add refers only to files inside the path named or the hub cache: a symlink
    that leads out is refused, as in the server's allowed roots.

    Raises:
        UnsafePath: a file resolves outside both.
    """
    # Absolute, as typed: the roots' check reads a relative path against its first root,
    # which would put a relative folder in front of itself (data/site/data/site/...).
    path = path.absolute()
    real = path.resolve()
    try:
        AllowedRoots.of(read=[real if real.is_dir() else real.parent, hub_cache]
                        ).check_reference_tree(path, hidden=hidden)
    except UnsafePath as exc:  # the MCP tools' words ("allowed roots") in the CLI's
        if "allowed" not in str(exc):
            raise
        raise UnsafePath(f"--nocopy keeps references only to files inside {path} or the "
                         f"HuggingFace hub cache, and {path} has a link leading elsewhere; "
                         "add it without --nocopy to copy the bytes instead") from exc


def cmd_add(args: argparse.Namespace) -> int:
    if args.nocopy and args.copy:
        raise InvalidInput("--nocopy and --copy contradict each other")
    options = _import_args(args).to_options(wrap_with_directory=args.wrap_with_directory,
                                            hidden=args.hidden)
    backend = _router()
    results = []
    for raw_path in args.paths:
        path = Path(raw_path)
        if args.hf:
            from ipfs_mcp.backends.hub.layout import parse_source

            repo_id, revision = parse_source(raw_path)
            # From the hub cache: by reference unless --copy (see hub.nocopy_default).
            nocopy = hub.nocopy_default(backend, False if args.copy else
                                        (True if args.nocopy else None))
            with _progress(f"adding {raw_path}", None) as progress:
                result = hub.add_model(backend, backend.settings.hf_hub_cache, repo_id,
                                       revision, pin=args.pin, options=options,
                                       progress=progress, nocopy=nocopy)
        else:
            nocopy = args.nocopy
            if nocopy:
                _check_references(path, backend.settings.hf_hub_cache, args.hidden)
            with _progress(f"adding {path.name}", _tree_size(path)) as progress:
                result = backend.add_path(
                    path, recursive=args.recursive, pin=args.pin, progress=progress,
                    options=replace(options, nocopy=True) if nocopy else options)
        results.append((raw_path, result, nocopy))
    for raw_path, result, nocopy in results:
        if args.json:
            _print_json({"path": raw_path, "cid": cid_str(result.root), "size": result.size,
                         "nocopy": nocopy,
                         "entries": [{"path": e.path, "cid": cid_str(e.cid), "size": e.size,
                                      "kind": e.kind} for e in result.entries]})
        elif args.quiet:
            print(cid_str(result.root))
        else:
            for entry in result.entries:
                name = f"{Path(raw_path).name}/{entry.path}" if entry.path else Path(raw_path).name
                print(f"added {cid_str(entry.cid)} {name}")
            if not result.entries:
                print(f"added {cid_str(result.root)} {Path(raw_path).name}")
            if nocopy:
                print(f"{raw_path}: kept by reference (nocopy), not copied", file=sys.stderr)
    return 0


def _binary(args: argparse.Namespace, settings: BackendSettings,
            write: Callable[[BinaryIO], None], *, to_terminal: bool = True) -> int:
    """The bytes of ``cat``, ``block get`` and ``dag export``: to stdout, or to ``-o FILE``.
    With ``--json`` stdout carries a description of what was written, so the bytes need
    ``-o``; the description is ``{"cid", "output", "bytes"}``.

    Raises:
        InvalidInput: ``--json`` without ``-o``; UnsafePath and InvalidInput as
            :func:`.cli_output.checked_output`.
        IpfsMcpError: ``to_terminal`` is false and stdout is a terminal.
    """
    if args.output is None:
        if args.json:
            raise InvalidInput(f"--json prints a description of what was written, not the "
                               f"bytes: add -o FILE to `{args.command}` to say where they go")
        if not to_terminal and sys.stdout.isatty():
            raise IpfsMcpError("refusing to write a CAR to a terminal; use -o FILE")
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    dest = checked_output(settings, args.output)
    size = write_bytes(dest, write)
    if args.json:
        _print_json({"cid": args.cid, "output": str(dest), "bytes": size})
    else:
        print(f"wrote {size} bytes to {dest}", file=sys.stderr)
    return 0


def cmd_cat(args: argparse.Namespace) -> int:
    backend = _router()

    def write(out: BinaryIO) -> None:
        for piece in backend.cat_stream(args.cid, offset=args.offset, length=args.length):
            out.write(piece)

    return _binary(args, backend.settings, write)


def cmd_get(args: argparse.Namespace) -> int:
    if cli_fetch.wanted(args):  # a node of its own (--peer, ...), or into the hub cache
        return cli_fetch.cmd_get(args)
    backend = _router()
    output = Path(output_of(args.cid, args.output))
    dest = checked_output(backend.settings, str(output))
    # Kubo's `get -o` replaces what is there; a person asked for it, but is told.
    replaced = describe_existing(dest)
    max_bytes = args.max_write_bytes or backend.settings.max_write
    with OutputTarget.at(dest, max_entries=backend.settings.max_write_files) as held:
        entry = backend.stat(args.cid)
        with _progress(f"saving {output}", entry.size or None) as progress:
            entry = backend.get_to_path(args.cid, output_path=held, overwrite=True,
                                        max_bytes=max_bytes, progress=progress)
    if replaced:
        print(f"replaced {replaced} at {dest}", file=sys.stderr)
    if args.json:
        _print_json({"cid": args.cid, "output": str(output), "kind": entry.kind,
                     "replaced": replaced})
    else:
        print(f"Saved {entry.kind} {args.cid} to {output}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    _print_rows(args.json, [{"name": e.name, "cid": cid_str(e.cid), "size": e.size,
                             "kind": e.kind} for e in _router().ls(args.cid)],
                lambda e: f"{e['cid']} {e['size']} {e['name']}"
                          f"{'/' if e['kind'] == 'directory' else ''}")
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    backend = _router()
    if args.pin_cmd == "add":
        kind = "recursive" if args.recursive else "direct"
        for cid in args.cids:
            backend.pin(cid, recursive=args.recursive)
        _print_rows(args.json, [{"cid": cid, "pinned": True, "type": kind}
                                for cid in args.cids],
                    lambda p: f"pinned {p['cid']} "
                              f"{'recursively' if args.recursive else 'directly'}")
    elif args.pin_cmd == "rm":
        for cid in args.cids:
            backend.unpin(cid)
        _print_rows(args.json, [{"cid": cid, "pinned": False} for cid in args.cids],
                    lambda p: f"unpinned {p['cid']}")
    else:
        _print_rows(args.json, [{"cid": cid_str(p.cid), "type": p.type, "name": p.name,
                                 "size": p.size} for p in backend.pins()],
                    lambda p: f"{p['cid']} {p['type']}{' ' + p['name'] if p['name'] else ''}")
    return 0


def cmd_block(args: argparse.Namespace) -> int:
    backend = _router()
    if args.block_cmd == "put":
        data = Path(args.file).read_bytes() if args.file else sys.stdin.buffer.read()
        cid = backend.block_put(data, codec=args.codec)
        if args.json:
            _print_json({"cid": str(cid), "size": len(data), "codec": args.codec})
        else:
            print(cid)
        return 0
    data = backend.block_get(args.cid)

    def write(out: BinaryIO) -> None:
        out.write(data)

    return _binary(args, backend.settings, write)


def cmd_dag(args: argparse.Namespace) -> int:
    backend = _router()
    if args.dag_cmd == "export":
        def export(out: BinaryIO) -> None:
            backend.dag_export(args.cid, out)

        return _binary(args, backend.settings, export, to_terminal=False)
    for name in args.files:
        with open(name, "rb") as stream:
            report = backend.dag_import(stream, pin_roots=args.pin_roots)
        if args.json:
            _print_json({"file": name, "roots": [cid_str(r) for r in report.roots],
                         "blocks": report.blocks, "bytes": report.bytes})
        else:
            for root in report.roots:
                print(f"pinned root {cid_str(root)}" if args.pin_roots else cid_str(root))
            print(f"imported {report.blocks} blocks ({report.bytes} bytes) from {name}")
    return 0


def cmd_repo(args: argparse.Namespace) -> int:
    repo = _embedded_repo(_router(), f"repo {args.repo_cmd}")
    if args.repo_cmd == "stat":
        stat = repo.stat()
        if args.json:
            _print_json(stat.__dict__)
        else:
            print(f"path:      {stat.path}\nblocks:    {stat.blocks}\nsize:      {stat.size}\n"
                  f"pins:      {stat.pins}\nfree disk: {stat.free_disk}")
    elif args.repo_cmd == "gc":
        report = repo.gc(on_wait=lambda: print("waiting for an add or pin in progress...",
                                               file=sys.stderr))
        if args.json:
            _print_json(report.__dict__)
        else:
            print(f"removed {report.removed} blocks, freed {report.freed} bytes, "
                  f"kept {report.kept}")
            for cid in report.missing:
                print(f"warning: pinned {cid} is missing blocks", file=sys.stderr)
    else:
        from dataclasses import asdict

        report = repo.verify(remove_bad_blocks=args.remove_bad_blocks)
        if args.json:
            _print_json({"ok": report.ok, **asdict(report)})
        else:
            for bad in report.removed:
                print(f"removed bad block {bad.cid} ({bad.path})")
            for hole in report.missing:
                print(f"missing: {hole.cid} ({hole.kind}), needed by pin {', '.join(hole.pins)}")
            for bad in report.corrupt:
                print(f"corrupt: {bad.cid} set aside at {bad.path}")
            for ref in report.bad_references:
                print(f"bad reference: {ref.status} {ref.cid} {ref.path} offset {ref.offset}")
            for ref in report.removed_references:
                print(f"dropped reference {ref.cid} ({ref.status}: {ref.path})")
            print(f"checked {report.checked} blocks and {report.pins} pins: "
                  f"{len(report.missing)} missing, {len(report.corrupt)} corrupt"
                  f"{'' if report.ok else ' (repo damaged)'}")
        return 0 if report.ok else 2
    return 0


def cmd_filestore(args: argparse.Namespace) -> int:
    """Kubo's ``ipfs filestore ls`` / ``verify``: one line per reference."""
    repo = _embedded_repo(_router(), f"filestore {args.filestore_cmd}")
    if args.filestore_cmd == "ls":
        _print_rows(args.json, [{"cid": r.cid, "size": r.size, "path": r.path,
                                 "offset": r.offset} for r in repo.filestore.ls()],
                    "{cid} {size:6d} {path} {offset}".format_map)  # Kubo's columns
        return 0
    results = repo.filestore.verify(remove_bad_blocks=args.remove_bad_blocks)
    bad = [r for r in results if not r.ok]
    _print_rows(args.json, [{"status": r.status, "cid": r.cid, "size": r.size, "path": r.path,
                             "offset": r.offset, "detail": r.detail} for r in results],
                "{status:<7} {cid} {size:6d} {path} {offset}".format_map)
    if bad and args.remove_bad_blocks:
        print(f"removed {len(bad)} bad reference(s); the files were left as they are; run "
              "`ipfs-mcp repo verify` to see which pins need them", file=sys.stderr)
        return 0
    if bad:
        print(f"{len(bad)} of {len(results)} reference(s) bad; run `ipfs-mcp repo verify` "
              "to see which pins they break", file=sys.stderr)
        return 2
    return 0


def cmd_backend(args: argparse.Namespace) -> int:
    sel = _router().selection()
    if args.json:
        _print_json(sel.__dict__)
    else:
        print(f"backend: {sel.backend} ({sel.reason})")
        for name, why in sel.skipped.items():
            print(f"  skipped {name}: {why}")
    return 0


# -- parser ---------------------------------------------------------------------------------
_SHORT_FLAGS = {"chunker": "-s", "trickle": "-t"}  # as in Kubo's `ipfs add`


def _add_import_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per field of the import options the MCP tools take: the same names (Kubo's
    spelling), help text and choices, so the two cannot drift apart."""
    for name, info in ImportArgs.model_fields.items():
        flags = [f"--{name.replace('_', '-')}"]
        if name in _SHORT_FLAGS:
            flags.insert(0, _SHORT_FLAGS[name])
        kind = next(t for t in typing.get_args(info.annotation) if t is not type(None))
        spec: dict[str, Any] = {"default": None, "help": info.description}
        if kind is bool:
            spec["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is typing.Literal:
            choices = typing.get_args(kind)
            spec.update(choices=choices, type=type(choices[0]))
        elif kind is int:
            spec.update(type=int, metavar="N")
        parser.add_argument(*flags, **spec)


def _import_args(args: argparse.Namespace) -> ImportArgs:
    """The import flags as the model the tools take. Not validated here: the importer checks
    the values, as it does for every caller, with its own messages."""
    return ImportArgs.model_construct(**{name: getattr(args, name)
                                         for name in ImportArgs.model_fields})


_JSON_HELP = "machine-readable output: one JSON value on stdout"
_CID_HELP = "a CID (Qm... or bafy...), optionally followed by /path/inside"
_OUTPUT_HELP = ("write the bytes to this file instead of stdout (its folder must exist); "
                "needed with --json, which then describes what was written")


class _Commands:
    """Adds subcommands, each with a description and a ``--json`` flag (every command has
    one: a listing or a report as JSON, or, for commands whose output is bytes, a
    description of what was written to ``-o``)."""

    def __init__(self, sub: Any) -> None:
        self.sub = sub

    def add(self, name: str, help_: str, func: Callable[[argparse.Namespace], int] | None
            = None, *, json_flag: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = self.sub.add_parser(name, help=help_, description=help_)
        if func is not None:
            p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help=_JSON_HELP)
        return p

    def group(self, name: str, help_: str, func: Callable[[argparse.Namespace], int],
              dest: str) -> _Commands:
        """A command with subcommands of its own (``pin add``), all run by ``func``."""
        p = self.add(name, help_, func, json_flag=False)
        return _Commands(p.add_subparsers(dest=dest, required=True, metavar="COMMAND"))


def _daemon_run(args: argparse.Namespace) -> int:
    # The daemon (and so the MCP SDK, a couple of seconds to import) loads only for the
    # commands that run it: every other command starts that much sooner.
    from . import daemon

    return daemon.run(args)


def _daemon_id(args: argparse.Namespace) -> int:
    from . import daemon

    return daemon.cmd_id(args)


def _add_server_commands(commands: _Commands) -> None:
    from . import serve

    p = commands.add("serve", "run the MCP server (stdio by default)", serve.run,
                     json_flag=False)
    serve.add_arguments(p)
    p = commands.add("daemon", "run the node, the gateway and MCP over HTTP without stdin "
                     "(for & or a service manager); stop it with SIGTERM or Ctrl-C",
                     _daemon_run, json_flag=False)
    serve.add_arguments(p)
    p.add_argument("--json", action="store_true",
                   help="print the card at start as one JSON line (as `id --json` does)")
    commands.add("id", "show the node's peer id, addresses and role, and the running "
                 "daemon's gateway and MCP URLs (stopped: the addresses it would use)",
                 _daemon_id)


def _add_content_commands(commands: _Commands) -> None:
    p = commands.add("add", "add files or folders (CIDs identical to `ipfs add`)", cmd_add)
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to add")
    p.add_argument("-r", "--recursive", action="store_true", help="add folders recursively")
    _add_import_flags(p)
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                   help="pin what is added, so gc keeps it (default: pin)")
    p.add_argument("-w", "--wrap-with-directory", action="store_true",
                   help="wrap the files in a folder, so their names are kept")
    p.add_argument("-H", "--hidden", action="store_true", help="include dotfiles")
    p.add_argument("-Q", "--quiet", action="store_true", help="print only the root CID")
    p.add_argument("--hf", action="store_true",
                   help="PATH is a HuggingFace repo id[@revision] from the local hub cache")
    p.add_argument("--nocopy", action="store_true",
                   help="keep the leaves as references into the files, not copies (implies "
                        "--raw-leaves); the default for --hf on the embedded repo")
    p.add_argument("--copy", action="store_true",
                   help="with --hf: copy the bytes into the repo instead of referencing them")

    p = commands.add("cat", "write a file's bytes to stdout (or -o FILE)", cmd_cat)
    p.add_argument("cid", help=_CID_HELP)
    p.add_argument("-o", "--output", help=_OUTPUT_HELP)
    p.add_argument("--offset", type=int, default=0, metavar="BYTES",
                   help="start this many bytes into the file")
    p.add_argument("--length", type=int, default=None, metavar="BYTES",
                   help="write at most this many bytes")

    p = commands.add("get", "save a file or folder", cmd_get)
    p.add_argument("cid", help=_CID_HELP)
    p.add_argument("-o", "--output", help="where to write (default: the CID, in the current "
                   "folder); its folder must exist; what is there is replaced")
    p.add_argument("--max-write-bytes", type=int, metavar="BYTES", default=None,
                   help="refuse content declaring more (env IPFS_MCP_MAX_WRITE; default 90%% "
                        "of the free space at the target)")
    cli_fetch.add_arguments(p)

    p = commands.add("ls", "list a folder", cmd_ls)
    p.add_argument("cid", help=_CID_HELP)


def _add_store_commands(commands: _Commands) -> None:
    pins = commands.group("pin", "manage pins", cmd_pin, "pin_cmd")
    q = pins.add("add", "pin CIDs, so gc keeps them")
    q.add_argument("cids", nargs="+", metavar="CID", help="what to pin")
    q.add_argument("--recursive", action=argparse.BooleanOptionalAction, default=True,
                   help="pin the whole DAG (default), or with --no-recursive the root alone")
    pins.add("rm", "unpin CIDs (gc may then remove them)").add_argument(
        "cids", nargs="+", metavar="CID", help="what to unpin")
    pins.add("ls", "list the pins")

    blocks = commands.group("block", "raw blocks", cmd_block, "block_cmd")
    q = blocks.add("put", "store one block; print its CID")
    q.add_argument("file", nargs="?", help="the block's bytes (default: stdin)")
    q.add_argument("--codec", default="raw", choices=("raw", "dag-pb", "dag-cbor"),
                   help="the codec its CID names (default raw)")
    q = blocks.add("get", "write one block's bytes to stdout (or -o FILE)")
    q.add_argument("cid", help="the block's CID")
    q.add_argument("-o", "--output", help=_OUTPUT_HELP)

    dags = commands.group("dag", "CAR export and import", cmd_dag, "dag_cmd")
    q = dags.add("export", "write a DAG as a CAR file")
    q.add_argument("cid", help=_CID_HELP)
    q.add_argument("-o", "--output", help="the CAR file (default: stdout, never a terminal); "
                   "needed with --json")
    q = dags.add("import", "store the blocks of CAR files")
    q.add_argument("files", nargs="+", metavar="CAR", help="CAR files to import")
    q.add_argument("--pin-roots", action=argparse.BooleanOptionalAction, default=True,
                   help="pin the CARs' roots (default)")


def _add_repo_commands(commands: _Commands) -> None:
    repo = commands.group("repo", "the embedded repo", cmd_repo, "repo_cmd")
    repo.add("stat", "blocks, size, pins and free disk of the repo")
    repo.add("gc", "remove the blocks no pin needs")
    q = repo.add("verify", "rehash every block and check that every pinned DAG is complete; "
                 "exit status 2 while a block is missing or corrupt")
    q.add_argument("--remove-bad-blocks", "--remove", action="store_true",
                   help="delete the blocks set aside as corrupt (in quarantine/)")

    store = commands.group("filestore", "leaves kept by reference (nocopy)", cmd_filestore,
                           "filestore_cmd")
    store.add("ls", "list every reference: CID size path offset")
    q = store.add("verify", "re-read and rehash every reference: status CID size path offset "
                  "(ok, changed, no-file, error, missing); exit status 2 while any is bad")
    q.add_argument("--remove-bad-blocks", action="store_true",
                   help="drop the bad references (never the files)")

    commands.add("backend", "show the backend in use and why", cmd_backend)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="ipfs-mcp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true",
                        help="on an error, also print its Python traceback")
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}",
                        help="print the version and exit")
    commands = _Commands(parser.add_subparsers(dest="command", required=True,
                                               metavar="COMMAND"))
    _add_server_commands(commands)
    _add_content_commands(commands)
    _add_store_commands(commands)
    _add_repo_commands(commands)
    cli_names.add_commands(commands)
    cli_pubsub.add_commands(commands)
    return parser


class _OneLineParser(argparse.ArgumentParser):
    """Usage mistakes as one line and a pointer to ``--help``, not a usage block (for every
    subcommand too: argparse builds them with the parser's own class)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"Error: {message} (see `{self.prog} --help`)\n")


def _error_line(text: str) -> None:
    """One line on stderr, whatever line breaks the message carries."""
    print("Error: " + " ".join(part.strip() for part in text.splitlines() if part.strip()),
          file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Errors are one line on stderr: exit status 1 for the project's own
    errors and the OS's, 2 for anything unexpected (a bug); ``--debug`` adds the traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): nothing left to say
        return 0
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        return _report(exc)


def _report(exc: Exception) -> int:
    """Print ``exc`` as one line; the exit status it deserves."""
    if isinstance(exc, IpfsMcpError):
        _error_line(explain(exc))
        return 1
    if isinstance(exc, OSError):  # disk full, permission denied: the OS's words and the path
        _error_line(f"{exc.strerror or exc}"
                    f"{': ' + str(exc.filename) if exc.filename else ''}")
        return 1
    _error_line(f"unexpected {type(exc).__name__}: {exc} (a bug in ipfs-mcp; run with "
                "--debug for the traceback)")
    return 2


if __name__ == "__main__":
    sys.exit(main())
