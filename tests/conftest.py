"""The suite's fixtures live in the plugin package tests/fixtures/ (one module per kind: app, accounts, api, stores,
directories, pki, simulators), registered here; test modules keep only the fixtures private to them. Markers come
from tests/markers.py."""
from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.fixtures")  # before the imports below, so their asserts explain themselves

from tests.fixtures.accounts import PASSWORD, create_admin, csrf_token, login  # noqa: E402, F401 - the old import path
from tests.fixtures.app import test_config  # noqa: E402, F401 - the old import path
from tests.markers import make_scheduler, pytest_collection_modifyitems  # noqa: E402, F401 - marks, scopes


@pytest.hookimpl(optionalhook=True)  # known only when pytest-xdist is loaded (not with -p no:xdist)
def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist (make test: -n 2), tests go out by scope: tests/markers.py scope_of."""
    return make_scheduler(config, log)


pytest_plugins = [
    "tests.fixtures.app",
    "tests.fixtures.accounts",
    "tests.fixtures.api",
    "tests.fixtures.stores",
    "tests.fixtures.directories",
    "tests.fixtures.pki",
    "tests.fixtures.simulators",
    "tests.entra_fixtures",  # entra_sim: the Entra ID simulator as a subprocess
]
