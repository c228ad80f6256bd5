"""The layout is the architecture: no import cycles, and no import that reaches a layer up.

The graph is read from the source (every ``import`` statement, at module level, inside
functions and under ``TYPE_CHECKING`` alike), so a cycle cannot hide behind a late import.
The layers, lowest first, are drawn in ``backends/__init__.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"backends": "ipfs_mcp.backends", "p2p": "ipfs_mcp.p2p", "tools": "ipfs_mcp.tools",
           "server": "ipfs_mcp.server", "prompts": "ipfs_mcp.prompts"}

# Module prefix -> rank. A module may import only modules of its own rank or lower; the
# longest matching prefix decides. Same-rank packages may import each other only where
# ALSO_ALLOWED does not forbid it (no cycle is allowed anywhere).
RANKS: dict[str, int] = {
    "ipfs_mcp.backends.errors": 0,
    "ipfs_mcp.backends.core": 1,
    "ipfs_mcp.backends.cancel": 2,
    "ipfs_mcp.backends.fetcher": 2,
    "ipfs_mcp.backends.network": 2,
    "ipfs_mcp.backends.names": 2,
    "ipfs_mcp.backends.settings": 2,
    "ipfs_mcp.backends.http_answers": 2,
    "ipfs_mcp.backends.repo": 3,
    "ipfs_mcp.backends.backend": 4,
    "ipfs_mcp.backends.retrieval": 5,
    "ipfs_mcp.backends.hub": 5,
    "ipfs_mcp.backends.remote": 6,
    "ipfs_mcp.backends.hf_cache": 7,
    "ipfs_mcp.backends.router": 8,
    # the seed API under the replaced router's module name: the Router's functions, re-exported
    "ipfs_mcp.backends.ipfs_backend_router": 8,
    "ipfs_mcp.backends": 9,  # the package itself: the map, nothing imported
    "ipfs_mcp.p2p": 10,
    "ipfs_mcp.tools": 11,
    "ipfs_mcp.prompts": 11,
    "ipfs_mcp.server": 12,
}

# The P2P node speaks to the backends only through the protocols the server hands it, so it
# may use the codecs and the error tree and nothing else of theirs.
P2P_MAY_IMPORT = ("ipfs_mcp.backends.core", "ipfs_mcp.backends.errors")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for source in (ROOT / folder).rglob("*.py"):
            rel = source.relative_to(ROOT / folder).with_suffix("")
            parts = [*package.split("."), *rel.parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = source
    return found


def _imports(name: str, source: Path, known: set[str]) -> set[str]:
    tree = ast.parse(source.read_text(), filename=str(source))
    is_package = source.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                targets.add(sub if sub in known else module)
    edges = set()
    for target in targets:
        # ``import a.b.c`` names a module; keep the longest known prefix
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            edges.add(target)
    return edges


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _rank(module: str) -> int:
    best = max((p for p in RANKS if module == p or module.startswith(p + ".")), key=len)
    return RANKS[best]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_graph_is_read_from_the_source() -> None:
    graph = _graph()
    # a few edges that must be seen, or the parser has gone blind
    assert "ipfs_mcp.backends.errors" in graph["ipfs_mcp.backends.core.cids"]
    assert "ipfs_mcp.backends.router" in graph["ipfs_mcp.server.state"]
    assert "ipfs_mcp.backends.core.dagpb" in graph["ipfs_mcp.backends.core.importer"]


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_reaches_a_layer_up() -> None:
    upward = [f"{name} -> {target}" for name, targets in _graph().items()
              for target in targets if _rank(target) > _rank(name)]
    assert upward == []


def _crossings(importer: str, scope: str, allowed: tuple[str, ...]) -> list[str]:
    """Imports from modules under ``importer`` into ``scope`` that no ``allowed`` prefix covers."""
    return [f"{name} -> {target}" for name, targets in _graph().items()
            if name.startswith(importer)
            for target in targets
            if target.startswith(scope) and not target.startswith(allowed)]


def test_p2p_uses_only_the_codecs_and_the_error_tree() -> None:
    assert _crossings("ipfs_mcp.p2p", "ipfs_mcp.backends", P2P_MAY_IMPORT) == []


def test_core_imports_nothing_of_ours_but_itself_and_the_error_tree() -> None:
    assert _crossings("ipfs_mcp.backends.core", "ipfs_mcp.",
                      ("ipfs_mcp.backends.core", "ipfs_mcp.backends.errors")) == []
