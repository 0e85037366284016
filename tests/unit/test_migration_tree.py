"""A Lamassu migrations tree as a checkout holds it: service folders beside entries that are not services."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.migration_tree import (
    CHECKOUT_SUBDIR,
    find_root,
    missing_message,
    read_tree,
)


def checkout(root, services=("ca", "kms")):
    migrations = root / CHECKOUT_SUBDIR
    for service in services:
        (migrations / service).mkdir(parents=True)
        (migrations / service / "00000000000001_create_table.sql").write_text("-- +goose Up\nSELECT 1;\n")
    (migrations / "helpers").mkdir(parents=True)
    (migrations / "helpers" / "helpers.go").write_text("package helpers\n")
    (migrations / "gomigrations.go").write_text("package migrations\n")
    (migrations / "db-to-schema.md").write_text("# plan\n")
    return migrations


@pytest.mark.parametrize("given", ["root", "migrations"])
def test_a_checkout_root_or_its_migrations_folder(tmp_path, given):
    migrations = checkout(tmp_path)
    tree = read_tree(str(tmp_path if given == "root" else migrations), ["ca", "kms", "va"])
    assert tree.root == str(migrations)
    assert tree.files == {"ca": ["00000000000001_create_table.sql"], "kms": ["00000000000001_create_table.sql"]}
    assert tree.missing == ["va"]
    assert tree.ignored == ["db-to-schema.md", "gomigrations.go", "helpers"]
    assert tree.as_dict()["files"] == ["ca/00000000000001_create_table.sql", "kms/00000000000001_create_table.sql"]
    assert missing_message(tree) == (
        f"no migrations folder for service(s) va in {migrations}: their schemas are not migrated "
        "(services with a folder: ca, kms)"
    )


def test_the_order_is_the_order_of_the_services(tmp_path):
    migrations = checkout(tmp_path)
    assert list(read_tree(str(migrations), ["kms", "ca"]).files) == ["kms", "ca"]
    assert missing_message(read_tree(str(migrations), ["kms"])) is None


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p / "nowhere", "does not exist"),
        (lambda p: (p / "file.txt").write_text("x") and p / "file.txt", "is not a directory"),
    ],
)
def test_an_unusable_path_is_refused_with_the_remedy(tmp_path, make, fragment):
    with pytest.raises(InvalidInput, match=f"{fragment}: give a Lamassu checkout or its engines/storage"):
        find_root(str(make(tmp_path)))


def test_no_path_is_refused():
    with pytest.raises(InvalidInput, match="no migrations directory"):
        find_root("")
