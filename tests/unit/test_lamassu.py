"""The facts of lamassu.py agree with the places that cannot import them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.lamassuiot.postgres.plugins.lookup import services
from ansible_collections.lamassuiot.postgres.plugins.module_utils.lamassu import COLLECTION_VERSION, SERVICES
from ansible_collections.lamassuiot.postgres.plugins.modules import postgres_lamassu_info, postgres_lamassu_schema

ROOT = Path(__file__).resolve().parents[2]


def test_collection_version_is_the_galaxy_version():
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert galaxy["version"] == COLLECTION_VERSION


def test_services_lookup_returns_the_services():
    assert services.LookupModule().run([]) == list(SERVICES)


@pytest.mark.parametrize(
    ("module", "option"), [(postgres_lamassu_schema, "schemas"), (postgres_lamassu_info, "services")]
)
def test_documented_service_defaults_are_the_services(module, option):
    documented = yaml.safe_load(module.DOCUMENTATION)["options"][option]["default"]
    assert documented == list(SERVICES)
    assert list(module.argument_spec()[option]["default"]) == list(SERVICES)
