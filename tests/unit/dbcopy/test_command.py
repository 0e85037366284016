"""The copy module's parameters become requests, and its diff comes from the results (dbcopy/command.py)."""

from __future__ import annotations

from ansible_collections.lamassuiot.postgres.plugins.module_utils.dbcopy.command import SHARED, _diff, _requests

PARAMS = {
    "source_schema": "public",
    "target_database": "lamassu",
    "state": "present",
    "jobs": 2,
    "verify": "checksum",
    "freeze_source": False,
    "if_target_exists": "fail",
    "drop_source": False,
    "discard_changes": False,
    "accept_source_changes": False,
    "owner": None,
    "online": "off",
    "source_database": None,
    "target_schema": None,
    "source_prefix": "",
    "service_role": None,
    "services": None,
    "progress_file": None,
}


def test_single_form_targets_the_source_name_by_default():
    (request,) = _requests({**PARAMS, "source_database": "ca", "service_role": {"ca": "svc_ca"}})
    assert (request.source_database, request.target, request.service_role) == ("ca", "ca", "svc_ca")


def test_services_form_prefixes_the_source_and_shares_the_rest():
    requests = _requests({**PARAMS, "services": ["ca", "kms"], "source_prefix": "pki_", "jobs": 4})
    assert [(r.source_database, r.target, r.jobs) for r in requests] == [("pki_ca", "ca", 4), ("pki_kms", "kms", 4)]
    assert all(getattr(r, key) == PARAMS[key] for r in requests for key in SHARED if key != "jobs")


FOUND = {"copied": False, "source_frozen": False, "source_dropped": False}


def result(schema: str, frozen: bool) -> dict:
    return {"schema": schema, "before": FOUND, "source": {"frozen": frozen, "dropped": False}}


def test_diff_of_one_copy():
    assert _diff([result("ca", True)], several=False, state="present") == {
        "before": FOUND,
        "after": {"copied": True, "source_frozen": True, "source_dropped": False},
    }


def test_diff_of_services_is_per_schema():
    diff = _diff([result("ca", False), result("kms", False)], several=True, state="absent")
    assert set(diff["before"]["schemas"]) == set(diff["after"]["schemas"]) == {"ca", "kms"}
    assert diff["after"]["schemas"]["kms"]["copied"] is False
