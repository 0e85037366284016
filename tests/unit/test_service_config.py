"""The line editor of a service's storage block: only the given keys change, the rest of the file stays byte for
byte, the password is never written, and what it cannot edit safely it refuses before anything is written."""

from __future__ import annotations

import difflib
import os
import stat

import pytest
import yaml

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.service_config import (
    HIDDEN,
    edit_storage,
    ensure_storage,
    format_scalar,
    restore,
    storage_settings,
)

SETTINGS = storage_settings(hostname="db.internal", port=5432, username="lamassu", database="lamassu")
# What the cutover writes by default: the database only; the service keeps its host, port and login.
DATABASE_ONLY = storage_settings(database="lamassu")
WRITTEN = {
    "provider": "postgres",
    "hostname": "db.internal",
    "port": 5432,
    "username": "lamassu",
    "database": "lamassu",
}

# Shaped like the config a Lamassu service reads (server, event bus, storage, clients); the values are made up.
SERVICE_CONFIG = """\
logs:
  level: "debug"

server:
  listen_address: "0.0.0.0"
  port: 8085

publisher_event_bus:
  enabled: true
  hostname: rabbitmq
  basic_auth:
    username: "bus"
    password: "bus-secret"

# Where the service keeps its data.
storage:
  log_level: "info"
  provider: "postgres" # couch_db | postgres
  hostname: postgres-old
  port: 5432
  username: "admin"
  password: "db-secret"

kms_client:
  hostname: kms
  port: 8085
"""


def storage_of(text: str) -> dict:
    return yaml.safe_load(text)["storage"]


def others(text: str) -> dict:
    doc = yaml.safe_load(text) or {}
    doc.pop("storage", None)
    return doc


@pytest.mark.parametrize(
    ("case", "text", "expected_storage"),
    [
        ("no storage block", "logs:\n  level: info\n", WRITTEN),
        ("empty file", "", WRITTEN),
        ("only comments", "# nothing yet\n", WRITTEN),
        ("no final newline", "logs:\n  level: info", WRITTEN),
        ("empty storage block", "storage:\nlogs:\n  level: info\n", WRITTEN),
        ("storage with an anchor", "storage: &pg\n  provider: postgres\n", WRITTEN),
        ("other keys kept", SERVICE_CONFIG, {**WRITTEN, "log_level": "info", "password": "db-secret"}),
        (
            "password absent stays absent",
            "storage:\n  provider: postgres\n  hostname: x\n",
            WRITTEN,
        ),
        (
            "four-space indentation",
            "server:\n    port: 8085\nstorage:\n    hostname: x\n    password: p\n",
            {**WRITTEN, "password": "p"},
        ),
        (
            "odd indentation inside the block",
            "storage:\n   hostname: x\n   extra:\n       nested: 1\n",
            {**WRITTEN, "extra": {"nested": 1}},
        ),
        (
            "indented top level",
            "  logs: 1\n  storage:\n    hostname: x\n",
            WRITTEN,
        ),
        (
            "document markers",
            "---\nlogs: 1\n...\n",
            WRITTEN,
        ),
        (
            "block scalar value replaced",
            "storage:\n  hostname: |\n    old\n    host\n  port: 1\n",
            WRITTEN,
        ),
        (
            "comments inside the block",
            "storage:\n  # the host\n  hostname: x   # old host\n\n  # trailing\nnext: 1\n",
            WRITTEN,
        ),
        ("quoted key", 'storage:\n  "hostname": x\n', WRITTEN),
        ("a key with a YAML-only escape", 'storage:\n  "\\x41": 1\n', {**WRITTEN, "A": 1}),
        ("a line separator inside a value", 'motd: "a\u2028b"\nstorage:\n  hostname: x\n', WRITTEN),
        ("storage as the last line", "logs: 1\nstorage:", WRITTEN),
    ],
)
def test_the_storage_block_holds_the_settings_and_nothing_else_changes(case, text, expected_storage):
    edit = edit_storage(text, SETTINGS)
    assert edit.changed
    assert storage_of(edit.after) == expected_storage
    assert others(edit.after) == others(text)
    again = edit_storage(edit.after, SETTINGS)
    assert not again.changed and again.after == edit.after, "a second edit changes nothing"


def test_only_the_changed_lines_differ_and_comments_and_quoting_stay():
    after = edit_storage(SERVICE_CONFIG, SETTINGS).after
    diff = [line for line in difflib.ndiff(SERVICE_CONFIG.splitlines(), after.splitlines()) if line[:1] in "+-"]
    assert diff == [
        "-   hostname: postgres-old",
        "+   hostname: db.internal",
        '-   username: "admin"',
        '+   username: "lamassu"',
        "+   database: lamassu",
    ]
    assert '  password: "db-secret"\n  database: lamassu\n\nkms_client:\n' in after


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("  hostname: old # the old one", "  hostname: db.internal # the old one"),
        ("  hostname: 'old'", "  hostname: 'db.internal'"),
        ('  hostname: "old"   # kept', '  hostname: "db.internal"   # kept'),
        ('  hostname: "a \\" # b"', '  hostname: "db.internal"'),
        ("  hostname: 'it''s # not'", "  hostname: 'db.internal'"),
        ("  port: '5432'", "  port: 5432"),
        ('  port: "5432"  # a string', "  port: 5432  # a string"),
    ],
)
def test_a_changed_value_keeps_its_quoting_and_its_comment(line, expected):
    after = edit_storage(f"storage:\n{line}\n", SETTINGS).after
    assert expected in after.splitlines()
    assert storage_of(after) == WRITTEN


@pytest.mark.parametrize(
    ("value", "like", "written"),
    [
        ("db.internal", "", "db.internal"),
        ("true", "", '"true"'),
        ("null", "", '"null"'),
        ("1234", "", '"1234"'),
        ("0o17", "", '"0o17"'),
        ("10.0.0.5", "", '"10.0.0.5"'),
        ("0x1F", "", '"0x1F"'),
        ("yes", "", '"yes"'),
        ("::1", "", '"::1"'),
        ("fe80::1%eth0", "", '"fe80::1%eth0"'),
        ("has space", "", '"has space"'),
        ("-dash", "", '"-dash"'),
        ("", "", '""'),
        ("it's", "'x'", "'it''s'"),
        ('say "hi"', '"x"', '"say \\"hi\\""'),
        ("línea", "", '"línea"'),
        ("tab\there", "'x'", '"tab\\there"'),
        (5432, '"x"', "5432"),
    ],
)
def test_scalars_are_written_so_that_they_read_back_as_given(value, like, written):
    assert format_scalar(value, like) == written
    assert yaml.safe_load(f"k: {written}")["k"] == value


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("storage: [a, b]\n", "is a sequence"),
        ("storage:\n  - a\n", "is a sequence"),
        ("storage: postgres\n", "is a string"),
        ("storage: 5\n", "is a number"),
        ("storage: {provider: postgres}\n", "written on one line"),
        ("- a\n- b\n", "holds a YAML sequence"),
        ("just text\n", "holds a YAML string"),
        ("storage:\n  a: 1\nstorage:\n  b: 2\n", "set 2 times"),
        ("a: [\n", "not valid YAML"),
        ("a: 1\n---\nb: 2\n", "not valid YAML"),
        ("base: &b\n  hostname: x\n<<: {storage: {port: 1}}\n", "not written as a top-level"),
        ("storage: &pg\n  hostname: x\nother: *pg\n", "could not edit"),
    ],
)
def test_what_cannot_be_edited_safely_is_refused_with_the_reason(text, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        edit_storage(text, SETTINGS)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_line_endings_are_kept(newline):
    text = SERVICE_CONFIG.replace("\n", newline)
    after = edit_storage(text, SETTINGS).after
    assert after.count("\n") == after.count(newline) == text.count("\n") + 1
    assert storage_of(after)["database"] == "lamassu"


def test_an_equal_value_is_left_as_written():
    text = "storage:\n  provider: 'postgres'\n  hostname: \"db.internal\"\n  port: 5432\n  username: lamassu\n  database: lamassu\n"
    assert not edit_storage(text, SETTINGS).changed


def test_the_database_key_can_be_named():
    settings = storage_settings(hostname="h", port=1, username="u", database="pki", database_key="dbname")
    assert storage_of(edit_storage("storage:\n  hostname: x\n", settings).after)["dbname"] == "pki"


@pytest.mark.parametrize(
    ("given", "written"),
    [
        ({"database": "lamassu"}, {"provider": "postgres", "database": "lamassu"}),
        ({"port": 6432}, {"provider": "postgres", "port": 6432}),
        (
            {"database": "pki", "hostname": "h", "database_key": "dbname"},
            {"provider": "postgres", "hostname": "h", "dbname": "pki"},
        ),
        (
            {"database": "d", "hostname": "h", "port": 1, "username": "u"},
            {"provider": "postgres", "hostname": "h", "port": 1, "username": "u", "database": "d"},
        ),
    ],
)
def test_only_the_settings_given_are_written(given, written):
    settings = storage_settings(**given)
    assert settings == written and list(settings) == list(written)


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ({}, "no storage setting to write"),
        ({"database": None}, "no storage setting to write"),
        ({"database": "d", "hostname": ""}, "hostname is empty"),
        ({"database": "d", "username": ""}, "username is empty"),
        ({"database": ""}, "database is empty"),
        ({"database": "", "database_key": "dbname"}, "dbname is empty"),
        ({"database": "d", "port": 0}, "not a TCP port"),
        ({"database": "d", "database_key": "password"}, "another storage setting"),
        ({"database": "d", "database_key": "username"}, "another storage setting"),
    ],
)
def test_settings_are_checked(given, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        storage_settings(**given)


def test_by_default_the_service_keeps_its_host_port_and_login_with_its_password():
    edit = edit_storage(SERVICE_CONFIG, DATABASE_ONLY)
    assert edit.changed_keys == ("database",)
    assert storage_of(edit.after) == {
        "log_level": "info",
        "provider": "postgres",
        "hostname": "postgres-old",
        "port": 5432,
        "username": "admin",
        "password": "db-secret",
        "database": "lamassu",
    }
    added = [line for line in difflib.ndiff(SERVICE_CONFIG.splitlines(), edit.after.splitlines()) if line[:1] in "+-"]
    assert added == ["+   database: lamassu"]


def test_the_diff_shows_the_storage_block_without_the_password():
    edit = edit_storage(SERVICE_CONFIG, SETTINGS)
    for block in (edit.storage_before, edit.storage_after):
        assert "db-secret" not in block and f"password: {HIDDEN}" in block
        assert "bus-secret" not in block
    assert "hostname: postgres-old" in edit.storage_before and "hostname: db.internal" in edit.storage_after


def test_the_file_is_backed_up_once_edited_in_place_and_restored_byte_for_byte(tmp_path):
    config = tmp_path / "config.yml"
    original = SERVICE_CONFIG.replace("\n", "\r\n").encode()
    config.write_bytes(original)
    config.chmod(0o640)
    backup = tmp_path / "config.yml.pre-lamassu"

    planned = ensure_storage(str(config), SETTINGS, ".pre-lamassu", check_mode=True)
    assert planned["changed"] and planned["backup_created"]
    assert config.read_bytes() == original and not backup.exists(), "check mode writes nothing"

    done = ensure_storage(str(config), SETTINGS, ".pre-lamassu", check_mode=False)
    assert done["changed"] and done["changed_keys"] == ["hostname", "username", "database"]
    assert backup.read_bytes() == original
    assert stat.S_IMODE(os.stat(config).st_mode) == stat.S_IMODE(os.stat(backup).st_mode) == 0o640
    assert storage_of(config.read_text())["database"] == "lamassu"
    assert "password" not in done["storage"]

    edited = config.read_bytes()
    config.write_bytes(edited.replace(b"db.internal", b"moved"))  # edited again since: the backup stays the original
    assert ensure_storage(str(config), SETTINGS, ".pre-lamassu", check_mode=False)["backup_created"] is False
    assert backup.read_bytes() == original
    assert not ensure_storage(str(config), SETTINGS, ".pre-lamassu", check_mode=False)["changed"]

    assert restore(str(config), ".pre-lamassu", check_mode=True)["changed"]
    assert backup.exists()
    restored = restore(str(config), ".pre-lamassu", check_mode=False)
    assert restored["changed"] and restored["restored"]
    assert config.read_bytes() == original and not backup.exists()
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o640
    assert not restore(str(config), ".pre-lamassu", check_mode=False)["changed"]


def test_a_byte_order_mark_is_kept(tmp_path):
    config = tmp_path / "config.yml"
    config.write_bytes(b"\xef\xbb\xbfstorage:\n  hostname: x\n")
    ensure_storage(str(config), SETTINGS, ".pre-lamassu", check_mode=False)
    assert config.read_bytes().startswith(b"\xef\xbb\xbfstorage:\n")
    assert storage_of(config.read_text(encoding="utf-8-sig")) == WRITTEN


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="no such file"):
        ensure_storage(str(tmp_path / "absent.yml"), SETTINGS, ".pre-lamassu", check_mode=False)


def test_a_refused_file_is_left_alone(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("storage: [a]\n")
    with pytest.raises(InvalidInput, match=str(config)):
        ensure_storage(str(config), SETTINGS, ".pre-lamassu", check_mode=False)
    assert config.read_text() == "storage: [a]\n" and not (tmp_path / "config.yml.pre-lamassu").exists()
