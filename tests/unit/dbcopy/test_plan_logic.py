"""Pure logic of the copy: names, request checks, view order, verification verdicts, COPY choices, statements."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils._compat import zip_strict
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy import ddl
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.catalog import reading_path
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.catalog_model import (
    Column,
    Constraint,
    Extension,
    Grant,
    Index,
    Sequence,
    SourceCatalog,
    Table,
    View,
    view_order,
)
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.request import (
    STAGING_PREFIX,
    CopyRequest,
    staging_name,
)
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.verify import (
    TableCheck,
    changes_since_copy,
    mismatch,
)
from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("ca", "lamassu_stage_ca"),
        ("devicemanager", "lamassu_stage_devicemanager"),
        ("x" * 49, "lamassu_stage_" + "x" * 49),
    ],
)
def test_staging_name_short(target, expected):
    assert staging_name(target) == expected


@pytest.mark.parametrize("target", ["y" * 50, "z" * 63, "é" * 31, "a" * 40 + "b" * 23])
def test_staging_name_long_is_unique_and_fits(target):
    name = staging_name(target)
    assert len(name.encode()) <= 63 and name.startswith(STAGING_PREFIX)
    assert name == staging_name(target)
    assert name != staging_name(target[:-1] + "q")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"source_database": ""}, "empty"),
        ({"target_database": "ca"}, "both 'ca'"),
        ({"jobs": 0}, "jobs must be at least 1"),
        ({"verify": "maybe"}, "verify must be one of"),
        ({"drop_source": True, "verify": "none"}, "verified copy"),
        ({"target_schema": "lamassu_stage_ca"}, "reserved"),
        ({"target_schema": "lamassu_migration"}, "reserved"),
        ({"target_schema": "pg_ca"}, "pg_"),
        ({"target_schema": "s" * 64}, "63 bytes"),
    ],
)
def test_request_validation_refuses(changes, message):
    request = CopyRequest(**{"source_database": "ca", **changes})
    with pytest.raises(InvalidInput, match=message):
        request.validate()


def test_request_target_defaults_to_source_database():
    request = CopyRequest(source_database="kms")
    request.validate()
    assert request.target == "kms"


def _view(name, *depends):
    return View(name, 0, "admin", "SELECT 1", depends_on=list(depends))


@pytest.mark.parametrize(
    ("views", "expected"),
    [
        ([_view("b", "a"), _view("a")], ["a", "b"]),
        ([_view("c", "b"), _view("b", "a"), _view("a")], ["a", "b", "c"]),
        ([_view("a"), _view("b")], ["a", "b"]),
        ([_view("v", "some_table")], ["v"]),
    ],
)
def test_view_order(views, expected):
    assert [v.name for v in view_order(views)] == expected


def test_view_cycle_is_refused():
    with pytest.raises(InvalidInput, match="cycle"):
        view_order([_view("a", "b"), _view("b", "a")])


@pytest.mark.parametrize(
    ("source", "target", "verdict"),
    [
        (TableCheck(3), TableCheck(3), None),
        (TableCheck(3), TableCheck(2), "3 rows in the source, 2 in the copy"),
        (TableCheck(3, "3:1:2"), TableCheck(3, "3:1:2"), None),
        (TableCheck(3, "3:1:2"), TableCheck(3, "3:1:9"), "different content checksums"),
        (None, None, None),
    ],
)
def test_mismatch(source, target, verdict):
    result = mismatch("t", source, target)
    if verdict is None:
        assert result is None
    else:
        assert verdict in result and "table t" in result


RECORDED = [{"name": "a", "rows": 2, "checksum": "2:7"}, {"name": "b", "rows": 1, "checksum": None}]


@pytest.mark.parametrize(
    ("current", "changes"),
    [
        ({"a": TableCheck(2, "2:7"), "b": TableCheck(1)}, []),
        ({"a": TableCheck(2), "b": TableCheck(1)}, []),  # a count-only measure compares counts
        ({"a": TableCheck(2, "2:7"), "b": TableCheck(1, "1:5")}, []),  # b's copy recorded no checksum
        ({"a": TableCheck(2, "2:8"), "b": TableCheck(1)}, ["table a: rows changed since the copy"]),
        ({"a": TableCheck(3, "3:9"), "b": TableCheck(0)}, ["table a: 2 rows at the copy, 3 now", "table b: 1 rows"]),
        ({"a": TableCheck(2, "2:7"), "c": TableCheck(0)}, ["table c was added", "table b is gone"]),
    ],
)
def test_changes_since_copy(current, changes):
    found = changes_since_copy(RECORDED, current)
    assert len(found) == len(changes) and all(text in line for text, line in zip_strict(changes, found))


@pytest.mark.parametrize(
    ("columns", "binary", "copied"),
    [
        ([Column("a", "integer", 23), Column("b", "text[]", 1009)], True, ["a", "b"]),
        ([Column("a", "integer", 23), Column("m", "mood", 16500)], False, ["a", "m"]),
        ([Column("p", "numeric", 1700), Column("t", "numeric", 1700, generated="s")], True, ["p"]),
    ],
)
def test_copy_format_and_columns(columns, binary, copied):
    table = Table("t", 1, "admin", columns=columns)
    assert table.binary_safe is binary
    assert table.copy_columns == copied


@pytest.mark.parametrize(
    ("schema", "extensions", "expected"),
    [
        ("public", [], ["public", "pg_catalog"]),
        ("public", [Extension("citext", "public", "1.6")], ["public", "pg_catalog"]),
        ("public", [Extension("citext", "ext", "1.6"), Extension("x", "ext", "1")], ["public", "ext", "pg_catalog"]),
        ("app", [Extension("a", "public", "1"), Extension("b", "app", "1")], ["app", "public", "pg_catalog"]),
    ],
)
def test_reading_path(schema, extensions, expected):
    assert reading_path(schema, extensions) == expected


def _catalog() -> SourceCatalog:
    table = Table(
        "certificates",
        1,
        "admin",
        columns=[Column("serial_number", "text", 25, not_null=True), Column("id", "bigint", 20, identity="d")],
        constraints=[
            Constraint("certificates_pkey", "p", "PRIMARY KEY (serial_number)"),
            Constraint("positive", "c", "CHECK ((id > 0))"),
            Constraint("later", "c", "CHECK ((id < 10)) NOT VALID", validated=False),
            Constraint("fk_self", "f", "FOREIGN KEY (id) REFERENCES certificates(id)"),
        ],
        indexes=[Index("by_id", False, "btree (id)")],
        acl=[Grant("admin", "SELECT", False), Grant("reader", "SELECT", False), Grant("PUBLIC", "SELECT", False)],
    )
    sequence = Sequence(
        "certificates_id_seq", "admin", "bigint", 1, 1, 1, 2**63 - 1, 1, False, ("certificates", "id"), True, 5, True
    )
    return SourceCatalog("ca", "public", "admin", None, None, tables=[table], sequences=[sequence])


def _kinds(statements) -> list[str]:
    """The SQL text of composed statements without a connection: the literal SQL parts only."""

    def flatten(item) -> str:
        parts = getattr(item, "seq", None)
        if parts is not None:
            return "".join(flatten(p) for p in parts)
        wrapped = getattr(item, "string", None)
        if isinstance(wrapped, str):
            return wrapped
        strings = getattr(item, "strings", None)
        if strings:
            return ".".join(strings)
        return str(getattr(item, "wrapped", ""))

    return [flatten(s) for s in statements]


def test_statements_put_constraints_in_the_right_phase():
    catalog = _catalog()
    pre = _kinds(ddl.pre_data(catalog, "stage"))
    post = _kinds(ddl.table_post_data(catalog.tables[0], "stage"))
    final = _kinds(ddl.final(catalog, "stage"))
    create = next(s for s in pre if s.startswith("CREATE TABLE"))
    assert "GENERATED BY DEFAULT AS IDENTITY" in create and "certificates_id_seq" in create
    assert "CHECK ((id > 0))" in create and "NOT VALID" not in create
    assert not any(s.startswith("CREATE SEQUENCE") for s in pre), "identity sequences come with their table"
    assert [s for s in post if "ADD CONSTRAINT" in s] == [
        "ALTER TABLE stage.certificates ADD CONSTRAINT certificates_pkey PRIMARY KEY (serial_number)"
    ]
    assert "CREATE INDEX by_id ON stage.certificates USING btree (id)" in post
    assert any("fk_self" in s for s in final) and any("later" in s and "NOT VALID" in s for s in final)
    assert "REVOKE ALL ON TABLE stage.certificates FROM PUBLIC, admin" in final
    assert "GRANT SELECT ON TABLE stage.certificates TO PUBLIC" in final
    assert final.index("ALTER TABLE stage.certificates OWNER TO admin") < final.index(
        "REVOKE ALL ON TABLE stage.certificates FROM PUBLIC, admin"
    )
    values = _kinds(ddl.sequence_values(catalog, "stage"))
    assert len(values) == 1 and "setval" in values[0]


def test_default_acl_needs_no_grant_statements():
    assert ddl.grant_statements("TABLE", None, "admin", None) == []
