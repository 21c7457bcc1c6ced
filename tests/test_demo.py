"""`make demo` as a newcomer runs it: the launcher wires the portal to both simulators, registers a tenant and reports
whether API Manager's auto-configured key manager got keys from IS over mutual TLS, beside what the lint predicted."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_demo(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simulators.demo", "--check", "--instance",
                           str(tmp_path / "demo"), *extra], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("direction", ["is_to_apim", "apim_to_is"])
def test_demo_tenant_gets_keys_through_the_mtls_handler(tmp_path: Path, direction: str):
    done = run_demo(tmp_path, "--direction", direction)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Mapping lint (info)" in done.stdout
    assert ("API Manager key generation for demo.example.com: ok (as demo-admin@demo.example.com, through IS's "
            "mutual-TLS handler)") in done.stdout
    assert "Sign in as admin with the one-time password" in done.stdout


def test_demo_with_a_mapping_limited_to_admin_fails_as_the_lint_predicted(tmp_path: Path):
    done = run_demo(tmp_path, "--key-manager-users", "admin")
    assert done.returncode == 0, done.stdout + done.stderr  # 0: what happened is what the lint predicted
    lint = next(line for line in done.stdout.splitlines() if line.startswith("Mapping lint"))
    assert lint.startswith("Mapping lint (error)") and "demo-admin@demo.example.com" in lint
    assert "key generation for demo.example.com: failed 401" in done.stdout
