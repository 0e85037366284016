"""Managed hosts as Docker containers: a Debian host with its own PostgreSQL, reached over SSH (or `docker exec`).

No image registry is reachable, so the images are built from Debian's packages (debootstrap, then
``docker import``) and cached: the root filesystem as a tar under ``~/.cache/lamassuiot-postgres/images`` and the
image in the engine, both named after a digest of the recipe below, so a changed recipe builds anew. The engine is
Debian's ``docker.io``, started without touching the machine's network (``--iptables=false --ip-masq=false
--bridge=none``); containers share the host's network and each listens on its own 127.0.0.1 ports.

A host has no ``acl`` package (minbase leaves it out): Ansible can become an unprivileged user there only with
pipelining (docs/managed-hosts.md). Users: ``root`` and ``deploy`` (passwordless sudo), both taking the test's
SSH key. PostgreSQL listens on 127.0.0.1:<pg port> (password, md5 lines accept scram hashes too) and on its socket
(``peer`` for the ``postgres`` OS user).

Command line (used by ``make docker-hosts``): ``python -m tests.harness.docker_hosts images [DIST...]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .pgcluster import Cluster

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lamassuiot-postgres" / "images"
ENGINE_LOG = Path("/var/log/lamassuiot-postgres-dockerd.log")
MIRROR = "http://deb.debian.org/debian"
CONTAINER_PREFIX = "lamassu-test-"
# Debian release -> the PostgreSQL it ships (and the Python/psycopg2 that come with it: 3.11/2.9.5, 3.9.2/2.8.6).
DISTS = {"bookworm": 15, "bullseye": 13}
PACKAGES = "python3,python3-psycopg2,openssh-server,sudo,procps"

# The container's command: users' keys, sshd and PostgreSQL on the ports given in its environment, then wait.
START = r"""#!/bin/sh
set -eu
mkdir -p /run/sshd /root/.ssh /home/deploy/.ssh
ssh-keygen -A >/dev/null
grep -q " $(hostname)\$" /etc/hosts || echo "127.0.1.1 $(hostname)" >> /etc/hosts
printf '%s\n' "$AUTHORIZED_KEY" > /root/.ssh/authorized_keys
printf '%s\n' "$AUTHORIZED_KEY" > /home/deploy/.ssh/authorized_keys
chown -R deploy:deploy /home/deploy/.ssh
chmod 700 /root/.ssh /home/deploy/.ssh
chmod 600 /root/.ssh/authorized_keys /home/deploy/.ssh/authorized_keys
conf=/etc/postgresql/$PG_MAJOR/main
[ -e $conf/postgresql.conf ] || pg_createcluster --locale=C.UTF-8 "$PG_MAJOR" main >/dev/null
sed -i "s/^#\?port = .*/port = $PG_PORT/; s/^#\?listen_addresses = .*/listen_addresses = '127.0.0.1'/" $conf/postgresql.conf
printf 'local all postgres peer\nlocal all all md5\nhost all all 127.0.0.1/32 md5\n' > $conf/pg_hba.conf
pg_ctlcluster $PG_MAJOR main start
su postgres -c "psql -qc \"ALTER ROLE postgres PASSWORD '$PG_PASSWORD'\""
/usr/sbin/sshd -p "$SSH_PORT" -o ListenAddress=127.0.0.1 -o PasswordAuthentication=no
touch /run/lamassu-host-ready
exec sleep infinity
"""
# Run inside the new root filesystem once debootstrap is done.
SETUP = r"""set -eu
useradd -m -s /bin/bash deploy
echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy
chmod 440 /etc/sudoers.d/deploy
chmod 755 /start
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
"""


class DockerUnavailable(RuntimeError):
    """No Docker engine can run here; the message says why (the tests that need one are skipped with it)."""


def _recipe(dist: str) -> str:
    return hashlib.sha256(f"{dist}\n{PACKAGES}\n{DISTS[dist]}\n{START}\n{SETUP}".encode()).hexdigest()[:12]


def image_name(dist: str) -> str:
    return f"lamassuiot-postgres-host:{dist}-{_recipe(dist)}"


def _docker(*args: str, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _engine_answers() -> bool:
    try:
        return _docker("info", check=False, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_engine() -> None:
    """A Docker engine that answers: the one running, else Debian's ``dockerd`` started here (root only)."""
    if shutil.which("docker") and _engine_answers():
        return
    if os.geteuid() != 0:
        raise DockerUnavailable("no Docker engine answers and only root may start one here")
    if not shutil.which("dockerd"):
        apt = subprocess.run(
            "apt-get update -qq && apt-get install -y -qq docker.io debootstrap >/dev/null",
            shell=True,
            capture_output=True,
            text=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            check=False,
        )
        if apt.returncode != 0 or not shutil.which("dockerd"):
            raise DockerUnavailable(f"Debian's docker.io could not be installed: {apt.stderr.strip()[-400:]}")
    with open(ENGINE_LOG, "ab") as log:
        subprocess.Popen(
            ["dockerd", "--iptables=false", "--ip-masq=false", "--bridge=none"],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _engine_answers():
            return
        time.sleep(1)
    tail = ENGINE_LOG.read_text(errors="replace").splitlines()[-5:]
    raise DockerUnavailable("dockerd did not answer within 60 s: " + " | ".join(tail))


@contextlib.contextmanager
def _cache_lock(dist: str) -> Iterator[None]:
    """One builder of an image at a time (pytest-xdist workers, a second make)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".lock-{dist}", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build_rootfs(dist: str, tarball: Path) -> None:
    if not shutil.which("debootstrap"):
        subprocess.run(
            "apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null",
            shell=True,
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    packages = f"{PACKAGES},postgresql-{DISTS[dist]}"
    root = Path(tempfile.mkdtemp(prefix=f"rootfs-{dist}-", dir=CACHE))
    try:
        print(f"Building the {dist} host image from Debian's packages (once; cached in {CACHE})", file=sys.stderr)
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={packages}", dist, str(root), MIRROR],
            check=True,
            capture_output=True,
        )
        (root / "start").write_text(START)
        subprocess.run(["chroot", str(root), "sh", "-c", SETUP], check=True, capture_output=True)
        partial = tarball.with_suffix(".partial")
        subprocess.run(
            [
                "tar",
                "-C",
                str(root),
                "-cf",
                str(partial),
                "--exclude=./proc",
                "--exclude=./sys",
                "--exclude=./dev",
                ".",
            ],
            check=True,
        )
        partial.rename(tarball)
    finally:
        _remove_rootfs(root)


def _remove_rootfs(root: Path) -> None:
    """Remove a build's root filesystem, never through a mount debootstrap may have left in it (/proc, /dev)."""
    for _attempt in range(3):
        with open("/proc/mounts", encoding="utf-8") as mounts:
            inside = [line.split()[1] for line in mounts if line.split()[1].startswith(f"{root}/")]
        if not inside:
            shutil.rmtree(root, ignore_errors=True)
            return
        for mount in sorted(inside, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    print(f"left {root} in place: mounts remain inside it", file=sys.stderr)


def ensure_image(dist: str) -> str:
    """The image of a ``dist`` host, built (debootstrap + docker import) when neither it nor its rootfs is cached."""
    ensure_engine()
    name = image_name(dist)
    if _docker("image", "inspect", name, check=False).returncode == 0:
        return name
    with _cache_lock(dist):
        if _docker("image", "inspect", name, check=False).returncode == 0:
            return name
        tarball = CACHE / f"{dist}-{_recipe(dist)}.tar"
        if not tarball.exists():
            _build_rootfs(dist, tarball)
        with open(tarball, "rb") as data:
            _docker("import", "-c", 'CMD ["/start"]', "-", name, stdin=data)
    return name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Host:
    """A running container: its name, its SSH port and its PostgreSQL (as a harness Cluster, reached over TCP)."""

    container: str
    dist: str
    ssh_port: int
    cluster: Cluster
    key_file: Path
    logs: list[str] = field(default_factory=list)

    @property
    def pg_major(self) -> int:
        return DISTS[self.dist]

    def exec(self, *argv: str, user: str = "root") -> subprocess.CompletedProcess:
        return _docker("exec", "-u", user, self.container, *argv, check=False)

    def ssh_vars(self, user: str = "root") -> dict:
        """Inventory variables that reach this host over SSH as ``user`` with the test's key."""
        return {
            "ansible_host": "127.0.0.1",
            "ansible_port": self.ssh_port,
            "ansible_user": user,
            "ansible_ssh_private_key_file": str(self.key_file),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3",
        }


def ssh_key(directory: Path) -> Path:
    key = directory / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def _wait_ready(host: Host, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.exec("test", "-e", "/run/lamassu-host-ready").returncode == 0:
            return
        state = _docker("inspect", "-f", "{{.State.Running}}", host.container, check=False).stdout.strip()
        if state != "true":
            break
        time.sleep(0.5)
    logs = _docker("logs", "--tail", "30", host.container, check=False)
    raise RuntimeError(f"host container {host.container} did not start: {logs.stdout}{logs.stderr}")


def start_host(name: str, dist: str, key_file: Path) -> Host:
    """A new container of ``dist`` named ``lamassu-test-<name>-<unique>``, ready for SSH and PostgreSQL."""
    image = ensure_image(dist)
    container = f"{CONTAINER_PREFIX}{name}-{uuid.uuid4().hex[:6]}"
    ssh_port, pg_port = free_port(), free_port()
    password = uuid.uuid4().hex
    public_key = Path(f"{key_file}.pub").read_text().strip()
    environment = {
        "SSH_PORT": ssh_port,
        "PG_PORT": pg_port,
        "PG_MAJOR": DISTS[dist],
        "PG_PASSWORD": password,
        "AUTHORIZED_KEY": public_key,
    }
    env_args = [arg for key, value in environment.items() for arg in ("-e", f"{key}={value}")]
    _docker("run", "-d", "--name", container, "--network", "host", "--hostname", name, *env_args, image)
    cluster = Cluster(host="127.0.0.1", port=pg_port, password=password, version=DISTS[dist])
    host = Host(container, dist, ssh_port, cluster, key_file)
    try:
        _wait_ready(host)
    except Exception:
        remove(host)
        raise
    return host


def remove(host: Host) -> None:
    _docker("rm", "-f", host.container, check=False)


def remove_leftovers() -> None:
    """Containers of a crashed earlier run (named ``lamassu-test-*``)."""
    names = _docker("ps", "-aq", "--filter", f"name={CONTAINER_PREFIX}", check=False).stdout.split()
    if names:
        _docker("rm", "-f", *names, check=False)


@contextlib.contextmanager
def hosts(directory: Path, *specs: tuple[str, str]) -> Iterator[dict[str, Host]]:
    """Containers for ``specs`` of (name, dist), started together and removed afterwards."""
    key = ssh_key(directory)
    started: dict[str, Host] = {}
    try:
        for name, dist in specs:
            started[name] = start_host(name, dist, key)
        yield started
    finally:
        for host in started.values():
            remove(host)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    images = sub.add_parser("images", help="start the engine and build (or find) the host images")
    images.add_argument("dists", nargs="*", default=list(DISTS))
    args = parser.parse_args(argv)
    try:
        ensure_engine()
    except DockerUnavailable as exc:
        print(f"Docker hosts unavailable, their tests will be skipped: {exc}")
        return 0
    with concurrent.futures.ThreadPoolExecutor(len(args.dists)) as pool:  # debootstrap waits on the network
        for dist, image in zip(args.dists, pool.map(ensure_image, args.dists), strict=True):
            print(f"{dist}: {image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
