"""The db module against the real PostgreSQL that hack/test starts.

The test itself is the C program test/integration/test_db.c, registered with
CTest under the label `integration`; this runs it with the DB_* variables of
that database, so that `hack/test` covers it.
"""
import os
import subprocess

import pytest


def test_db_module_against_postgres(build_dir):
    if not os.environ.get("DB_HOST"):
        pytest.skip("DB_HOST is not set: run through hack/test, or eval \"$(hack/postgres env)\" first")
    proc = subprocess.run(
        ["ctest", "-L", "integration", "-R", "db", "--output-on-failure"],
        cwd=build_dir, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # With DB_HOST set the C test must run, not skip (exit 77) or be missing.
    assert "test_db" in out and "Passed" in out, out
    assert "Skipped" not in out and "No tests were found" not in out, out
