"""Sanity and an integration subset of the collection with every ansible-core it claims (``make core-matrix``).

Per version: a virtual environment cached under ``build/core/<version>`` (made again only when its requirements
change), ``ansible-test sanity --venv`` of a copy of the tree under ``ansible_collections/lamassuiot/postgres``
with the offline pip bootstrap stand-in, then the integration subset run by that environment's Python, so the
harness takes its ``ansible-playbook``. Versions run in parallel (``--jobs``). ansible-core 2.20 and later need
Python 3.12 on the controller: such a version runs with a Python 3.12 when one is found, else it is skipped with
a notice (``LAMASSU_PYTHON3_12`` names one).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tests" / "harness" / "get_pip.py"
# What the copy for ansible-test leaves out: the Makefile's sanity target leaves out the same.
NOT_COPIED = {
    ".git",
    ".venv",
    "build",
    ".collections",
    ".demo",
    ".ruff_cache",
    ".pytest_cache",
    "bench/output",
    "tests/output",
    "reports",
}
TEST_PACKAGES = ("psycopg2-binary", "pytest", "pytest-xdist", "psutil")
PIP_VERSION_PROBE = (
    "from types import SimpleNamespace\n"
    "from ansible_test._internal.python_requirements import get_venv_packages\n"
    "print(get_venv_packages(SimpleNamespace(version={python!r}))['pip'])\n"
)


@dataclass
class Outcome:
    version: str
    python: str = ""
    status: str = "passed"
    detail: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


def controller_python(version: str) -> str:
    """ansible-core 2.20 dropped Python 3.11 on the controller."""
    major, minor = (int(part) for part in version.split(".")[:2])
    return "3.12" if (major, minor) >= (2, 20) else "3.11"


def find_python(wanted: str) -> str | None:
    """An interpreter of ``wanted`` that can make virtual environments: env override, PATH, Debian, pyenv."""
    candidates = [os.environ.get(f"LAMASSU_PYTHON{wanted.replace('.', '_')}", "")]
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == wanted:
        candidates.append(getattr(sys, "_base_executable", sys.executable))
    candidates += [shutil.which(f"python{wanted}") or "", f"/usr/bin/python{wanted}"]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{wanted}*/bin/python{wanted}")), reverse=True)
    probe = "import ensurepip, sys, venv; print('%d.%d' % sys.version_info[:2])"
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run([candidate, "-c", probe], capture_output=True, text=True, timeout=30, check=False)
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == wanted:
            return candidate
    return None


def pinned(names: tuple[str, ...]) -> list[str]:
    """``name==version`` of each package as pinned in the requirements files."""
    pins = {}
    for requirements in ("requirements.txt", "requirements-test.txt"):
        for line in (ROOT / requirements).read_text().splitlines():
            match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
            if match:
                pins[match.group(1).lower()] = line.strip()
    return [pins.get(name, name) for name in names]


def run(cmd: list[str], log: Path, **kwargs) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)
    if proc.returncode:
        raise RuntimeError(f"{os.path.basename(cmd[0])} {' '.join(cmd[1:3])} failed (exit {proc.returncode})")


def ensure_venv(home: Path, version: str, python: str, log: Path) -> Path:
    """The version's environment; made again only when its interpreter or requirements changed."""
    venv, stamp = home / "venv", home / "installed.json"
    wanted = {"python": python, "requirements": [f"ansible-core=={version}", *pinned(TEST_PACKAGES)]}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted and (venv / "bin" / "ansible-test").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    run([python, "-m", "venv", str(venv)], log)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run([*pip, *wanted["requirements"]], log)
    stamp.write_text(json.dumps(wanted))
    return venv


def copy_tree(dest: Path) -> None:
    """The checkout, as ansible-test wants it, under ``…/ansible_collections/lamassuiot/postgres``."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        rel = os.path.relpath(directory, ROOT)
        return {n for n in names if n == "__pycache__" or os.path.normpath(os.path.join(rel, n)) in NOT_COPIED}

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)


def sanity(venv: Path, home: Path, python: str, scratch: Path, log: Path) -> None:
    """``ansible-test sanity --venv`` with HOME of its own: its venvs stay cached per version, and the pip
    bootstrap stand-in carries the name this ansible-test asks for."""
    bin_dir = venv / "bin"
    probe = subprocess.run(
        [str(bin_dir / "python"), "-c", PIP_VERSION_PROBE.format(python=python)],
        capture_output=True,
        text=True,
        check=True,
    )
    cache = home / "home" / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copy(STANDIN, cache / f"get_pip_{probe.stdout.strip().replace('.', '_')}.py")
    root = scratch / "ansible_collections" / "lamassuiot" / "postgres"
    copy_tree(root)
    env = {
        **os.environ,
        "HOME": str(home / "home"),
        "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", os.path.expanduser("~/.cache/pip")),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    run(
        [str(bin_dir / "ansible-test"), "sanity", "--venv", "--python", python, "--color", "no"], log, cwd=root, env=env
    )


def integration(venv: Path, tests: list[str], pg_version: str, log: Path) -> None:
    bin_dir = venv / "bin"
    env = {**os.environ, "LAMASSU_PG_VERSION": pg_version, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    run([str(bin_dir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], log, cwd=ROOT, env=env)


def one_version(version: str, args: argparse.Namespace, scratch_root: Path) -> Outcome:
    outcome = Outcome(version)
    home = args.build / version
    home.mkdir(parents=True, exist_ok=True)
    log = home / "run.log"
    log.write_text("")
    wanted = controller_python(version)
    python = find_python(wanted)
    if python is None:
        outcome.status, outcome.detail = (
            "skipped",
            f"no Python {wanted} found (set LAMASSU_PYTHON{wanted.replace('.', '_')})",
        )
        return outcome
    outcome.python = wanted
    steps = [
        ("setup", lambda: ensure_venv(home, version, python, log)),
        ("sanity", lambda: sanity(home / "venv", home, wanted, scratch_root / version, log)),
        ("integration", lambda: integration(home / "venv", args.tests, args.pg_version, log)),
    ]
    sanity_here = args.sanity_versions is None or version in args.sanity_versions
    for name, step in steps:
        if name in args.skip or (name == "sanity" and not sanity_here):
            continue
        started = time.monotonic()
        print(f"== ansible-core {version} (Python {wanted}): {name}", flush=True)
        try:
            step()
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            outcome.status = "FAILED"
            outcome.detail += f"{name}: {exc}; "
            if name == "setup":
                break
        finally:
            outcome.seconds[name] = time.monotonic() - started
    if outcome.status == "FAILED":
        outcome.detail += f"log: {log}"
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="+", help="exact ansible-core versions, e.g. 2.16.19")
    parser.add_argument("--tests", nargs="+", required=True, help="pytest node ids of the integration subset")
    parser.add_argument("--build", type=Path, default=ROOT / "build" / "core")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--pg-version", default=os.environ.get("LAMASSU_PG_VERSION", "15"))
    parser.add_argument("--skip", nargs="*", default=[], choices=["sanity", "integration"])
    parser.add_argument(
        "--sanity-versions",
        nargs="*",
        help="the versions that also run ansible-test sanity (default: all); the others run the integration subset",
    )
    args = parser.parse_args(argv)
    args.build = args.build.resolve()
    digest = hashlib.md5(str(ROOT).encode()).hexdigest()[:8]
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix=f"lamassuiot-postgres-core-{digest}-") as scratch,
        ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool,
    ):
        outcomes = list(pool.map(lambda v: one_version(v, args, Path(scratch)), args.versions))
    print(f"\nansible-core matrix ({time.monotonic() - started:.0f} s):")
    for o in outcomes:
        timing = ", ".join(f"{k} {v:.0f} s" for k, v in o.seconds.items())
        print(f"  {o.version:<9} Python {o.python or '-':<5} {o.status:<8} {timing} {o.detail}".rstrip())
        if o.status == "FAILED":
            lines = (args.build / o.version / "run.log").read_text().splitlines()
            wanted = [line for line in lines if re.match(r"(ERROR|FATAL): |FAILED |E   ", line)]
            print("\n".join(f"    | {line}" for line in (wanted or lines)[-60:]))
    return 1 if any(o.status == "FAILED" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
