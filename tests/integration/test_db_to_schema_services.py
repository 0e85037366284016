"""postgres_db_to_schema's ``services`` form through Ansible against a real PostgreSQL: several legacy databases
copied in one module run, one after the other; the first failure stops the run and keeps what was published."""

from __future__ import annotations

import uuid

from tests.harness.ansible import run_module
from tests.harness.fixture import build_legacy, schema_versions

SERVICES = ("ca", "kms", "va")


def fresh(pg) -> tuple[str, str]:
    """A prefix of legacy databases of SERVICES and an empty target database."""
    prefix = f"s{uuid.uuid4().hex[:6]}_"
    build_legacy(pg, scale=0.001, services=SERVICES, prefix=prefix)
    target = f"{prefix}lamassu"
    pg.execute("postgres", f'CREATE DATABASE "{target}"')
    return prefix, target


def copied(pg, target: str) -> set[str]:
    """The service schemas of ``target`` that hold a copied goose table."""
    return set(schema_versions(pg, target, SERVICES))


def test_services_copies_every_database_in_one_run_and_is_idempotent(pg):
    prefix, target = fresh(pg)
    args = {"services": list(SERVICES), "source_prefix": prefix, "target_database": target}

    plan = run_module("postgres_db_to_schema", args, pg, check=True).result
    assert plan["changed"] and not plan.get("failed"), plan
    assert [r["schema"] for r in plan["results"]] == list(SERVICES)
    assert all(r["plan"] for r in plan["results"])
    assert copied(pg, target) == set()

    first = run_module("postgres_db_to_schema", args, pg).result
    assert first["changed"] and not first.get("failed"), first
    assert [(r["schema"], r["source"]["database"], r["target"]["schema"]) for r in first["results"]] == [
        (s, prefix + s, s) for s in SERVICES
    ]
    assert all(r["tables"] and all(t["verified"] for t in r["tables"]) for r in first["results"])
    assert copied(pg, target) == set(SERVICES)
    assert first["queries"] == [q for r in first["results"] for q in r["queries"]]

    again = run_module("postgres_db_to_schema", args, pg).result
    assert not again["changed"] and not again.get("failed"), again
    assert [r["changed"] for r in again["results"]] == [False] * len(SERVICES)


def test_the_first_failure_stops_the_run_and_keeps_the_copies_before_it(pg):
    prefix, target = fresh(pg)
    pg.execute("postgres", f'DROP DATABASE "{prefix}kms"')

    run = run_module(
        "postgres_db_to_schema", {"services": list(SERVICES), "source_prefix": prefix, "target_database": target}, pg
    )
    result = run.result
    assert result.get("failed"), result
    assert result["msg"].startswith("kms: "), result["msg"]
    assert [r["schema"] for r in result["results"]] == ["ca", "kms"]
    assert result["results"][0]["changed"] and not result["results"][0].get("failed")
    assert result["results"][1]["failed"] and result["results"][1]["msg"]
    assert copied(pg, target) == {"ca"}, "va was copied after kms failed"


def test_bad_forms_are_refused_before_anything_changes(pg):
    prefix, target = fresh(pg)
    both = run_module("postgres_db_to_schema", {"services": ["ca"], "source_database": "ca"}, pg).result
    assert both.get("failed") and "mutually exclusive" in both["msg"], both
    neither = run_module("postgres_db_to_schema", {"target_database": target}, pg).result
    assert neither.get("failed") and "source_database" in neither["msg"] and "services" in neither["msg"], neither
    empty = run_module("postgres_db_to_schema", {"services": [], "target_database": target}, pg).result
    assert empty.get("failed") and "services is empty" in empty["msg"], empty
    # One bad name refuses the whole run before the first copy starts.
    bad = run_module(
        "postgres_db_to_schema",
        {"services": ["ca", "lamassu_migration"], "source_prefix": prefix, "target_database": target},
        pg,
    ).result
    assert bad.get("failed") and "reserved" in bad["msg"], bad
    assert copied(pg, target) == set()


def test_diff_shows_each_schema_before_and_after(pg):
    prefix, target = fresh(pg)
    args = {"services": list(SERVICES), "source_prefix": prefix, "target_database": target}
    found = {"copied": False, "source_frozen": False, "source_dropped": False}
    expected = {
        "before": {"schemas": {s: found for s in SERVICES}},
        "after": {"schemas": {s: {**found, "copied": True} for s in SERVICES}},
    }

    plan = run_module("postgres_db_to_schema", args, pg, check=True, diff=True).result
    assert plan["diff"] == expected, plan.get("diff")
    assert copied(pg, target) == set()

    first = run_module("postgres_db_to_schema", args, pg, diff=True).result
    assert first["diff"] == expected, first.get("diff")

    again = run_module("postgres_db_to_schema", args, pg, diff=True).result
    assert again["diff"]["before"] == again["diff"]["after"] == expected["after"], again["diff"]
