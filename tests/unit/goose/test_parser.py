"""goose SQL parser: every construct and every invalid file, with the exact statements goose v3.27 produces."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import InvalidInput
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.parser import (
    MAX_LINE_BYTES,
    ParsedSQL,
    ends_with_semicolon,
    parse_sql,
    parse_sql_file,
    split_lines,
)

from .test_envsub import ENV

# (id, file text, expected Up statements, expected Down statements)
VALID = [
    (
        "simple",
        "-- +goose Up\nCREATE TABLE a (id int);\n\n-- +goose Down\nDROP TABLE a;\n",
        ["CREATE TABLE a (id int);"],
        ["DROP TABLE a;"],
    ),
    (
        "multi_line_statement_keeps_inner_blank_lines",
        "-- +goose Up\nCREATE TABLE a (\n    id int,\n\n    name text\n);\n",
        ["CREATE TABLE a (\n    id int,\n\n    name text\n);"],
        [],
    ),
    (
        "several_statements_on_one_line_are_one_statement",
        "-- +goose Up\nSELECT 1; SELECT 2;\nSELECT 3;\n",
        ["SELECT 1; SELECT 2;", "SELECT 3;"],
        [],
    ),
    (
        "statement_begin_end_with_several_statements",
        "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);\n"
        "INSERT INTO a VALUES (1);\n-- +goose StatementEnd\nSELECT 4;\n",
        ["CREATE TABLE a (id int);\nCREATE TABLE b (id int);\nINSERT INTO a VALUES (1);", "SELECT 4;"],
        [],
    ),
    (
        "statement_block_without_semicolon_is_accepted",
        "-- +goose Up\n-- +goose StatementBegin\nUPDATE a SET x = 1 -- no semicolon\n-- +goose StatementEnd\n",
        ["UPDATE a SET x = 1 -- no semicolon"],
        [],
    ),
    (
        "do_block_in_statement_begin_end",
        "-- +goose Up\n-- +goose StatementBegin\nDO $$\nBEGIN\n    IF NOT EXISTS (SELECT 1) THEN\n"
        "        RAISE NOTICE 'none; really';\n    END IF;\nEND\n$$;\n-- +goose StatementEnd\n\n"
        "-- +goose Down\nSELECT 1;\n",
        [
            "DO $$\nBEGIN\n    IF NOT EXISTS (SELECT 1) THEN\n        RAISE NOTICE 'none; really';\n"
            "    END IF;\nEND\n$$;"
        ],
        ["SELECT 1;"],
    ),
    (
        "plpgsql_function_and_trigger_blocks",
        "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION touch() RETURNS trigger AS $body$\nBEGIN\n"
        "    NEW.updated_at = now();\n    RETURN NEW;\nEND;\n$body$ LANGUAGE plpgsql;\n-- +goose StatementEnd\n"
        "-- +goose StatementBegin\nCREATE TRIGGER t BEFORE UPDATE ON a FOR EACH ROW EXECUTE FUNCTION touch();\n"
        "-- +goose StatementEnd\n",
        [
            "CREATE FUNCTION touch() RETURNS trigger AS $body$\nBEGIN\n    NEW.updated_at = now();\n"
            "    RETURN NEW;\nEND;\n$body$ LANGUAGE plpgsql;",
            "CREATE TRIGGER t BEFORE UPDATE ON a FOR EACH ROW EXECUTE FUNCTION touch();",
        ],
        [],
    ),
    (
        "comments_before_a_statement_are_dropped_inside_are_kept",
        "-- +goose Up\n-- leading comment\n\n   -- indented comment\nCREATE TABLE a (\n    -- inner comment\n"
        "    id int -- trailing\n);\n-- between\n\n-- more\nSELECT 2;\n-- after the last one\n",
        ["CREATE TABLE a (\n    -- inner comment\n    id int -- trailing\n);", "SELECT 2;"],
        [],
    ),
    (
        "comment_first_in_a_statement_block_is_dropped",
        "-- +goose Up\n-- +goose StatementBegin\n-- about the block\nSELECT 1;\n-- inside\nSELECT 2;\n"
        "-- +goose StatementEnd\n",
        ["SELECT 1;\n-- inside\nSELECT 2;"],
        [],
    ),
    (
        "line_ending_with_semicolon_then_comment_keeps_the_comment",
        "-- +goose Up\nSELECT 1;   -- the first\nSELECT 2; -- x; y\n",
        ["SELECT 1;   -- the first", "SELECT 2; -- x; y"],
        [],
    ),
    (
        "semicolon_inside_a_trailing_comment_does_not_end",
        "-- +goose Up\nSELECT 1 -- done;\n+ 1;\n",
        ["SELECT 1 -- done;\n+ 1;"],
        [],
    ),
    (
        "semicolon_mid_line_inside_a_string_does_not_end",
        "-- +goose Up\nINSERT INTO a VALUES ('x;y', 'z')\n, ('w');\n",
        ["INSERT INTO a VALUES ('x;y', 'z')\n, ('w');"],
        [],
    ),
    (
        # goose knows no quotes: a string literal broken after ';' at the end of a line splits the statement.
        "quirk_string_literal_line_ending_with_semicolon_splits",
        "-- +goose Up\nINSERT INTO a VALUES ('first;\nsecond');\n",
        ["INSERT INTO a VALUES ('first;", "second');"],
        [],
    ),
    (
        # goose v3.27 (fixed later upstream, #699): a word starting with '--' inside a string hides the ';'.
        "quirk_double_dash_inside_a_string_hides_the_semicolon",
        "-- +goose Up\nSELECT 'arrow -->';\nSELECT 2;\n",
        ["SELECT 'arrow -->';\nSELECT 2;"],
        [],
    ),
    (
        "semicolon_as_its_own_word",
        "-- +goose Up\nEND   ; -- comment\nSELECT 1\t;\n",
        ["END   ; -- comment", "SELECT 1\t;"],
        [],
    ),
    (
        "backslashes_in_literals_are_kept",
        "-- +goose Up\nUPDATE a SET n = regexp_replace(n, '\\s+', '', 'g');\nSELECT E'\\\\x00';\n",
        ["UPDATE a SET n = regexp_replace(n, '\\s+', '', 'g');", "SELECT E'\\\\x00';"],
        [],
    ),
    (
        "non_ascii_comments",
        "-- +goose Up\n-- créé pour l'équipe ✓ 日本語\nCREATE TABLE a (\n    nom text -- colonne «nom»\n);\n",
        ["CREATE TABLE a (\n    nom text -- colonne «nom»\n);"],
        [],
    ),
    (
        "down_only_select",
        "-- +goose Up\n-- +goose StatementBegin\nSELECT 'up SQL query';\n-- +goose StatementEnd\n\n"
        "-- +goose Down\n-- +goose StatementBegin\nSELECT 'down SQL query';\n-- +goose StatementEnd\n",
        ["SELECT 'up SQL query';"],
        ["SELECT 'down SQL query';"],
    ),
    ("empty_down", "-- +goose Up\nSELECT 1;\n\n-- +goose Down\n", ["SELECT 1;"], []),
    ("no_down_section", "-- +goose Up\nSELECT 1;\n", ["SELECT 1;"], []),
    ("last_line_without_newline", "-- +goose Up\nSELECT 1;", ["SELECT 1;"], []),
    ("only_annotations_and_comments", "\n\n-- comment\n-- +goose Up\n\n-- comment\n-- +goose Down\n\n", [], []),
    (
        "crlf_line_endings",
        "-- +goose Up\r\nCREATE TABLE a (\r\n    id int\r\n);\r\n-- +goose Down\r\nDROP TABLE a;\r\n",
        ["CREATE TABLE a (\n    id int\n);"],
        ["DROP TABLE a;"],
    ),
    (
        "annotations_are_case_insensitive_and_may_omit_the_space",
        "--+goose UP\n-- +goose statementbegin\nSELECT 1;\n-- +goose STATEMENTEND   \n-- +goose down\nSELECT 2;\n",
        ["SELECT 1;"],
        ["SELECT 2;"],
    ),
    (
        # strings.Contains(line, "+goose") is case-sensitive: "+GOOSE" lines are plain comments.
        "quirk_uppercase_goose_marker_is_a_plain_comment",
        "-- +goose Up\nSELECT 1;\n-- +GOOSE Down\nSELECT 2;\n",
        ["SELECT 1;", "SELECT 2;"],
        [],
    ),
    (
        # An empty block leaves goose in the StatementEnd state: the next SQL line is dropped, "" is emitted.
        "quirk_empty_statement_block_swallows_the_next_line",
        "-- +goose Up\n-- +goose StatementBegin\n-- +goose StatementEnd\nSELECT 1;\nSELECT 2;\n",
        ["", "SELECT 2;"],
        [],
    ),
    (
        "whitespace_only_line_then_statement",
        "-- +goose Up\n   \nSELECT 1;\n",
        ["SELECT 1;"],
        [],
    ),
    (
        "sections_are_independent",
        "-- +goose Up\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);\n-- +goose Down\nDROP TABLE b;\nDROP TABLE a;\n",
        ["CREATE TABLE a (id int);", "CREATE TABLE b (id int);"],
        ["DROP TABLE b;", "DROP TABLE a;"],
    ),
    (
        "alter_column_type_using_case",
        "-- +goose Up\nALTER TABLE certificates ALTER COLUMN metadata TYPE jsonb USING CASE\n"
        "    WHEN metadata IS NULL OR metadata = '' THEN '{}'::jsonb\n    ELSE metadata::jsonb\nEND;\n",
        [
            "ALTER TABLE certificates ALTER COLUMN metadata TYPE jsonb USING CASE\n"
            "    WHEN metadata IS NULL OR metadata = '' THEN '{}'::jsonb\n    ELSE metadata::jsonb\nEND;"
        ],
        [],
    ),
]


@pytest.mark.parametrize(("text", "up", "down"), [case[1:] for case in VALID], ids=[case[0] for case in VALID])
def test_valid_files(text, up, down):
    parsed = parse_sql(text)
    assert parsed == ParsedSQL(up=tuple(up), down=tuple(down), use_tx=True)


@pytest.mark.parametrize(
    ("text", "use_tx"),
    [
        ("-- +goose Up\nSELECT 1;\n", True),
        ("-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY i ON a (x);\n", False),
        ("-- +goose Up\n-- +goose no transaction\nSELECT 1;\n", False),
        ("-- +goose Up\nSELECT 1;\n-- +goose Down\n-- +goose NO TRANSACTION\nSELECT 2;\n", False),
        (
            "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose NO TRANSACTION\n-- +goose StatementEnd\n",
            False,
        ),
    ],
    ids=["default", "before_up", "lower_case", "in_down_section", "inside_a_block"],
)
def test_no_transaction(text, use_tx):
    parsed = parse_sql(text)
    assert parsed.use_tx is use_tx
    assert parsed.up[0].startswith(("SELECT 1;", "CREATE INDEX"))
    assert "NO TRANSACTION" not in parsed.up[0].upper()


def test_envsub_on_off_scopes_and_down_section():
    text = (
        "-- +goose ENVSUB ON\n"  # allowed before Up
        "-- +goose Up\n"
        "-- a comment before a statement is not expanded: ${MISSING?never read}\n"
        "CREATE TABLE ${REGION}a (id int);\n"
        "-- +goose ENVSUB OFF\n"
        "CREATE TABLE ${REGION}b (id int);\n"
        "-- +goose StatementBegin\n"
        "CREATE FUNCTION f() RETURNS text AS $$\n"
        "-- +goose ENVSUB ON\n"
        "SELECT '${NAME}';\n"
        "-- +goose ENVSUB OFF\n"
        "$$ LANGUAGE sql;\n"
        "-- +goose StatementEnd\n"
        "-- +goose Down\n"
        "-- +goose ENVSUB ON\n"
        "DROP TABLE ${REGION}a;\n"
    )
    parsed = parse_sql(text, env=ENV)
    assert parsed.up == (
        "CREATE TABLE eu_west_a (id int);",
        "CREATE TABLE ${REGION}b (id int);",
        "CREATE FUNCTION f() RETURNS text AS $$\nSELECT 'lamassu';\n$$ LANGUAGE sql;",
    )
    assert parsed.down == ("DROP TABLE eu_west_a;",)


def test_envsub_off_by_default_and_env_defaults_to_nothing():
    assert parse_sql("-- +goose Up\nSELECT '$NAME';\n", env=ENV).up == ("SELECT '$NAME';",)
    assert parse_sql("-- +goose Up\n-- +goose ENVSUB ON\nSELECT '$NAME';\n").up == ("SELECT '';",)


def test_envsub_expands_inside_statements_comments():
    text = "-- +goose Up\n-- +goose ENVSUB ON\nSELECT 1\n-- for $NAME\n;\n"
    assert parse_sql(text, env=ENV).up == ("SELECT 1\n-- for lamassu\n;",)


def test_envsub_does_not_break_dollar_quotes_outside_envsub():
    text = "-- +goose Up\n-- +goose StatementBegin\nDO $$ BEGIN PERFORM 1; END $$;\n-- +goose StatementEnd\n"
    assert parse_sql(text, env=ENV).up == ("DO $$ BEGIN PERFORM 1; END $$;",)


# (id, file text, line in the message, part of the message)
INVALID = [
    ("empty_file", "", 1, "no '-- +goose Up' annotation"),
    ("comments_only", "-- a\n\n-- b\n", 3, "no '-- +goose Up' annotation"),
    ("sql_before_up", "\nCREATE TABLE a (id int);\n-- +goose Up\n", 2, "SQL before the '-- +goose Up' annotation"),
    ("byte_order_mark", "\ufeff-- +goose Up\nSELECT 1;\n", 1, "SQL before the '-- +goose Up' annotation"),
    (
        "duplicate_up",
        "-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 2;\n-- +goose Up\n",
        5,
        "duplicate '-- +goose Up'",
    ),
    ("up_twice_in_a_row", "-- +goose Up\n-- +goose Up\n", 2, "duplicate '-- +goose Up'"),
    ("down_before_up", "-- +goose Down\nDROP TABLE a;\n-- +goose Up\n", 1, "'-- +goose Down' before '-- +goose Up'"),
    ("duplicate_down", "-- +goose Up\n-- +goose Down\nSELECT 1;\n-- +goose Down\n", 4, "duplicate '-- +goose Down'"),
    (
        "unterminated_before_down",
        "-- +goose Up\nSELECT 1;\n\nALTER TABLE a\n    ADD b int\n-- +goose Down\nSELECT 2;\n",
        4,
        "unfinished SQL statement before '-- +goose Down' at line 6",
    ),
    (
        "unterminated_at_eof",
        "-- +goose Up\nSELECT 1;\nSELECT 2\n",
        3,
        "unfinished SQL statement at the end of the file",
    ),
    (
        "unterminated_down_at_eof",
        "-- +goose Up\nSELECT 1;\n-- +goose Down\nDROP TABLE a\n",
        4,
        "unfinished SQL statement at the end of the file",
    ),
    (
        # A whitespace-only line opens a statement; the comment after it is then kept, and never ends.
        "quirk_blank_spaces_line_then_comment_at_end_of_section",
        "-- +goose Up\nSELECT 1;\n   \n-- trailing comment\n-- +goose Down\n",
        4,
        "unfinished SQL statement before '-- +goose Down' at line 5",
    ),
    (
        "quirk_double_dash_in_string_at_end_of_section",
        "-- +goose Up\nSELECT 'arrow -->';\n",
        2,
        "unfinished SQL statement at the end of the file",
    ),
    (
        "begin_without_end_at_eof",
        "-- +goose Up\nSELECT 1;\n-- +goose StatementBegin\nSELECT 2;\n",
        3,
        "missing '-- +goose StatementEnd'",
    ),
    (
        "begin_without_end_before_down",
        "-- +goose Up\n-- +goose StatementBegin\nSELECT 2;\n-- +goose Down\nSELECT 3;\n",
        4,
        "inside the StatementBegin block opened at line 2",
    ),
    (
        "nested_begin",
        "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose StatementBegin\n",
        4,
        "inside the block opened at line 2",
    ),
    ("begin_before_up", "-- +goose StatementBegin\nSELECT 1;\n", 1, "'-- +goose StatementBegin' before '-- +goose Up'"),
    ("end_without_begin", "-- +goose Up\nSELECT 1;\n-- +goose StatementEnd\n", 3, "without a matching"),
    (
        "end_twice",
        "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose StatementEnd\n-- +goose StatementEnd\n",
        5,
        "without a matching",
    ),
    ("unknown_annotation", "-- +goose Up\n-- +goose Upp\n", 2, "unknown annotation 'Upp'"),
    ("envsubst_is_not_envsub", "-- +goose ENVSUBST ON\n-- +goose Up\n", 1, "unknown annotation 'ENVSUBST ON'"),
    ("empty_annotation", "-- +goose Up\n-- +goose\n", 2, "empty '-- +goose' annotation"),
    ("indented_annotation", "-- +goose Up\nSELECT 1;\n  -- +goose Down\n", 3, "starts with whitespace"),
    ("tab_indented_annotation", "\t-- +goose Up\n", 1, "starts with whitespace"),
    (
        "annotation_with_trailing_comment",
        "-- +goose Up -- create tables\n",
        1,
        "unknown annotation 'Up  create tables'",
    ),
    ("two_annotations_on_a_line", "-- +goose Up +goose StatementBegin\n", 1, "more than one '+goose'"),
    (
        "goose_marker_in_a_comment_inside_a_statement",
        "-- +goose Up\nSELECT 1\n-- see +goose docs\n;\n",
        3,
        "unknown annotation 'see  docs'",
    ),
    (
        "envsub_required_variable_missing",
        "-- +goose Up\n-- +goose ENVSUB ON\nCREATE TABLE a (\n    ${COLUMN?set COLUMN first} text\n);\n",
        4,
        "variable substitution failed: $COLUMN: set COLUMN first",
    ),
    (
        "envsub_required_without_message",
        "-- +goose Up\n-- +goose ENVSUB ON\nSELECT '${COLUMN?}';\n",
        3,
        "variable substitution failed: $COLUMN: not set",
    ),
    (
        "envsub_required_in_down_section",
        "-- +goose Up\nSELECT 1;\n-- +goose Down\n-- +goose ENVSUB ON\nSELECT '${COLUMN?needed}';\n",
        5,
        "$COLUMN: needed",
    ),
    (
        "envsub_positional_parameter",
        "-- +goose Up\n-- +goose ENVSUB ON\nSELECT $1;\n",
        3,
        "Expected identifier to start with a letter, got 1",
    ),
    (
        "envsub_unclosed_brace",
        "-- +goose Up\n-- +goose ENVSUB ON\nSELECT '${NAME:-x';\n",
        3,
        "Expected brace expansion to end with }",
    ),
    (
        "envsub_bad_operator",
        "-- +goose Up\n-- +goose ENVSUB ON\nSELECT '${NAME+x}';\n",
        3,
        "Expected an operator, got +",
    ),
    ("envsub_bad_substring", "-- +goose Up\n-- +goose ENVSUB ON\nSELECT '${NAME:x}';\n", 3, "Unable to parse offset"),
]


@pytest.mark.parametrize(("text", "line", "cause"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_files(text, line, cause):
    with pytest.raises(InvalidInput) as info:
        parse_sql(text, env=ENV, source="00042_broken.sql")
    message = str(info.value)
    assert message.startswith(f"00042_broken.sql:{line}: "), message
    assert cause in message


def test_line_beyond_goose_scanner_limit():
    long_line = "SELECT '" + "x" * MAX_LINE_BYTES + "';"
    with pytest.raises(InvalidInput, match=r"^f\.sql:3: line is 4 MiB or longer"):
        parse_sql(f"-- +goose Up\nSELECT 1;\n{long_line}\n", source="f.sql")
    fits = "SELECT '" + "x" * (MAX_LINE_BYTES - 20) + "';"
    assert parse_sql(f"-- +goose Up\n{fits}\n").up == (fits,)


@pytest.mark.parametrize(
    ("line", "ends"),
    [
        ("END;", True),
        ("END; -- comment", True),
        ("END   ; -- comment", True),
        ("END -- comment", False),
        ("END -- comment ;", False),
        ('END " ; " -- comment', False),
        ("SELECT 'a;b'", False),
        ("SELECT '-- not a comment';", True),
        ("COMMENT='arrow -->';", False),
        ("   ", False),
        ("", False),
        (";", True),
        ("SELECT 1;\u00a0", True),
        ("SELECT 1;--x", False),  # the word "1;--x" does not end with ";"
    ],
)
def test_ends_with_semicolon(line, ends):
    assert ends_with_semicolon(line) is ends


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("", []),
        ("\n", [""]),
        ("a", ["a"]),
        ("a\n", ["a"]),
        ("a\n\n", ["a", ""]),
        ("a\r\nb\r\n", ["a", "b"]),
        ("a\r\r\n", ["a\r"]),
        ("a\rb\n", ["a\rb"]),
        ("a\r", ["a"]),
    ],
)
def test_split_lines_like_bufio_scanner(text, lines):
    assert split_lines(text) == lines


def test_parse_sql_file_names_the_file(tmp_path):
    good = tmp_path / "00001_init.sql"
    good.write_bytes("-- +goose Up\n-- crée\nSELECT 'é';\n".encode())
    assert parse_sql_file(str(good)).up == ("SELECT 'é';",)

    bad = tmp_path / "00002_bad.sql"
    bad.write_bytes(b"-- +goose Up\nSELECT 1;\nSELECT '\xff';\n")
    with pytest.raises(InvalidInput, match=r"^00002_bad\.sql:3: the file is not valid UTF-8$"):
        parse_sql_file(str(bad))

    broken = tmp_path / "00003_broken.sql"
    broken.write_text("-- +goose Up\nSELECT 1\n")
    with pytest.raises(InvalidInput, match=r"^00003_broken\.sql:2: unfinished SQL statement"):
        parse_sql_file(str(broken))

    with pytest.raises(InvalidInput, match="cannot read migration file"):
        parse_sql_file(str(tmp_path / "missing.sql"))
