# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options (named as in community.postgresql) and the one connect routine."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ._pg import psycopg2
from .errors import ConnectionFailed

SSL_MODES = ["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]
APPLICATION_NAME = "lamassuiot.postgres"


def connection_argspec() -> dict:
    """A fresh argument spec of the connection options; twin of doc fragment ``connection``."""
    return {
        "login_host": {"type": "str", "default": "", "aliases": ["host", "login_host_name"]},
        "login_port": {"type": "int", "default": 5432, "aliases": ["port"]},
        "login_user": {"type": "str", "default": "postgres", "aliases": ["login", "user"]},
        "login_password": {"type": "str", "default": "", "no_log": True},
        "login_unix_socket": {"type": "str", "default": "", "aliases": ["unix_socket"]},
        "ssl_mode": {"type": "str", "default": "prefer", "choices": SSL_MODES},
        "ca_cert": {"type": "str", "aliases": ["ssl_rootcert"]},
        "ssl_cert": {"type": "path"},
        "ssl_key": {"type": "path"},
        "connect_timeout": {"type": "int", "default": 10},
        "connect_params": {"type": "dict", "default": {}},
    }


@dataclass(frozen=True)
class ConnectionParams:
    """Where and as whom to connect; ``database`` is chosen per connection."""

    host: str = ""
    port: int = 5432
    user: str = "postgres"
    password: str = field(default="", repr=False)
    unix_socket: str = ""
    ssl_mode: str = "prefer"
    ca_cert: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    connect_timeout: int = 10
    extra: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_module_params(cls, params: dict) -> ConnectionParams:
        return cls(
            host=params.get("login_host") or "",
            port=params.get("login_port") or 5432,
            user=params.get("login_user") or "postgres",
            password=params.get("login_password") or "",
            unix_socket=params.get("login_unix_socket") or "",
            ssl_mode=params.get("ssl_mode") or "prefer",
            ca_cert=params.get("ca_cert"),
            ssl_cert=params.get("ssl_cert"),
            ssl_key=params.get("ssl_key"),
            connect_timeout=params.get("connect_timeout") or 10,
            extra=dict(params.get("connect_params") or {}),
        )

    @property
    def location(self) -> str:
        """Host part as libpq resolves it: a socket directory wins over an empty host."""
        return self.unix_socket or self.host or "local socket"

    def libpq_kwargs(self, database: str) -> dict:
        kwargs = {
            "dbname": database,
            "user": self.user,
            "port": self.port,
            "sslmode": self.ssl_mode,
            "connect_timeout": self.connect_timeout,
            "application_name": APPLICATION_NAME,
        }
        host = self.unix_socket or self.host
        if host:
            kwargs["host"] = host
        if self.password:
            kwargs["password"] = self.password
        for key, value in (("sslrootcert", self.ca_cert), ("sslcert", self.ssl_cert), ("sslkey", self.ssl_key)):
            if value:
                kwargs[key] = value
        kwargs.update(self.extra)
        return kwargs

    def describe(self, database: str) -> str:
        return f"database {database!r} on {self.location}:{self.port} as user {self.user!r}"

    def secrets(self) -> list[str]:
        values = [self.password, *(str(v) for k, v in self.extra.items() if "pass" in str(k).lower())]
        return [v for v in values if v]

    def dsn(self, database: str, schema: str, user: str | None = None) -> dict:
        """Connection strings for a service: pgx form and libpq form, never with a password; ``user`` is the
        service's own login role when known (else the login user of this connection).

        Every value is quoted as libpq's conninfo parser wants it; the schema is quoted as an identifier in
        ``search_path`` (capitals, spaces) and, in the libpq form, escaped once more for the server's splitting
        of ``options`` at white space.
        """
        host = self.unix_socket or self.host
        parts = [("host", host)] if host else []
        common = " ".join(
            f"{key}={conninfo_value(value)}"
            for key, value in [*parts, ("port", self.port), ("user", user or self.user), ("dbname", database)]
        )
        return {
            "pgx": f"{common} search_path={conninfo_value(quote_ident(schema))}",
            "libpq": f"{common} options={conninfo_value(search_path_option(schema), always=True)}",
        }


def search_path_option(schema: str) -> str:
    """libpq's ``options`` value that puts ``schema`` alone on the search path, escaped for the server's splitting
    of ``options`` at white space."""
    return "-c search_path=" + re.sub(r"([\\\s])", r"\\\1", quote_ident(schema))


def conninfo_value(value, always: bool = False) -> str:
    """A value of a libpq ``key=value`` connection string: bare when it can be, else single-quoted and escaped."""
    text = str(value)
    if text and not always and not re.search(r"[\s'\\]", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_ident(name: str) -> str:
    """``name`` as it must be written in ``search_path``: bare only when PostgreSQL would not fold or split it."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


def scrub(text: str, secrets: list[str]) -> str:
    """Remove every secret from a text that may reach a result, a message or a log."""
    for secret in secrets:
        text = text.replace(secret, "********")
    return re.sub(r"(password\s*=\s*)\S+", r"\1********", text, flags=re.IGNORECASE)


def _cause(message: str) -> str:
    lowered = message.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return (
            "authentication failed (wrong user or password; in the playbooks lamassu_pg_user and lamassu_pg_password)"
        )
    if "does not exist" in lowered and "database" in lowered:
        return "the database does not exist"
    if "connection refused" in lowered or "timeout expired" in lowered or "could not translate host" in lowered:
        return "the server is unreachable"
    if "ssl" in lowered:
        return "the SSL negotiation failed"
    return "the server refused the connection"


def connect(params: ConnectionParams, database: str, autocommit: bool = True, factory=None, **settings):
    """Open a psycopg2 connection or raise ConnectionFailed naming host, port, user and database; ``factory``:
    psycopg2's ``connection_factory``, ``settings``: more libpq keywords (the online move's replication
    connections)."""
    try:
        conn = psycopg2.connect(**{**params.libpq_kwargs(database), **settings}, connection_factory=factory)
    except psycopg2.Error as exc:
        detail = scrub(str(exc).strip(), params.secrets())
        raise ConnectionFailed(f"Cannot connect to {params.describe(database)}: {_cause(detail)}: {detail}") from None
    if factory is None:  # a replication connection is always in autocommit
        conn.autocommit = autocommit
    return conn
