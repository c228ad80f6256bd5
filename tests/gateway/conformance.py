"""Running ipfs/gateway-conformance v0.13.2 against our gateway, and reading its report.

The binary is built with :func:`tests.interop.gobuild.go_install`. The suite runs ``go test``
inside its own module folder (``GATEWAY_CONFORMANCE_HOME``): the module cache's copy of
the version built. Where the module proxy does not serve that version, a checkout of the
v0.13.2 tag named by ``GATEWAY_CONFORMANCE_HOME`` is built instead (``go build`` there).

The report (``--json``) is ``go test -json`` output: one event per line. A *case* is a
test at the second level (``TestTrustlessRaw/GET_with_...``); its checks are the levels
below it. A case fails when it or any of its checks fails. ``subtests`` counts every test
below the top level, cases and checks alike (the figures the gateway's docs record).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.interop.gobuild import GoBuildError, go_install, interop_skip

MODULE = "github.com/ipfs/gateway-conformance"
VERSION = "v0.13.2"
BUILD_TIMEOUT = 1800.0
RUN_TIMEOUT = 600.0
# Read once: a checkout of the suite's source, used when the proxy cannot serve it.
_HOME_OVERRIDE = os.environ.get("GATEWAY_CONFORMANCE_HOME", "").strip() or None


@dataclass(frozen=True)
class Suite:
    binary: Path
    home: Path  # the module folder the binary runs `go test` in

    def env(self) -> dict[str, str]:
        return {**os.environ, "GATEWAY_CONFORMANCE_HOME": str(self.home)}


def _go(args: list[str], cwd: Path, timeout: float) -> str:
    proc = subprocess.run(["go", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise GoBuildError(f"go {' '.join(args)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout.strip()


def suite(build_dir: Path) -> Suite:
    """The suite's binary and module folder; skips (fails under CI) when neither the module
    proxy nor a checkout can provide it."""
    try:
        binary = go_install(f"{MODULE}/cmd/gateway-conformance", VERSION,
                            "gateway-conformance")
        modcache = Path(_go(["env", "GOMODCACHE"], build_dir, 60))
        home = modcache / f"{MODULE}@{VERSION}"
        if (home / "tests").is_dir():
            return Suite(binary, home)
        proxy_error = f"the module cache has no {home}"
    except GoBuildError as exc:
        proxy_error = str(exc).splitlines()[-1] if str(exc) else repr(exc)
    if _HOME_OVERRIDE is None or not (Path(_HOME_OVERRIDE) / "tests").is_dir():
        reason = (f"gateway-conformance {VERSION} is unavailable ({proxy_error}); set "
                  "GATEWAY_CONFORMANCE_HOME to a checkout of its v0.13.2 tag. Not run: "
                  "specs trustless-gateway, path-gateway, subdomain-gateway and dnslink-gateway")
        if "403" in proxy_error or "not available" in proxy_error:
            # The module proxy itself refuses this module (403 "This module version is not
            # available"): nothing an install step could fix, so even CI only skips.
            pytest.skip(reason)
        interop_skip(f"gateway-conformance {VERSION} is unavailable ({proxy_error}); set "
                     "GATEWAY_CONFORMANCE_HOME to a checkout of its v0.13.2 tag. Not run: "
                     "specs trustless-gateway, path-gateway, subdomain-gateway and dnslink-gateway")
    home = Path(_HOME_OVERRIDE)
    binary = build_dir / "gateway-conformance"
    try:
        _go(["build", "-trimpath", "-o", str(binary), "./cmd/gateway-conformance"], home,
            BUILD_TIMEOUT)
    except (GoBuildError, FileNotFoundError) as exc:
        interop_skip(f"gateway-conformance could not be built from {home}: {exc}")
    return Suite(binary, home)


def extract_fixtures(s: Suite, folder: Path) -> Path:
    """The suite's fixtures merged into one CAR; returns its path."""
    subprocess.run([str(s.binary), "extract-fixtures", "--directory", str(folder), "--merged"],
                   env=s.env(), capture_output=True, timeout=300, check=True)
    return folder / "fixtures.car"


def ipns_records(folder: Path) -> dict[str, Path]:
    """The fixtures' signed IPNS records by name (``<name>[_<what>]_<n>.ipns-record``, the
    name before the first ``_``, as Kubo's CI reads them)."""
    return {f.name.split("_", 1)[0]: f for f in sorted(folder.glob("*.ipns-record"))}


def ns_map(folder: Path) -> str:
    """The fixtures' DNSLink names as one ``IPFS_NS_MAP`` value (``domain:/ipfs/…,…``)."""
    return (folder / "dnslinks.IPFS_NS_MAP").read_text(encoding="utf-8").strip()


@dataclass
class Report:
    cases: dict[str, str] = field(default_factory=dict)  # case -> pass | fail | skip
    # Why a case was skipped, in the suite's words (it names the specs it needs).
    skip_reasons: dict[str, str] = field(default_factory=dict)
    # Every test below the top level (cases and their checks) -> its own result.
    subtests: Counter[str] = field(default_factory=Counter)

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.cases.values())

    def by_group(self) -> dict[str, Counter[str]]:
        """Counts per top-level test (one per spec section, e.g. TestTrustlessCarEntityBytes)."""
        groups: dict[str, Counter[str]] = {}
        for case, result in self.cases.items():
            groups.setdefault(case.split("/")[0], Counter())[result] += 1
        return groups

    @property
    def failed(self) -> list[str]:
        return sorted(name for name, result in self.cases.items() if result == "fail")


def read_report(path: Path) -> Report:
    own: dict[str, str] = {}  # each case's own result
    failed: set[str] = set()  # cases with a failure at any level
    reasons: dict[str, str] = {}
    subtests: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        parts = (event.get("Test") or "").split("/")
        action = event.get("Action")
        if len(parts) < 2:
            continue
        case = "/".join(parts[:2])
        output = event.get("Output") or ""
        if action == "output" and "skipping" in output:
            reasons[case] = output.strip()
        if action not in ("pass", "fail", "skip"):
            continue
        subtests[action] += 1
        if action == "fail":
            failed.add(case)
        if len(parts) == 2:
            own[case] = action
    cases = {case: "fail" if case in failed else own.get(case, "pass")
             for case in own.keys() | failed}
    return Report(cases, {case: reasons.get(case, "no reason given")
                          for case, result in cases.items() if result == "skip"}, subtests)


def run(s: Suite, gateway_url: str, specs: str, report_path: Path, cwd: Path,
        subdomain_url: str | None = None) -> Report:
    """Run the suite for ``specs``; returns its report (the run's own exit status is not
    used: failures are read per case from the report). ``subdomain_url`` is the origin the
    subdomain-gateway spec puts ``{cid}.ipfs.`` in front of (its host, sent as ``Host``)."""
    subdomain = ["--subdomain-url", subdomain_url] if subdomain_url else []
    subprocess.run([str(s.binary), "test", "--gateway-url", gateway_url, *subdomain,
                    "--specs", specs, "--json", str(report_path), "--", "-timeout", "5m"],
                   env=s.env(), cwd=cwd, capture_output=True, timeout=RUN_TIMEOUT, check=False)
    if not report_path.is_file():
        raise AssertionError(f"gateway-conformance wrote no report for {specs}")
    return read_report(report_path)
