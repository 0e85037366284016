"""goose's ENVSUB (mfridman/interpolate): every expansion form, alone and inside a parsed file."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.envsub import interpolate
from ansible_collections.lamassuiot.postgres.plugins.module_utils.goose.parser import parse_sql

ENV = {"NAME": "lamassu", "EMPTY": "", "REGION": "eu_west_"}

# (id, line inside an ENVSUB ON block, expected expansion)
ENVSUB = [
    ("plain", "SELECT $NAME;", "SELECT lamassu;"),
    ("braces", "SELECT '${NAME}x';", "SELECT 'lamassux';"),
    ("unset_is_empty", "SELECT '$UNSET';", "SELECT '';"),
    ("identifier_stops_at_non_word", "CREATE TABLE ${REGION}t ($NAME-1);", "CREATE TABLE eu_west_t (lamassu-1);"),
    ("default_if_unset_or_empty_unset", "SELECT '${UNSET:-d}';", "SELECT 'd';"),
    ("default_if_unset_or_empty_empty", "SELECT '${EMPTY:-d}';", "SELECT 'd';"),
    ("default_if_unset_or_empty_set", "SELECT '${NAME:-d}';", "SELECT 'lamassu';"),
    ("default_if_unset_unset", "SELECT '${UNSET-d}';", "SELECT 'd';"),
    ("default_if_unset_empty", "SELECT '${EMPTY-d}';", "SELECT '';"),
    ("nested_default", "SELECT '${UNSET:-${OTHER:-$NAME}}';", "SELECT 'lamassu';"),
    ("required_set", "SELECT '${NAME?must be set}';", "SELECT 'lamassu';"),
    ("required_empty_is_set", "SELECT '${EMPTY?must be set}';", "SELECT '';"),
    ("substring", "SELECT '${NAME:1:3}', '${NAME:4}', '${NAME: -3}';", "SELECT 'ama', 'ssu', 'ssu';"),
    ("backslash_escape", "SELECT '\\$NAME \\${NAME}';", "SELECT '$NAME ${NAME}';"),
    ("double_dollar_is_one_dollar", "SELECT $$NAME$$;", "SELECT $NAME$;"),
    ("escaped_backslash_stays_double", "SELECT '\\\\$NAME';", "SELECT '\\\\lamassu';"),
    ("regex_backslashes_untouched", "SELECT regexp_replace(x, '\\s+', '');", "SELECT regexp_replace(x, '\\s+', '');"),
    ("shell_substitution_kept", "SELECT '$(date)';", "SELECT '$(date)';"),
    ("trailing_dollar_kept", "SELECT 1 AS $", "SELECT 1 AS $"),
    ("unicode_identifier", "SELECT '$NAMEé';", "SELECT '';"),
]


@pytest.mark.parametrize(("line", "expanded"), [c[1:] for c in ENVSUB], ids=[c[0] for c in ENVSUB])
def test_envsub_forms(line, expanded):
    text = f"-- +goose Up\n-- +goose ENVSUB ON\n-- +goose StatementBegin\n{line}\n-- +goose StatementEnd\n"
    assert parse_sql(text, env=ENV).up == (expanded,)
    assert interpolate(line, ENV) == expanded
