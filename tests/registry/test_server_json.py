"""The MCP Registry entry: ``server.json`` is valid against the registry's published schema
(vendored here, see README.md), names the PyPI package at the version pyproject.toml gives,
offers stdio and streamable HTTP, and its name is the README's ``mcp-name:`` marker (the
registry reads that marker from the PyPI page to prove the package is ours)."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs; a test-only dependency

HERE = Path(__file__).parent
TOP = HERE.parent.parent
SCHEMA = json.loads((HERE / "server.schema.json").read_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def _server() -> dict[str, Any]:
    entry: dict[str, Any] = json.loads((TOP / "server.json").read_text())
    return entry


def _errors(entry: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in VALIDATOR.iter_errors(entry)]


def test_server_json_is_valid_against_the_published_schema() -> None:
    entry = _server()
    assert entry["$schema"] == SCHEMA["$id"]  # written for the schema vendored here
    assert _errors(entry) == []


def test_the_schema_refuses_what_the_registry_refuses() -> None:
    """The validator really checks: a name without its namespace, a package pinned to
    "latest" and a description over 100 characters are each refused."""
    for path, value in ((("name",), "ipfs-mcp"), (("packages", 0, "version"), "latest"),
                        (("description",), "x" * 101)):
        entry = copy.deepcopy(_server())
        target: Any = entry
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        assert _errors(entry), path


def test_versions_and_package_match_pyproject() -> None:
    project = tomllib.loads((TOP / "pyproject.toml").read_text())["project"]
    entry = _server()
    assert entry["version"] == project["version"]
    assert entry["packages"], "no package"
    for package in entry["packages"]:
        assert package["registryType"] == "pypi"
        assert package["identifier"] == project["name"]
        assert package["version"] == project["version"]
    transports = {package["transport"]["type"] for package in entry["packages"]}
    assert transports == {"stdio", "streamable-http"}


def test_the_readme_marker_names_this_server() -> None:
    markers = re.findall(r"mcp-name:\s*(\S+)", (TOP / "README.md").read_text())
    assert markers == [_server()["name"]]
    assert re.fullmatch(r"io\.github\.[A-Za-z0-9-]+/ipfs-mcp", markers[0])
