"""The module wrapper turns every psycopg2 error into the collection's typed error, naming where it happened."""

from __future__ import annotations

import json

import psycopg2
import psycopg2.errors
import pytest
from ansible.module_utils import basic

from ansible_collections.lamassuiot.postgres.plugins.module_utils import module as wrapper
from ansible_collections.lamassuiot.postgres.plugins.module_utils.connection import ConnectionParams
from ansible_collections.lamassuiot.postgres.plugins.module_utils.errors import LamassuError, OperationFailed

PASSWORD = "s3cret-Pw"
CONNECTION = ConnectionParams(host="db.example", port=6543, user="lamassu", password=PASSWORD)


def server_error(cls, pgcode: str, text: str):
    """A driver error as the server sends it (pgcode and pgerror are read-only; unpickling sets them)."""
    exc = cls(text)
    exc.__setstate__({"pgerror": text, "pgcode": pgcode})
    return exc


def test_a_server_error_names_database_host_port_user_cause_and_sqlstate():
    exc = server_error(psycopg2.errors.InsufficientPrivilege, "42501", "ERROR:  permission denied for schema ca")
    error = wrapper.driver_error(exc, CONNECTION, {"database": "lamassu", "schema": "ca"})
    assert isinstance(error, OperationFailed) and isinstance(error, LamassuError)
    message = str(error)
    assert "database 'lamassu' on db.example:6543 as user 'lamassu'" in message
    assert "permission denied for schema ca" in message
    assert "SQLSTATE 42501, InsufficientPrivilege" in message
    assert "lacks this privilege" in message


def test_the_password_and_a_dsn_never_reach_the_message():
    text = f"could not do it: host=db.example password={PASSWORD} dbname=lamassu"
    error = wrapper.driver_error(psycopg2.OperationalError(text), CONNECTION, {"database": "lamassu"})
    assert PASSWORD not in str(error)
    assert "password=********" in str(error)


def test_a_driver_error_without_a_server_code_names_its_class():
    error = wrapper.driver_error(psycopg2.InterfaceError("connection already closed"), CONNECTION, {})
    assert "connection already closed (InterfaceError)" in str(error)
    assert "database (unknown) on db.example:6543" in str(error)


def test_a_module_with_two_databases_names_both_when_the_failing_one_is_unknown():
    params = {"source_database": "lamassu_ca", "target_database": "lamassu", "source_schema": "public"}
    error = wrapper.driver_error(psycopg2.errors.UndefinedTable("no table"), CONNECTION, params)
    assert "database 'lamassu_ca' or 'lamassu' on" in str(error)


@pytest.fixture
def module_args(monkeypatch):
    """Feed AnsibleModule its arguments the way ansible-core's own unit tests do."""

    def set_args(args: dict) -> None:
        payload = json.dumps({"ANSIBLE_MODULE_ARGS": {"_ansible_remote_tmp": "/tmp", **args}}).encode()
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", payload)
        if hasattr(basic, "_ANSIBLE_PROFILE"):
            monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")

    return set_args


@pytest.mark.parametrize(
    "raised",
    [
        server_error(psycopg2.errors.InsufficientPrivilege, "42501", "permission denied for schema ca"),
        psycopg2.OperationalError("server closed the connection unexpectedly"),
        psycopg2.errors.UndefinedTable("relation does not exist"),
    ],
    ids=["server", "connection-lost", "no-code"],
)
def test_no_raw_driver_error_leaves_run_module(module_args, capsys, raised):
    module_args({"login_host": "db.example", "login_port": 6543, "login_password": PASSWORD, "database": "lamassu"})

    def work(_ctx):
        raise raised

    with pytest.raises(SystemExit) as exited:
        wrapper.run_module({"database": {"type": "str"}}, work)
    assert exited.value.code == 1
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True and result["changed"] is False and result["queries"] == []
    assert result["msg"].startswith("PostgreSQL error on database 'lamassu' on db.example:6543 as user 'postgres': ")
    assert "Traceback" not in json.dumps(result) and PASSWORD not in json.dumps(result)
