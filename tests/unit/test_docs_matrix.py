"""The README's "What is tested" names exactly the versions the Makefile runs, and `make help` lists every target."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()


def make_variable(name: str) -> list[str]:
    """The default of ``NAME ?= ...``; for a conditional default, the value of its ``$(if ...)``'s else branch."""
    value = re.search(rf"^{name} \?= (.*)$", MAKEFILE, re.MULTILINE).group(1)
    conditional = re.fullmatch(r"\$\(if .*,,([^,()]*)\)", value)
    return (conditional.group(1) if conditional else value).split()


def readme_row(component: str) -> str:
    """The versions cell of a row of the README's table, without the parenthesised remarks."""
    readme = (ROOT / "README.md").read_text()
    cell = re.search(rf"^\| {re.escape(component)} \| (.*) \|$", readme, re.MULTILINE).group(1)
    return re.sub(r"\([^()]*(\([^()]*\)[^()]*)*\)", "", cell)


@pytest.mark.parametrize(
    ("component", "variable", "version"),
    [
        ("ansible-core", "CORE_VERSIONS", r"\d+\.\d+\.\d+"),
        ("PostgreSQL server, the whole integration suite", "PG_VERSIONS", r"\b\d{2}\b"),
        (
            "PostgreSQL server, a subset covering every catalog query and the core paths",
            "PG_EXTRA_VERSIONS",
            r"\b\d{2}\b",
        ),
    ],
)
def test_the_readme_names_the_makefile_s_versions(component, variable, version):
    assert re.findall(version, readme_row(component)) == make_variable(variable)


def phony_targets() -> set[str]:
    return {target for line in re.findall(r"^\.PHONY: (.*)$", MAKEFILE, re.MULTILINE) for target in line.split()}


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_every_phony_target_with_one_line():
    listed = subprocess.run(
        ["make", "-s", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    lines = listed.splitlines()
    names = [line.split()[1] for line in lines]
    assert set(names) == phony_targets()
    assert len(names) == len(set(names)) and all(len(line.split()) > 2 for line in lines)
