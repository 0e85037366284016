"""Role cutover writes what Lamassu reads: each service's own config file edited in place (files) or a values file
of the lamassu Helm chart (helm); check mode writes nothing, a second run changes nothing, rollback restores."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
import yaml

from tests.harness.ansible import recap_changed, run_local_play, run_module
from tests.harness.fixture import build_legacy
from tests.harness.pgcluster import throwaway_cluster

# Shaped like a Lamassu service's config file (see the upstream chart's ConfigMaps); the values are made up.
CA_CONFIG = """\
logs:
  level: "info"

server:
  listen_address: "0.0.0.0"
  port: 8085
  protocol: "http" #http | https

publisher_event_bus:
  enabled: true
  provider: amqp
  hostname: rabbitmq
  basic_auth:
    enabled: true
    username: "bus"
    password: "bus-secret"

storage:
  log_level: "info"
  provider: "postgres" #couch_db | postgres | dynamo_db
  hostname: legacy-db
  port: 5432
  username: "admin"
  password: "db-secret"

kms_client:
  auth_mode: noauth
  hostname: kms
  port: 8085
"""
# A service without a storage block yet and without a password anywhere.
KMS_CONFIG = "server:\n  port: 8085\n"
OWNER = (1234, 2345)
# The role the services log in with: the owner of their legacy database (no goose table in this one).
SERVICE_ROLE = "lamassu_app"


@pytest.fixture(scope="module")
def cluster():
    """A cluster of its own: the role reads the legacy database ``ca`` by its fixed name. ``ca`` is copied, so
    its schema may be pointed at; no other service is. ``ca`` belongs to the services' role (SERVICE_ROLE), not to
    the role Ansible logs in with."""
    with throwaway_cluster() as server:
        if server.external:
            pytest.skip("the cutover reads the fixed legacy name 'ca', which an external server may hold")
        server.execute(
            "postgres",
            f"CREATE ROLE {SERVICE_ROLE} LOGIN",
            f"CREATE DATABASE ca OWNER {SERVICE_ROLE}",
            "CREATE DATABASE lamassu",
        )
        server.execute("ca", "CREATE TABLE probe (id int)")
        copied = run_module(
            "postgres_db_to_schema",
            {"source_database": "ca", "target_database": "lamassu", "target_schema": "ca"},
            server,
        ).result
        assert copied["changed"] and not copied.get("failed"), copied.get("msg")
        yield server


def play(tmp_path: Path, cluster, variables: dict, tasks_from: str = "main", *args: str):
    task = {
        "name": "Cutover",
        "ansible.builtin.include_role": {"name": "lamassuiot.postgres.cutover", "tasks_from": tasks_from},
    }
    # lamassu_pg_* is how Ansible logs in: the cutover writes none of it.
    facts = {"lamassu_pg_host": "db.internal", "lamassu_pg_user": "ansible", "lamassu_services": ["ca"], **variables}
    return run_local_play(tmp_path, cluster, {"vars": facts, "tasks": [task]}, *args)


def changed(run) -> int:
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    return recap_changed(run.stdout)


def test_files_edits_each_service_config_in_place_and_rollback_restores_it(cluster, tmp_path):
    ca, kms = tmp_path / "ca" / "config.yml", tmp_path / "kms" / "config.yml"
    for path, text in ((ca, CA_CONFIG), (kms, KMS_CONFIG)):
        path.parent.mkdir()
        path.write_text(text)
    ca.chmod(0o640)
    os.chown(ca, *OWNER)
    ca_backup = Path(f"{ca}.pre-lamassu")
    variables = {"cutover_target": "files", "cutover_service_configs": {"ca": str(ca), "kms": str(kms)}}

    planned = play(tmp_path, cluster, variables, "main", "--check", "--diff")
    assert changed(planned) == 1
    assert ca.read_text() == CA_CONFIG and not ca_backup.exists(), "check mode writes nothing"
    assert "+  database: lamassu" in planned.stdout and "hostname: db.internal" not in planned.stdout
    assert "db-secret" not in planned.stdout and "bus-secret" not in planned.stdout

    run = play(tmp_path, cluster, variables)
    assert changed(run) == 1
    shown = re.search(r'"ca \(copied\): [^"]*"', run.stdout)
    assert shown and f" user={SERVICE_ROLE} dbname=lamassu search_path=ca" in shown.group(0), (
        "the connection shown is the service's own role"
    )
    written = yaml.safe_load(ca.read_text())
    original = yaml.safe_load(CA_CONFIG)
    assert written.pop("storage") == {**original.pop("storage"), "database": "lamassu"}, (
        "only the database is added: the service keeps its host, port, username and the password that goes with it"
    )
    assert written == original
    assert ca.read_text() == CA_CONFIG.replace(
        '  password: "db-secret"\n', '  password: "db-secret"\n  database: lamassu\n'
    )
    assert "#couch_db | postgres | dynamo_db" in ca.read_text() and "#http | https" in ca.read_text()
    info = os.stat(ca)
    assert stat.S_IMODE(info.st_mode) == 0o640 and (info.st_uid, info.st_gid) == OWNER
    assert ca_backup.read_text() == CA_CONFIG
    assert kms.read_text() == KMS_CONFIG, "kms is not among the services cut over"

    assert changed(play(tmp_path, cluster, variables)) == 0

    assert changed(play(tmp_path, cluster, variables, "rollback")) == 1
    assert ca.read_text() == CA_CONFIG and not ca_backup.exists()
    info = os.stat(ca)
    assert stat.S_IMODE(info.st_mode) == 0o640 and (info.st_uid, info.st_gid) == OWNER
    assert changed(play(tmp_path, cluster, variables, "rollback")) == 0


def test_a_service_without_a_storage_block_gets_one_without_a_password(cluster, tmp_path):
    kms = tmp_path / "config.yml"
    kms.write_text(KMS_CONFIG)
    variables = {
        "lamassu_services": ["ca"],
        "cutover_target": "files",
        "cutover_service_configs": {"ca": str(kms)},
        "cutover_pg_port": "6432",
    }
    assert changed(play(tmp_path, cluster, variables)) == 1
    assert yaml.safe_load(kms.read_text()) == {
        "server": {"port": 8085},
        "storage": {"provider": "postgres", "port": 6432, "database": "lamassu"},
    }
    assert kms.read_text().startswith(KMS_CONFIG)


def test_host_port_and_login_are_written_only_when_given(cluster, tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(CA_CONFIG)
    variables = {
        "cutover_target": "files",
        "cutover_service_configs": {"ca": str(config)},
        "cutover_pg_host": "pg.svc",
        "cutover_pg_port": 6432,
        "cutover_pg_user": "lamassu_new",
    }
    run = play(tmp_path, cluster, variables)
    assert changed(run) == 1
    storage = yaml.safe_load(config.read_text())["storage"]
    assert storage == {
        "log_level": "info",
        "provider": "postgres",
        "hostname": "pg.svc",
        "port": 6432,
        "username": "lamassu_new",
        "password": "db-secret",
        "database": "lamassu",
    }
    assert "user=lamassu_new dbname=lamassu search_path=ca" in run.stdout, "the new login is the one shown"


@pytest.mark.parametrize(
    ("variables", "text", "message"),
    [
        ({}, "storage: [postgres]\n", "is a sequence"),
        (
            {"lamassu_services": ["ca", "va"], "cutover_service_configs": {"va": "CONFIG"}},
            CA_CONFIG,
            "va not copied yet",
        ),
        ({"cutover_service_configs": {"cas": "CONFIG"}}, CA_CONFIG, "names cas, not Lamassu services"),
        ({"cutover_service_configs": {}}, CA_CONFIG, "cutover_service_configs is empty"),
    ],
)
def test_what_cannot_be_cut_over_is_refused_and_left_alone(cluster, tmp_path, variables, text, message):
    config = tmp_path / "config.yml"
    config.write_text(text)
    configs = variables.get("cutover_service_configs", {"ca": "CONFIG"})
    variables = {
        **variables,
        "cutover_target": "files",
        "cutover_service_configs": {name: str(config) for name in configs},
    }
    run = play(tmp_path, cluster, variables)
    assert run.returncode != 0 and message in run.stdout, run.stdout[-4000:]
    assert config.read_text() == text and not Path(f"{config}.pre-lamassu").exists()


def test_none_writes_nothing(cluster, tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(CA_CONFIG)
    assert changed(play(tmp_path, cluster, {"cutover_service_configs": {"ca": str(config)}})) == 0
    assert config.read_text() == CA_CONFIG


def test_helm_writes_the_chart_values_and_shows_the_upgrade(cluster, tmp_path):
    values = tmp_path / "helm" / "values.yml"
    variables = {
        "cutover_target": "helm",
        "cutover_helm_values_file": str(values),
        "cutover_helm_namespace": "lamassu-prod",
    }
    planned = play(tmp_path, cluster, variables, "main", "--check")
    assert changed(planned) > 0 and not values.exists()

    run = play(tmp_path, cluster, variables)
    assert changed(run) > 0
    assert yaml.safe_load(values.read_text()) == {"postgres": {"database": "lamassu"}}, (
        "the release keeps its own host, port, username and password"
    )
    command = f"helm upgrade lamassu lamassu/lamassu --namespace lamassu-prod --reset-then-reuse-values -f {values}"
    assert command in run.stdout
    assert "migrations.db.databases=[]" in run.stdout, "the next step says what the chart's migration Jobs need"
    assert stat.S_IMODE(os.stat(values).st_mode) == 0o644

    again = play(tmp_path, cluster, {**variables, "cutover_helm_base_values": ["/etc/lamassu/my values.yml"]})
    assert changed(again) == 0
    assert re.search(r"--namespace lamassu-prod -f '/etc/lamassu/my values.yml' -f \S+values.yml", again.stdout)

    moved = play(tmp_path, cluster, {**variables, "cutover_pg_host": "pg.svc", "cutover_pg_user": "lamassu_new"})
    assert changed(moved) > 0
    assert yaml.safe_load(values.read_text()) == {
        "postgres": {"hostname": "pg.svc", "username": "lamassu_new", "database": "lamassu"}
    }

    undone = play(tmp_path, cluster, variables, "rollback")
    assert changed(undone) == 1 and not values.exists()
    assert "helm rollback lamassu <the revision before the cutover> --namespace lamassu-prod" in undone.stdout


def test_writes_after_the_copy_are_found_in_prefixed_legacy_databases(cluster, tmp_path):
    """With cutover_source_prefix the check reads database <prefix><service>, as the copy did."""
    build_legacy(cluster, scale=0.0001, services=["ca"], prefix="p_")
    cluster.execute("postgres", "CREATE DATABASE p_lamassu")
    copied = run_module(
        "postgres_db_to_schema", {"services": ["ca"], "source_prefix": "p_", "target_database": "p_lamassu"}, cluster
    ).result
    assert copied["changed"] and not copied.get("failed"), copied.get("msg")
    cluster.execute(
        "p_ca", "UPDATE goose_db_version SET tstamp = tstamp WHERE id = (SELECT min(id) FROM goose_db_version)"
    )

    run = play(tmp_path, cluster, {"cutover_database": "p_lamassu", "cutover_source_prefix": "p_"})
    assert run.returncode != 0 and "Nothing was cut over" in run.stdout, run.stdout[-4000:]
    assert "the legacy database of service 'ca' took writes after its copy" in run.stdout, run.stdout[-4000:]
