"""pgoutput (protocol version 1) from hand-built messages, and the statements that apply its changes to a copy."""

from __future__ import annotations

import struct
from datetime import datetime, timezone

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils._pg import sql
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy import change_sql
from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.pgoutput import (
    UNCHANGED,
    Begin,
    Column,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    Relation,
    Transactions,
    Truncate,
    Tuple,
    TypeInfo,
    Update,
    decode,
    int_to_lsn,
    lsn_to_int,
    pg_timestamp,
)

TEXT, INT8, BYTEA = 25, 20, 17


# The wire format, written out as the PostgreSQL documentation states it.
def cstring(text: str) -> bytes:
    return text.encode() + b"\0"


def tuple_data(*values) -> bytes:
    out = struct.pack("!h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is UNCHANGED:
            out += b"u"
        else:
            data = value.encode()
            out += b"t" + struct.pack("!i", len(data)) + data
    return out


def begin(final_lsn=0x16_B374D848, commit_time=1, xid=42) -> bytes:
    return b"B" + struct.pack("!QqI", final_lsn, commit_time, xid)


def commit(commit_lsn=0x16_B374D848, end_lsn=0x16_B374D878, commit_time=1) -> bytes:
    return b"C" + struct.pack("!BQQq", 0, commit_lsn, end_lsn, commit_time)


def relation(oid=16384, name="certs", columns=(("id", TEXT, 1), ("n", INT8, 0)), identity=b"d") -> bytes:
    out = b"R" + struct.pack("!I", oid) + cstring("public") + cstring(name) + identity + struct.pack("!h", len(columns))
    for column_name, type_oid, flags in columns:
        out += struct.pack("!B", flags) + cstring(column_name) + struct.pack("!Ii", type_oid, -1)
    return out


def insert(*values, oid=16384) -> bytes:
    return b"I" + struct.pack("!I", oid) + b"N" + tuple_data(*values)


def update(new, old=None, old_kind=b"K", oid=16384) -> bytes:
    out = b"U" + struct.pack("!I", oid)
    if old is not None:
        out += old_kind + tuple_data(*old)
    return out + b"N" + tuple_data(*new)


def delete(old, old_kind=b"K", oid=16384) -> bytes:
    return b"D" + struct.pack("!I", oid) + old_kind + tuple_data(*old)


def truncate(*oids, options=0) -> bytes:
    return b"T" + struct.pack("!iB", len(oids), options) + b"".join(struct.pack("!I", oid) for oid in oids)


CERTS = Relation(16384, "public", "certs", "d", (Column("id", TEXT, True), Column("n", INT8, False)))


@pytest.mark.parametrize(
    ("text", "position"),
    [("0/0", 0), ("0/16B3748", 0x16B3748), ("16/B374D848", 0x16_B374D848), ("FFFFFFFF/FFFFFFFF", 2**64 - 1)],
)
def test_lsn_both_ways(text, position):
    assert lsn_to_int(text) == position
    assert int_to_lsn(position) == text


def test_lsn_refuses_other_text():
    with pytest.raises(ValueError, match="Not an LSN"):
        lsn_to_int("16B374D848")


def test_pg_timestamp_counts_from_2000_utc():
    assert pg_timestamp(0) == datetime(2000, 1, 1, tzinfo=timezone.utc)
    assert pg_timestamp(86_400_000_001) == datetime(2000, 1, 2, 0, 0, 0, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (begin(), Begin(0x16_B374D848, 1, 42)),
        (commit(), Commit(0x16_B374D848, 0x16_B374D878, 1)),
        (b"O" + struct.pack("!Q", 7) + cstring("node_a"), Origin(7, "node_a")),
        (b"Y" + struct.pack("!I", 90001) + cstring("ca") + cstring("status"), TypeInfo(90001, "ca", "status")),
        (relation(), CERTS),
        (
            relation(identity=b"f", columns=(("a", TEXT, 1), ("b", BYTEA, 1))),
            Relation(16384, "public", "certs", "f", (Column("a", TEXT, True), Column("b", BYTEA, True))),
        ),
        (insert("x", None), Insert(16384, Tuple("N", ("x", None)))),
        (insert("é€", "12"), Insert(16384, Tuple("N", ("é€", "12")))),
        (update(["x", "2"]), Update(16384, None, Tuple("N", ("x", "2")))),
        (
            update(["y", UNCHANGED], old=["x", None]),
            Update(16384, Tuple("K", ("x", None)), Tuple("N", ("y", UNCHANGED))),
        ),
        (
            update(["x", "2"], old=["x", "1"], old_kind=b"O"),
            Update(16384, Tuple("O", ("x", "1")), Tuple("N", ("x", "2"))),
        ),
        (delete(["x", None]), Delete(16384, Tuple("K", ("x", None)))),
        (delete(["x", "1"], old_kind=b"O"), Delete(16384, Tuple("O", ("x", "1")))),
        (truncate(1, 2), Truncate((1, 2), False, False)),
        (truncate(3, options=1), Truncate((3,), True, False)),
        (truncate(3, options=3), Truncate((3,), True, True)),
        (
            b"M" + struct.pack("!BQ", 1, 9) + cstring("lamassu") + struct.pack("!i", 2) + b"hi",
            LogicalMessage(True, 9, "lamassu", b"hi"),
        ),
    ],
)
def test_decode(payload, message):
    assert decode(payload) == message
    assert decode(memoryview(payload)) == message


def test_relation_key_columns():
    assert CERTS.key_columns == (Column("id", TEXT, True),)
    assert CERTS.qualified_name == "public.certs"


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"", "Empty pgoutput message"),
        (b"Z\0", "Unknown pgoutput message type 'Z'"),
        (b"S" + struct.pack("!I", 1), "Unknown pgoutput message type 'S'"),  # a streamed transaction (version 2)
        (b"I" + struct.pack("!I", 1) + b"N\0\1b" + struct.pack("!i", 1) + b"x", "binary column value"),
        (b"I" + struct.pack("!I", 1) + b"N\0\1x", "Unknown pgoutput column value kind 'x'"),
        (b"I" + struct.pack("!I", 1) + b"K" + tuple_data("x"), "Insert: expected one of N, got 'K'"),
        (b"D" + struct.pack("!I", 1) + b"N" + tuple_data("x"), "Delete: expected one of K, O, got 'N'"),
        (begin()[:-1], "truncated"),
        (b"I" + struct.pack("!I", 1) + b"N\0\1t" + struct.pack("!i", 5) + b"ab", "truncated"),
        (begin() + b"\0", "Begin message has 1 bytes left over"),
        (b"Y" + struct.pack("!I", 1) + b"ca", "string not terminated"),
    ],
)
def test_decode_refuses(payload, error):
    with pytest.raises(ValueError, match=error):
        decode(payload)


def feed_all(transactions: Transactions, *payloads):
    return [transactions.feed(payload, 0x1000 + position) for position, payload in enumerate(payloads)]


def test_transaction_comes_back_at_its_commit_with_each_change_s_relation():
    stream = Transactions()
    results = feed_all(stream, begin(), relation(), insert("a", "1"), update(["a", "2"]), delete(["a", None]), commit())
    assert results[:-1] == [None] * 5
    transaction = results[-1]
    assert transaction.begin == Begin(0x16_B374D848, 1, 42)
    assert transaction.commit.end_lsn == 0x16_B374D878
    assert transaction.changes == [
        Insert(16384, Tuple("N", ("a", "1")), CERTS),
        Update(16384, None, Tuple("N", ("a", "2")), CERTS),
        Delete(16384, Tuple("K", ("a", None)), CERTS),
    ]
    assert stream.relations == {16384: CERTS}
    assert not stream.in_transaction
    # The next transaction starts empty and still knows the relation.
    assert feed_all(stream, begin(), insert("b", None), commit())[-1].changes == [
        Insert(16384, Tuple("N", ("b", None)), CERTS)
    ]


def test_a_new_relation_message_replaces_the_old_and_earlier_changes_keep_theirs():
    altered = relation(columns=(("id", TEXT, 1), ("n", INT8, 0), ("note", TEXT, 0)))
    stream = Transactions()
    transaction = feed_all(stream, begin(), relation(), insert("a", "1"), altered, insert("b", "2", "hi"), commit())[-1]
    before, after = (change.relation for change in transaction.changes)
    assert before == CERTS
    assert [column.name for column in after.columns] == ["id", "n", "note"]
    assert stream.relations[16384] == after


def test_truncate_keeps_the_relations_it_names_and_origin_is_kept():
    other = relation(oid=16390, name="keys")
    stream = Transactions()
    origin = b"O" + struct.pack("!Q", 7) + cstring("node_a")
    transaction = feed_all(stream, relation(), other, begin(), origin, truncate(16390, 16384, options=2), commit())[-1]
    (change,) = transaction.changes
    assert [rel.name for rel in change.relations] == ["keys", "certs"]
    assert change.restart_identity and not change.cascade
    assert transaction.origin == Origin(7, "node_a")


@pytest.mark.parametrize(
    ("payloads", "error"),
    [
        ((relation(), insert("a", "1")), r"Insert at 0/1001 outside a transaction"),
        ((commit(),), "Commit at 0/1000 outside a transaction"),
        ((truncate(16384),), "Truncate at 0/1000 outside a transaction"),
        ((begin(), begin()), "Begin at 0/1001 inside an open transaction"),
        ((begin(), insert("a", "1")), "relation 16384, which no Relation message described"),
    ],
)
def test_transactions_refuse(payloads, error):
    with pytest.raises(ValueError, match=error):
        feed_all(Transactions(), *payloads)


# The statements: rendered without a server (Identifier quoting as PostgreSQL's for plain names).
def render(composable) -> str:
    if isinstance(composable, sql.Composed):
        return "".join(render(part) for part in composable)
    if isinstance(composable, sql.Identifier):
        return ".".join('"' + name.replace('"', '""') + '"' for name in composable.strings)
    if isinstance(composable, sql.Placeholder):
        return "%s"
    if isinstance(composable, sql.SQL):
        return composable.string
    raise TypeError(composable)


def rendered(change, relation, schema="stage"):
    query, params = change_sql.statement(change, relation, schema)
    return render(query), params


COMPOSITE = Relation(
    2, "public", "pairs", "d", (Column("a", TEXT, True), Column("body", TEXT, False), Column("b", INT8, True))
)
FULL = Relation(3, "public", "log", "f", (Column("at", TEXT, True), Column("what", TEXT, True)))
NO_KEY = Relation(4, "public", "bag", "n", (Column("x", TEXT, False),))


@pytest.mark.parametrize(
    ("change", "relation", "expected"),
    [
        (
            Insert(2, Tuple("N", ("k", None, "7"))),
            COMPOSITE,
            ('INSERT INTO "stage"."pairs" ("a", "body", "b") VALUES (%s, %s, %s)', ["k", None, "7"]),
        ),
        (
            Update(2, None, Tuple("N", ("k", UNCHANGED, "7"))),
            COMPOSITE,
            ('UPDATE "stage"."pairs" SET "a" = %s, "b" = %s WHERE "a" = %s AND "b" = %s', ["k", "7", "k", "7"]),
        ),
        (
            Update(2, Tuple("K", ("k", None, "7")), Tuple("N", ("k2", "x", "8"))),
            COMPOSITE,
            (
                'UPDATE "stage"."pairs" SET "a" = %s, "body" = %s, "b" = %s WHERE "a" = %s AND "b" = %s',
                ["k2", "x", "8", "k", "7"],
            ),
        ),
        (
            Update(2, Tuple("O", ("k", "old", "7")), Tuple("N", ("k", "new", "7"))),
            COMPOSITE,
            (
                'UPDATE "stage"."pairs" SET "a" = %s, "body" = %s, "b" = %s WHERE "a" = %s AND "b" = %s',
                ["k", "new", "7", "k", "7"],
            ),
        ),
        (
            Update(3, Tuple("O", ("t1", None)), Tuple("N", ("t1", "done"))),
            FULL,
            (
                'UPDATE "stage"."log" SET "at" = %s, "what" = %s WHERE ctid = '
                '(SELECT ctid FROM "stage"."log" WHERE "at" = %s AND "what" IS NULL LIMIT 1)',
                ["t1", "done", "t1"],
            ),
        ),
        (
            Update(2, None, Tuple("N", (UNCHANGED, UNCHANGED, "7"))),
            Relation(
                2,
                "public",
                "pairs",
                "d",
                (Column("a", TEXT, False), Column("body", TEXT, False), Column("b", INT8, True)),
            ),
            ('UPDATE "stage"."pairs" SET "b" = %s WHERE "b" = %s', ["7", "7"]),
        ),
        (
            Delete(2, Tuple("K", ("k", None, "7"))),
            COMPOSITE,
            ('DELETE FROM "stage"."pairs" WHERE "a" = %s AND "b" = %s', ["k", "7"]),
        ),
        (
            Delete(3, Tuple("O", ("t1", "x"))),
            FULL,
            (
                'DELETE FROM "stage"."log" WHERE ctid = (SELECT ctid FROM "stage"."log" WHERE "at" = %s AND "what" = %s LIMIT 1)',
                ["t1", "x"],
            ),
        ),
        (
            Delete(4, Tuple("O", ("a",))),
            NO_KEY,
            ('DELETE FROM "stage"."bag" WHERE ctid = (SELECT ctid FROM "stage"."bag" WHERE "x" = %s LIMIT 1)', ["a"]),
        ),
        (Truncate((2,), False, False), [COMPOSITE], ('TRUNCATE "stage"."pairs"', [])),
        (
            Truncate((2, 3), True, True),
            [COMPOSITE, FULL],
            ('TRUNCATE "stage"."pairs", "stage"."log" RESTART IDENTITY CASCADE', []),
        ),
        (Truncate((3,), False, True), FULL, ('TRUNCATE "stage"."log" RESTART IDENTITY', [])),
    ],
)
def test_statement(change, relation, expected):
    assert rendered(change, relation) == expected


def test_update_with_only_unchanged_values_still_finds_its_row():
    relation = Relation(5, "public", "blob", "d", (Column("id", TEXT, True), Column("big", TEXT, False)))
    # Nothing to set (every value sent was unchanged TOAST): the statement stays valid and still finds the row.
    change = Update(5, Tuple("K", ("k", None)), Tuple("N", (UNCHANGED, UNCHANGED)))
    assert rendered(change, relation) == ('UPDATE "stage"."blob" SET "id" = "id" WHERE "id" = %s', ["k"])


def test_identifiers_are_quoted_not_pasted():
    evil = Relation(6, "public", 'we"ird; DROP', "d", (Column('c"ol', TEXT, True),))
    assert rendered(Delete(6, Tuple("K", ("v",))), evil, schema="s s") == (
        'DELETE FROM "s s"."we""ird; DROP" WHERE "c""ol" = %s',
        ["v"],
    )


@pytest.mark.parametrize(
    ("change", "relation", "error"),
    [
        (Update(4, None, Tuple("N", ("a",))), NO_KEY, "Update of table 'bag', which has no replica identity key"),
        (Delete(4, Tuple("K", ("a",))), NO_KEY, "Delete of table 'bag', which has no replica identity key"),
        (Insert(2, Tuple("N", ("k", "7"))), COMPOSITE, "Change of table 'pairs' has 2 values for its 3 columns"),
        (Insert(2, Tuple("N", ("k", UNCHANGED, "7"))), COMPOSITE, "Insert into table 'pairs' without every value"),
        (Update(2, None, Tuple("N", (UNCHANGED, "x", "7"))), COMPOSITE, "left a key value unsent"),
    ],
)
def test_statement_refuses(change, relation, error):
    with pytest.raises(ValueError, match=error):
        change_sql.statement(change, relation, "stage")


def test_transaction_statements_use_the_relations_kept_with_the_changes():
    stream = Transactions()
    transaction = feed_all(stream, begin(), relation(), insert("a", "1"), truncate(16384), commit())[-1]
    assert [(render(query), params) for query, params in change_sql.transaction_statements(transaction, "s")] == [
        ('INSERT INTO "s"."certs" ("id", "n") VALUES (%s, %s)', ["a", "1"]),
        ('TRUNCATE "s"."certs"', []),
    ]


@pytest.mark.parametrize(
    ("change", "relation", "key"),
    [
        (Insert(2, Tuple("N", ("k", None, "7"))), COMPOSITE, ("k", "7")),
        (Update(2, Tuple("K", ("k", None, "7")), Tuple("N", ("k2", "x", "8"))), COMPOSITE, ("k2", "8")),
        (Update(2, Tuple("K", ("k", None, "7")), Tuple("N", (UNCHANGED, "x", "8"))), COMPOSITE, ("k", "8")),
        (Delete(2, Tuple("K", ("k", None, "7"))), COMPOSITE, ("k", "7")),
        (Delete(3, Tuple("O", ("t1", None))), FULL, ("t1", None)),
    ],
)
def test_key_values(change, relation, key):
    assert change_sql.key_values(change, relation) == key


@pytest.mark.parametrize(
    ("change", "relation", "error"),
    [
        (Insert(4, Tuple("N", ("a",))), NO_KEY, "no replica identity key"),
        (Update(2, None, Tuple("N", (UNCHANGED, "x", "8"))), COMPOSITE, "left a key value unsent"),
    ],
)
def test_key_values_refuse(change, relation, error):
    with pytest.raises(ValueError, match=error):
        change_sql.key_values(change, relation)


def test_inline_puts_each_parameter_in_its_placeholder_as_a_literal():
    relation = Relation(5, "public", "100%s", "d", (Column("k%s", TEXT, True), Column("v", TEXT, False)))
    query, params = change_sql.statement(Update(5, None, Tuple("N", ("a'b", None))), relation, "stage")
    inlined = change_sql.inline(query, params)
    found = {"literals": [], "placeholders": 0}

    def collect(part):
        if isinstance(part, sql.Literal):
            found["literals"].append(part.wrapped)
        elif isinstance(part, sql.Placeholder):
            found["placeholders"] += 1
        elif isinstance(part, sql.Composed):
            for child in part.seq:
                collect(child)

    collect(inlined)
    # In order, and no placeholder left: the statement runs without parameters, its "%s" names stay names.
    assert found == {"literals": params, "placeholders": 0}
    with pytest.raises(ValueError):
        change_sql.inline(query, [*params, "one too many"])
