"""The connection layer's pure parts: libpq parameters, messages, secrets."""

from __future__ import annotations

import pytest

from ansible_collections.lamassuiot.postgres.plugins.module_utils.connection import (
    ConnectionParams,
    _cause,
    connection_argspec,
    scrub,
)


def params(**overrides) -> ConnectionParams:
    spec = connection_argspec()
    values = {name: option.get("default") for name, option in spec.items()}
    values.update(overrides)
    return ConnectionParams.from_module_params(values)


def test_argspec_names_match_community_postgresql():
    spec = connection_argspec()
    assert set(spec) == {
        "login_host",
        "login_port",
        "login_user",
        "login_password",
        "login_unix_socket",
        "ssl_mode",
        "ca_cert",
        "ssl_cert",
        "ssl_key",
        "connect_timeout",
        "connect_params",
    }
    assert spec["login_password"]["no_log"] is True
    assert "port" in spec["login_port"]["aliases"] and "ssl_rootcert" in spec["ca_cert"]["aliases"]
    assert connection_argspec() is not connection_argspec(), "each module must get a fresh dict"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, {"dbname": "lamassu", "user": "postgres", "port": 5432, "sslmode": "prefer", "connect_timeout": 10}),
        ({"login_host": "db1", "login_password": "pw"}, {"host": "db1", "password": "pw"}),
        ({"login_host": "db1", "login_unix_socket": "/run/pg"}, {"host": "/run/pg"}),
        ({"ssl_mode": "verify-full", "ca_cert": "/ca.pem"}, {"sslmode": "verify-full", "sslrootcert": "/ca.pem"}),
        ({"ssl_cert": "/c.pem", "ssl_key": "/k.pem"}, {"sslcert": "/c.pem", "sslkey": "/k.pem"}),
        ({"connect_params": {"target_session_attrs": "read-write"}}, {"target_session_attrs": "read-write"}),
    ],
)
def test_libpq_kwargs(overrides, expected):
    kwargs = params(**overrides).libpq_kwargs("lamassu")
    assert expected.items() <= kwargs.items()
    if "login_password" not in overrides:
        assert "password" not in kwargs


def test_password_never_in_repr_describe_or_dsn():
    p = params(login_host="db1", login_password="hunter2")
    assert "hunter2" not in repr(p)
    assert "hunter2" not in p.describe("ca")
    assert "hunter2" not in str(p.dsn("lamassu", "ca"))


def test_dsn_forms():
    dsn = params(login_host="db1", login_port=6432, login_user="app").dsn("lamassu", "ca")
    assert dsn == {
        "pgx": "host=db1 port=6432 user=app dbname=lamassu search_path=ca",
        "libpq": "host=db1 port=6432 user=app dbname=lamassu options='-c search_path=ca'",
    }


@pytest.mark.parametrize(
    ("schema", "database", "search_path", "options"),
    [
        ("ca", "lamassu", "ca", "-c search_path=ca"),
        ("My Schema", "lamassu", '"My Schema"', '-c search_path="My\\ Schema"'),
        ("Ca", "my db", '"Ca"', '-c search_path="Ca"'),
        ("it's", "lamassu", '"it\'s"', '-c search_path="it\'s"'),
        ('q"t\\', "lamassu", '"q""t\\"', '-c search_path="q""t\\\\"'),
    ],
)
def test_dsn_values_are_quoted_as_libpq_reads_them(schema, database, search_path, options):
    from psycopg2.extensions import parse_dsn

    dsn = params(login_host="db 1", login_user="app").dsn(database, schema)
    libpq = parse_dsn(dsn["libpq"])  # libpq's own conninfo parser
    assert libpq == {"host": "db 1", "port": "5432", "user": "app", "dbname": database, "options": options}
    # The pgx form is the same grammar with search_path as a run-time parameter; libpq names it unknown.
    with pytest.raises(Exception, match="search_path"):
        parse_dsn(dsn["pgx"])
    assert parse_dsn(dsn["pgx"].replace(" search_path=", " options=")) == {**libpq, "options": search_path}


def test_scrub_removes_secrets_and_password_assignments():
    text = "failed: password=abc123 host=x; also hunter2 here"
    assert scrub(text, ["hunter2"]) == "failed: password=******** host=x; also ******** here"


@pytest.mark.parametrize(
    ("libpq_message", "cause"),
    [
        ('FATAL:  password authentication failed for user "app"', "authentication failed"),
        ('FATAL:  database "ca" does not exist', "does not exist"),
        ('connection to server at "127.0.0.1", port 1 failed: Connection refused', "unreachable"),
        ("timeout expired", "unreachable"),
        ('could not translate host name "nope" to address', "unreachable"),
        ("server does not support SSL, but SSL was required", "SSL"),
        ('FATAL:  role "x" is not permitted to log in', "refused"),
    ],
)
def test_cause(libpq_message, cause):
    assert cause in _cause(libpq_message)
