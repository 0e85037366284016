# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Twin of ``module_utils.connection.connection_argspec``."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host running the PostgreSQL server.
      - Empty means the local Unix socket (or O(login_unix_socket)).
    type: str
    default: ''
    aliases: [host, login_host_name]
  login_port:
    description: Port of the PostgreSQL server.
    type: int
    default: 5432
    aliases: [port]
  login_user:
    description: Role to connect as.
    type: str
    default: postgres
    aliases: [login, user]
  login_password:
    description:
      - Password of O(login_user). Never shown in results, messages or logs.
    type: str
    default: ''
  login_unix_socket:
    description: Directory of the server's Unix socket.
    type: str
    default: ''
    aliases: [unix_socket]
  ssl_mode:
    description: libpq C(sslmode) of the connection.
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description: File of the certificate authorities the server certificate is checked against (libpq C(sslrootcert)).
    type: str
    aliases: [ssl_rootcert]
  ssl_cert:
    description: Client certificate file (libpq C(sslcert)).
    type: path
  ssl_key:
    description: Client key file (libpq C(sslkey)).
    type: path
  connect_timeout:
    description: Seconds to wait for a connection (libpq C(connect_timeout)).
    type: int
    default: 10
  connect_params:
    description: Further libpq connection parameters, passed as they are.
    type: dict
    default: {}
requirements:
  - psycopg2 (C(psycopg2-binary)) on the host that runs the module
notes:
  - The options carry the names of the C(community.postgresql) modules, so existing
    group variables and C(module_defaults) carry over.
  - All modules belong to the action group C(lamassuiot.postgres.all); set the
    connection once with C(module_defaults) for C(group/lamassuiot.postgres.all).
"""
