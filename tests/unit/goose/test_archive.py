"""Migrations sent as one archive (no database): what is packed, what is unpacked, what is refused."""

from __future__ import annotations

import base64
import io
import os
import tarfile
from pathlib import Path

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.archive import pack, unpacked, unpacked_data

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "migrations"


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "m.tar.gz"
    path.write_bytes(data)
    return path


def test_pack_takes_only_the_services_asked_from_a_checkout(tmp_path):
    root = tmp_path / "engines" / "storage" / "postgres" / "migrations"
    for service in ("ca", "kms"):
        (root / service).mkdir(parents=True)
        (root / service / f"1_{service}.sql").write_text("-- +goose Up\nSELECT 1;\n")
        (root / service / "deeper").mkdir()
        (root / service / "deeper" / "2_x.sql").write_text("x")
    (root / "helpers").mkdir()
    (root / "helpers" / "h.go").write_text("package helpers")

    folder, data = pack(str(tmp_path), ["kms", "ca", "va"])
    assert folder == str(root)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert sorted(archive.getnames()) == ["ca/1_ca.sql", "kms/1_kms.sql"]
    with unpacked(str(write(tmp_path, data))) as directory:
        assert (Path(directory) / "kms" / "1_kms.sql").read_text() == "-- +goose Up\nSELECT 1;\n"
        assert oct(os.stat(directory).st_mode & 0o777) == "0o700"
    assert not Path(directory).exists()


def test_pack_without_services_takes_the_folder_itself():
    folder, data = pack(str(FIXTURES / "ca"))
    assert folder == str(FIXTURES / "ca")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert sorted(archive.getnames()) == sorted(p.name for p in (FIXTURES / "ca").iterdir())


def test_a_link_to_a_file_is_sent_as_the_file(tmp_path):
    (tmp_path / "real.sql").write_text("-- +goose Up\nSELECT 1;\n")
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "1_linked.sql").symlink_to(tmp_path / "real.sql")
    _folder, data = pack(str(tmp_path), ["ca"])
    with unpacked(str(write(tmp_path, data))) as directory:
        linked = Path(directory) / "ca" / "1_linked.sql"
        assert not linked.is_symlink() and linked.read_text() == "-- +goose Up\nSELECT 1;\n"


def test_pack_refuses_a_missing_folder(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        pack(str(tmp_path / "nowhere"))


def test_a_directory_is_used_as_it_is():
    with unpacked(str(FIXTURES)) as directory:
        assert directory == str(FIXTURES)


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../escaped.sql"),
        tarfile.TarInfo("/abs.sql"),
        tarfile.TarInfo("ca/link.sql"),
    ],
)
def test_an_archive_with_an_unsafe_member_is_refused_before_a_file_is_written(tmp_path, member):
    if member.name == "ca/link.sql":
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(tarfile.TarInfo("ca/1_ok.sql"), io.BytesIO(b""))
        archive.addfile(member)
    path = str(write(tmp_path, buffer.getvalue()))
    with pytest.raises(InvalidInput, match="not a plain file or directory inside the archive"), unpacked(path):
        pass
    assert not (tmp_path / "escaped.sql").exists()


def test_a_file_that_is_not_an_archive_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(InvalidInput, match="not a directory, nor a tar archive"), unpacked(str(path)):
        pass


def test_an_archive_sent_as_base64_in_the_arguments_unpacks_like_a_file_and_goes_afterwards():
    folder, data = pack(str(FIXTURES), ["ca", "va"])
    with unpacked_data(base64.b64encode(data).decode()) as directory:
        assert sorted(os.listdir(directory)) == ["ca", "va"]
        assert sorted(os.listdir(Path(directory) / "va")) == sorted(os.listdir(Path(folder) / "va"))
    assert not os.path.exists(directory)


@pytest.mark.parametrize("encoded", ["not base64!", base64.b64encode(b"no tar here").decode()])
def test_an_archive_argument_that_is_not_an_archive_is_refused(encoded):
    with pytest.raises(InvalidInput, match="archive is not the base64 text of a tar archive"), unpacked_data(encoded):
        pass
