"""Fixtures shared by the integration suites.

The suites run against the real local cluster and PostgreSQL that hack/test
starts (KUBECONFIG and DB_* are in the environment); nothing here is mocked.
"""
import json
import os
import subprocess
import time
import uuid

import pytest


def kubectl(*args, input=None, check=True, timeout=60):
    """Run kubectl against the test cluster; returns CompletedProcess."""
    proc = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def kubectl_json(*args):
    return json.loads(kubectl(*args, "-o", "json").stdout)


def wait_until(predicate, timeout, interval=0.5, what="condition"):
    """Poll predicate until it returns a truthy value; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


@pytest.fixture
def namespace():
    """A fresh namespace, deleted (without waiting) after the test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    # Pods are refused until the controller-manager creates the default ServiceAccount.
    wait_until(lambda: kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
               30, interval=0.2, what=f"ServiceAccount {name}/default")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="session")
def build_dir():
    return os.environ["NIMBUS_BUILD_DIR"]
