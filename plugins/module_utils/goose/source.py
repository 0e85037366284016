# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration file discovery, as goose v3's Provider collects a directory.

goose (``provider_collect.go``, ``NumericComponent`` in ``migrate.go``) takes
the top-level ``*.sql`` and ``*.go`` files (not ``*_test.go``) whose base name
is ``<version>_<anything>``: the version is the text before the *first*
underscore, parsed like Go's ``strconv.ParseInt(s, 10, 64)`` (ASCII digits,
an optional ``+``/``-`` sign, leading zeros allowed). Other names are not
migrations and are skipped silently (``README.md``, ``helpers.go``,
``foo.sql``). Two files of one version are an error.

Our extension: ``<version>_<name>.py`` Python migrations. A ``.py`` and a
``.go`` of the same version are one migration (the ``.py`` ports the ``.go``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import InvalidInput

_EXTENSIONS = {".sql": "sql", ".go": "go", ".py": "py"}
# strconv.ParseInt(s, 10, 64): optional sign, then ASCII digits only (no "_", no Unicode digits).
_GO_INT = re.compile(r"[+-]?[0-9]+\Z")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class MigrationSource:
    """One migration found on disk."""

    version: int
    name: str  # file base name, what goose shows as the source
    path: str  # full path
    kind: str  # "sql" | "py" | "go"
    go_path: str | None = None  # the .go file of the same version, when a .py ports it


def _kind_of(filename: str) -> str | None:
    """Kind from the extension, exactly as ``filepath.Ext`` (case-sensitive, last dot)."""
    ext = os.path.splitext(filename)[1]
    return _EXTENSIONS.get(ext)


def parse_version(filename: str) -> int | None:
    """The version of a migration file name, or None when goose would not take the file as a migration.

    None: not ``.sql``/``.go``/``.py``, a ``*_test.go``, no ``_`` separator, or a prefix
    that is not an integer (goose's Provider skips such files). InvalidInput: the prefix
    is an integer but not a usable version (below 1, or beyond int64), which goose's
    ``NumericComponent`` rejects; the Provider would skip the file silently and goose's
    older API (the one Lamassu's CLI uses) fails on it, so we refuse it.
    """
    base = os.path.basename(filename)
    kind = _kind_of(base)
    if kind is None or (kind == "go" and base.endswith("_test.go")):
        return None
    prefix, sep = base.partition("_")[:2]
    if not sep or not _GO_INT.match(prefix):
        return None
    version = int(prefix)
    if version < 1:
        raise InvalidInput(f"migration file {base}: version {prefix} is not valid, it must be greater than zero")
    if version > _INT64_MAX:
        raise InvalidInput(f"migration file {base}: version {prefix} does not fit in goose's int64 version")
    return version


def _list_files(directory: str) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            # fs.Glob also matches directories; only regular files (or links to them) can be migrations.
            return sorted(entry.name for entry in entries if entry.is_file())
    except FileNotFoundError:
        raise InvalidInput(f"migration directory {directory} does not exist") from None
    except NotADirectoryError:
        raise InvalidInput(f"migration directory {directory} is not a directory") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read migration directory {directory}: {exc.strerror or exc}") from None


def _duplicate(directory: str, version: int, first: str, second: str) -> InvalidInput:
    return InvalidInput(f"found duplicate migration version {version} in {directory}: {first} and {second}")


def collect(directory: str, names: list[str] | None = None) -> list[MigrationSource]:
    """All migrations of ``directory`` sorted by version, as goose's Provider collects them.

    ``*.sql``, ``*.go`` (except ``*_test.go``) and our ``*.py``; a ``.go`` and a
    ``.py`` of one version pair up as kind ``py``; any other pair of files with one
    version is an error naming both. ``names``: the file names of a directory listed elsewhere (on the Ansible
    controller), planned from without reading the directory.
    """
    by_version: dict[int, dict[str, str]] = {}
    for name in sorted(names) if names is not None else _list_files(directory):
        version = parse_version(name)
        kind = _kind_of(name)
        if version is None or kind is None:
            continue
        files = by_version.setdefault(version, {})
        if kind in files:
            raise _duplicate(directory, version, files[kind], name)
        if kind == "sql" and files:
            raise _duplicate(directory, version, next(iter(files.values())), name)
        if kind != "sql" and "sql" in files:
            raise _duplicate(directory, version, files["sql"], name)
        files[kind] = name

    sources = []
    for version in sorted(by_version):
        files = by_version[version]
        if "py" in files:
            go_name = files.get("go")
            sources.append(
                MigrationSource(
                    version=version,
                    name=files["py"],
                    path=os.path.join(directory, files["py"]),
                    kind="py",
                    go_path=os.path.join(directory, go_name) if go_name else None,
                )
            )
        else:
            kind, name = next(iter(files.items()))
            sources.append(MigrationSource(version=version, name=name, path=os.path.join(directory, name), kind=kind))
    return sources
