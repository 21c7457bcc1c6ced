"""Markers from what a test needs (pyproject lists them), so `-m` picks a subset: `make test-fast` runs the tests that
need no external service and take well under a second. They are derived here from the test's path, fixtures and calls
rather than written on each test, so a new test that uses `slapd` is marked `ldap` without anyone remembering to.

Registered by tests/conftest.py importing `pytest_collection_modifyitems`."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Fixtures (by name, including those they depend on; "module.name" for a generic name in one module) that need a
# service or a tool.
FIXTURES = {
    "ldap": {"slapd"},  # a real OpenLDAP server (tests/ldap_server.py)
    # the local PostgreSQL at 127.0.0.1:5432, whatever database the suite itself runs on
    "postgres": {"seed_user_store", "pg_userstore", "pg_target", "pg_store", "test_clients_jdbc.tenant"},
    "jdk": {"java_dns"},  # javac and java print DNs as the JDK does
    "slow": {"entra_sim"},  # the Entra ID simulator started as a subprocess (tests/entra_fixtures.py)
}
# Helpers a test calls directly (names its code uses) that need a service or a tool.
CALLS = {
    "ldap": {"Slapd"},
    "postgres": {"_admin", "user_store_tables"},
    "jdk": {"keytool_entries"},
}
# Whole modules: the deployment kit behind nginx; generated inputs (hypothesis, schemathesis); subprocesses.
MODULES = {
    "nginx": {"test_deploy_nginx"},
    "slow": {"test_deploy_nginx", "test_hostile_api", "test_hostile_forms", "test_hostile_parsers", "test_openapi",
             "test_demo", "test_sync", "test_recovery", "test_reconcile", "test_decommission", "test_product_sync",
             "test_seed_demo"},
}
# Single tests: tests/slow_tests.txt says why and how to refresh it.
SLOW_TESTS = frozenset(line.strip() for line in (Path(__file__).parent / "slow_tests.txt").read_text().splitlines()
                       if line.strip() and not line.startswith("#"))


def needs(item: pytest.Item) -> set[str]:
    """The markers `item` earns by its path, module, fixtures and the helpers it calls."""
    found: set[str] = set()
    if item.path.parent.name == "browser":
        found |= {"browser", "slow"}
    module = item.path.stem
    fixtures = set(getattr(item, "fixturenames", ()))
    code = getattr(getattr(item, "function", None), "__code__", None)
    calls = set(code.co_names) if code else set()
    for marker, names in FIXTURES.items():
        if (fixtures | {f"{module}.{name}" for name in fixtures}) & names:
            found.add(marker)
    for marker, names in CALLS.items():
        if calls & names:
            found.add(marker)
    for marker, modules in MODULES.items():
        if module in modules:
            found.add(marker)
    if f"{module}::{getattr(item, 'originalname', item.name)}" in SLOW_TESTS:
        found.add("slow")
    if os.environ.get("PORTAL_TEST_PG_ADMIN_URL") and "database_url" in fixtures:
        found.add("postgres")  # the suite's own database is a throwaway PostgreSQL one
    return found


# pytest-xdist (`make test` runs `-n 2`) hands out work by scope; tests/conftest.py's scheduler uses these scopes.
# The browser tests share one live server, slapd and chromium per process, so they are one scope (splitting them
# would start all of that twice); the seed's PostgreSQL store has fixed names (role userll, database userdbll), so
# the modules using it are one scope (two processes must not make it at once); any other module is its own scope,
# so its module-scoped fixtures are made once.
SEED_STORE_MODULES = frozenset({"test_api_tenants", "test_secret_binding"})


def scope_of(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/browser/"):
        return "browser"
    if Path(path).stem in SEED_STORE_MODULES:
        return "seed_user_store"
    return path


def make_scheduler(config: pytest.Config, log):
    """xdist's scope scheduling with the scopes above (its loadgroup mode cannot mark groups under pytest 9)."""
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return Scheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in sorted(needs(item)):
            item.add_marker(marker)
        if "seed_user_store" in getattr(item, "fixturenames", ()) and item.path.stem not in SEED_STORE_MODULES:
            raise pytest.UsageError(f"{item.nodeid} uses seed_user_store: add {item.path.stem} to "
                                    "tests/markers.py SEED_STORE_MODULES, so no two processes make it at once")
