# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migrations given as a tar archive: unpacked into a private temporary directory for the run, then removed.

The action plugin of ``postgres_lamassu_migrate`` sends a controller's migrations tree to the managed host as one
archive inside the module's arguments: no file transfer, so it works where Ansible cannot hand a file to the user it
becomes (pipelining on, no ``acl`` package). Only regular files and directories with relative names
that stay inside the directory are unpacked; anything else (links, devices, ``..``, absolute names) refuses the
archive before a file is written.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence

from ..errors import InvalidInput
from ..migration_tree import folder_files, read_tree


def _checked_members(archive: tarfile.TarFile, path: str) -> list[tarfile.TarInfo]:
    members = archive.getmembers()
    for member in members:
        name = member.name
        parts = name.replace("\\", "/").split("/")
        if os.path.isabs(name) or ".." in parts or not (member.isfile() or member.isdir()):
            raise InvalidInput(
                f"migrations archive {path}: {name!r} is not a plain file or directory inside the archive; "
                "nothing was unpacked"
            )
    return members


@contextlib.contextmanager
def _extracted(archive: tarfile.TarFile, label: str) -> Iterator[str]:
    """The files of ``archive`` in a private temporary directory, removed afterwards."""
    members = _checked_members(archive, label)
    directory = tempfile.mkdtemp(prefix="lamassu-migrations-")
    try:
        os.chmod(directory, 0o700)
        for member in members:
            target = os.path.join(directory, member.name)
            if member.isdir():
                os.makedirs(target, mode=0o700, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
            source = archive.extractfile(member)
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def unpacked(path: str) -> Iterator[str]:
    """``path`` itself when it is a directory; a tar archive (any compression ``tarfile`` reads) unpacked into a
    temporary directory that is removed afterwards; otherwise ``path`` unchanged (the caller says what is wrong)."""
    if os.path.isdir(path) or not os.path.isfile(path):
        yield path
        return
    if not tarfile.is_tarfile(path):
        raise InvalidInput(f"migrations path {path} is not a directory, nor a tar archive of one")
    with tarfile.open(path) as archive, _extracted(archive, path) as directory:
        yield directory


@contextlib.contextmanager
def unpacked_data(encoded: str) -> Iterator[str]:
    """The base64 text of an archive made by ``pack`` (sent inside the module's arguments), unpacked as above."""
    try:
        data = io.BytesIO(base64.b64decode(encoded, validate=True))
        with tarfile.open(fileobj=data) as archive, _extracted(archive, "archive") as directory:
            yield directory
    except (binascii.Error, tarfile.ReadError) as exc:
        raise InvalidInput(f"archive is not the base64 text of a tar archive of migrations: {exc}") from None


def _add_files(archive: tarfile.TarFile, folder: str, names: list[str], prefix: str) -> None:
    """``names`` of ``folder`` as ``<prefix>/<name>``; a link to a file is sent as the file it points to, as goose
    reads it."""
    for name in names:
        info = tarfile.TarInfo(f"{prefix}/{name}" if prefix else name)
        info.mode = 0o600
        with open(os.path.join(folder, name), "rb") as data:
            stat = os.fstat(data.fileno())
            info.size, info.mtime = stat.st_size, int(stat.st_mtime)
            archive.addfile(info, data)


def pack(src: str, services: Sequence[str] | None = None) -> tuple[str, bytes]:
    """``(folder, archive)``: the migration files of ``src`` as one gzip'd tar, for ``unpacked`` on the host.

    Without ``services``: the files of ``src``. With ``services``: ``src`` is a folder of service folders or a
    Lamassu checkout, read as the lookup ``migration_tree`` reads it (``read_tree``), and only those services'
    folders are packed (a missing one is left out: the module then names it)."""
    if services is None:
        if not os.path.isdir(src):
            raise InvalidInput(f"migrations directory {src} does not exist or is not a directory (on the controller)")
        folder, files = src, {"": folder_files(src)}
    else:
        tree = read_tree(src, services)
        folder, files = tree.root, tree.files
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
        for service, names in files.items():
            _add_files(archive, os.path.join(folder, service) if service else folder, names, service)
    return folder, buffer.getvalue()
