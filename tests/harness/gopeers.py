"""The Go programs of ``tests/interop/peers.toml``, built once into ``build/go`` and found by the tests.

``python -m tests.harness.gopeers`` (``make go-peers``) builds every peer that is not built yet; a peer that
cannot be built (no ``go``, a module the proxy does not serve) is recorded in ``build/go/peers/<name>/failed.txt``
with the command and the tail of its output, and tried again on the next ``make go-peers``. Tests ask for a peer
with ``peer_binary(name)``: the binary, or ``PeerUnavailable`` holding that record (they turn it into a skip).

Everything Go writes stays under ``build/go``: ``GOPATH``, ``GOMODCACHE`` (the module sources, which the parity
tests read), ``GOCACHE`` and the binaries. ``GOTOOLCHAIN=local`` keeps the go command from fetching toolchains.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .collection import ROOT

PEERS_FILE = ROOT / "tests" / "interop" / "peers.toml"
GO_DIR = ROOT / "build" / "go"
TAIL_LINES = 12
BUILD_TIMEOUT = 900


class PeerUnavailable(RuntimeError):
    """A peer that could not be built; the message holds the command and the tail of its output."""


@dataclass(frozen=True)
class Peer:
    name: str
    binary: str
    version: str = ""
    module: str = ""
    package: str = ""
    source: str = ""  # a directory of this repository with a main package (then ``requires`` names its module)
    requires: str = ""
    go_migrations: str = ""  # a directory of <service>/<version>_<name>.go migrations compiled into ``source``

    @property
    def directory(self) -> Path:
        return GO_DIR / "peers" / self.name

    @property
    def path(self) -> Path:
        return self.directory / self.binary

    @property
    def failure_file(self) -> Path:
        return self.directory / "failed.txt"

    @property
    def stamp_file(self) -> Path:
        return self.directory / "built-from.txt"

    def inputs(self) -> list[Path]:
        """The files of this repository a local peer is built from."""
        files = sorted((ROOT / self.source).rglob("*")) if self.source else []
        if self.go_migrations:
            files += sorted((ROOT / self.go_migrations).glob("*/*.go"))
        return [path for path in files if path.is_file()]

    def fingerprint(self, peers: dict[str, Peer]) -> str:
        """What the binary was built from: the pinned versions and the content of the local inputs."""
        digest = hashlib.sha256(f"{self.package}@{self.version}".encode())
        if self.requires:
            required = peers[self.requires]
            digest.update(f"{required.module}@{required.version}".encode())
        for path in self.inputs():
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    def is_current(self, peers: dict[str, Peer]) -> bool:
        return (
            self.path.exists() and self.stamp_file.exists() and self.stamp_file.read_text() == self.fingerprint(peers)
        )


def load_peers(path: Path = PEERS_FILE) -> dict[str, Peer]:
    with path.open("rb") as handle:
        table = tomllib.load(handle)
    return {name: Peer(name=name, **fields) for name, fields in table.items()}


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOPATH=str(GO_DIR / "path"),
        GOMODCACHE=str(GO_DIR / "mod"),
        GOCACHE=str(GO_DIR / "cache"),
        GOFLAGS="-mod=mod -buildvcs=false",  # no VCS stamp from this checkout's git in local builds
        GOTOOLCHAIN="local",
    )
    return env


def module_dir(peer: Peer) -> Path:
    """Where the go command unpacked the peer's module (read-only), e.g. goose's ``internal/sqlparser/testdata``."""
    # The module cache spells a capital letter as "!" and its lower case.
    escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in peer.module)
    return GO_DIR / "mod" / f"{escaped}@{peer.version}"


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time, across xdist workers and a parallel ``make``."""
    GO_DIR.mkdir(parents=True, exist_ok=True)
    with (GO_DIR / ".build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _commands(peer: Peer, peers: dict[str, Peer]) -> list[tuple[list[str], Path | None]]:
    """The go commands that build ``peer``, each with its working directory."""
    gobin = ["env", f"GOBIN={peer.directory}"]
    if peer.package:
        return [([*gobin, "go", "install", f"{peer.package}@{peer.version}"], None)]
    required = peers[peer.requires]
    work = GO_DIR / "src" / peer.name
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ROOT / peer.source, work)
    module = f"example.invalid/{peer.name}"
    (work / "go.mod").write_text(f"module {module}\n\ngo 1.22\n")
    if peer.go_migrations:
        imports = []
        for service_dir in sorted(p for p in (ROOT / peer.go_migrations).iterdir() if p.is_dir()):
            go_files = sorted(service_dir.glob("*.go"))
            if go_files:
                target = work / "migrations" / service_dir.name
                target.mkdir(parents=True)
                for go_file in go_files:
                    shutil.copy(go_file, target / go_file.name)
                imports.append(f'\t_ "{module}/migrations/{service_dir.name}"\n')
        (work / "register.go").write_text(f"package main\n\nimport (\n{''.join(imports)})\n")
    return [
        (["go", "get", f"{required.module}@{required.version}"], work),
        (["go", "mod", "tidy"], work),
        ([*gobin, "go", "install", "."], work),
    ]


def build(peer: Peer, peers: dict[str, Peer], *, retry_failed: bool = True) -> Path:
    """The peer's binary, built when missing; ``PeerUnavailable`` when it cannot be."""
    with _build_lock():
        if peer.is_current(peers):
            return peer.path
        if peer.failure_file.exists() and not retry_failed:
            raise PeerUnavailable(peer.failure_file.read_text())
        peer.directory.mkdir(parents=True, exist_ok=True)
        peer.failure_file.unlink(missing_ok=True)
        peer.stamp_file.unlink(missing_ok=True)
        if shutil.which("go") is None:
            return _failed(peer, "go", "the go command is not on PATH (install Go 1.22 or later)")
        for command, cwd in _commands(peer, peers):
            try:
                proc = subprocess.run(
                    command, cwd=cwd, env=go_env(), capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
                )
            except subprocess.TimeoutExpired:
                return _failed(peer, " ".join(command), f"timed out after {BUILD_TIMEOUT} s")
            if proc.returncode != 0:
                return _failed(peer, " ".join(command), proc.stdout + proc.stderr)
        peer.stamp_file.write_text(peer.fingerprint(peers))
        return peer.path


def _failed(peer: Peer, command: str, output: str) -> Path:
    tail = "\n".join(output.strip().splitlines()[-TAIL_LINES:])
    record = f"{peer.name} ({peer.package or peer.source}@{peer.version or 'local'}) could not be built.\n$ {command}\n{tail}\n"
    peer.failure_file.write_text(record)
    raise PeerUnavailable(record)


def peer_binary(name: str) -> Path:
    """For tests: the built binary, building it if ``make go-peers`` has not tried yet (failures are not retried)."""
    peers = load_peers()
    return build(peers[name], peers, retry_failed=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="peers to build (default: all of peers.toml)")
    args = parser.parse_args(argv)
    peers = load_peers()
    for name in args.names or list(peers):
        peer = peers[name]
        try:
            path = build(peer, peers)
        except PeerUnavailable as unavailable:
            print(f"go-peers: {name}: NOT BUILT, its interop tests will be skipped\n{unavailable}", file=sys.stderr)
        else:
            print(f"go-peers: {name}: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
