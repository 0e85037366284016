# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Lamassu migrations tree as it is in a checkout: which folders are the services of a run.

Upstream keeps the migrations in ``engines/storage/postgres/migrations/<service>/`` of the ``lamassuiot/lamassuiot``
repository, beside entries that are not services: ``helpers/`` (Go helpers of the Go migrations),
``gomigrations.go`` (registers them) and ``db-to-schema.md``. A tree is given either as that folder or as the
checkout root. The services of a run are migrated from their folders; every other entry is ignored; a service of
the run without a folder is reported, not guessed. Runs on the controller (lookup ``migration_tree``) and on the
managed host (``postgres_lamassu_info``'s ``migrations_path``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .errors import InvalidInput

# Where a checkout of lamassuiot/lamassuiot keeps the migrations.
CHECKOUT_SUBDIR = os.path.join("engines", "storage", "postgres", "migrations")


@dataclass
class MigrationTree:
    root: str  # the folder holding the service folders
    files: dict[str, list[str]] = field(default_factory=dict)  # service of the run -> its file names, sorted
    missing: list[str] = field(default_factory=list)  # services of the run without a folder
    ignored: list[str] = field(default_factory=list)  # entries of the root that are not services of the run

    def as_dict(self) -> dict:
        return {
            "root": self.root,
            "services": list(self.files),
            "files": [f"{service}/{name}" for service, names in self.files.items() for name in names],
            "missing": self.missing,
            "ignored": self.ignored,
        }


def find_root(path: str) -> str:
    """The folder of service folders: ``path`` itself, or ``path/engines/storage/postgres/migrations`` when
    ``path`` is a checkout root. InvalidInput when neither is a directory."""
    if not path:
        raise InvalidInput("no migrations directory was given")
    below = os.path.join(path, CHECKOUT_SUBDIR)
    if os.path.isdir(below):
        return below
    if os.path.isdir(path):
        return path
    reason = "does not exist" if not os.path.exists(path) else "is not a directory"
    raise InvalidInput(f"migrations directory {path} {reason}: give a Lamassu checkout or its {CHECKOUT_SUBDIR} folder")


def folder_files(folder: str) -> list[str]:
    """The names of the regular files (or links to them) at the top of ``folder``, sorted: what goose reads."""
    try:
        return sorted(name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name)))
    except OSError as exc:
        raise InvalidInput(f"migrations folder {folder} cannot be read: {exc.strerror}") from None


def read_tree(path: str, services: list[str] | tuple[str, ...]) -> MigrationTree:
    """The service folders of ``path`` for ``services``, in the order of ``services``."""
    root = find_root(path)
    try:
        entries = sorted(os.listdir(root))
    except OSError as exc:
        raise InvalidInput(f"migrations directory {root} cannot be read: {exc.strerror}") from None
    tree = MigrationTree(root=root)
    for service in services:
        folder = os.path.join(root, service)
        if not os.path.isdir(folder):
            tree.missing.append(service)
            continue
        tree.files[service] = folder_files(folder)
    tree.ignored = [name for name in entries if name not in tree.files and name not in tree.missing]
    return tree


def tree_problem(tree: MigrationTree, services: list[str]) -> str | None:
    """What stops the upgrade about a tree that was read: no folder of any service of the run, or None."""
    if tree.files:
        return None
    return (
        f"no folder of the services {', '.join(services)} in {tree.root} (found: {', '.join(tree.ignored) or 'nothing'}): "
        "give a Lamassu checkout or its engines/storage/postgres/migrations folder"
    )


def missing_message(tree: MigrationTree) -> str | None:
    """One message naming every service of the run without a folder, or None."""
    if not tree.missing:
        return None
    return (
        f"no migrations folder for service(s) {', '.join(tree.missing)} in {tree.root}: their schemas are not "
        "migrated (services with a folder: " + (", ".join(tree.files) or "none") + ")"
    )
