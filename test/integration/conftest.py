"""Fixtures shared by the integration suites.

The suites run against the real local cluster and PostgreSQL that hack/test
starts (KUBECONFIG and DB_* are in the environment); nothing here is mocked.
"""
import json
import os
import socket
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
               90, interval=0.2, what=f"ServiceAccount {name}/default")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="session")
def build_dir():
    return os.environ["NIMBUS_BUILD_DIR"]


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Operator:
    """A running nimbus-operator with its JSON log lines collected."""

    def __init__(self, build_dir, log_path, *args, env=None):
        self.log_path = log_path
        self.args = args
        self.env = env
        self.build_dir = build_dir
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([os.path.join(self.build_dir, "operator/nimbus-operator"), *self.args],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        wait_until(lambda: self.proc.poll() is not None or "reconcilers started" in self.text(), 60,
                   what="nimbus-operator to start its reconcilers")
        assert self.proc.poll() is None, f"nimbus-operator exited at start: {self.text()[-3000:]}"

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def lines(self):
        out = []
        for line in self.text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(f"nimbus-operator wrote a line that is not JSON: {line!r}")
        return out

    def stop(self, sig=None):
        """SIGTERM (graceful: must exit 0) or another signal (e.g. SIGKILL)."""
        import signal as _signal
        if self.proc.poll() is None:
            self.proc.send_signal(sig or _signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.log.close()
        if sig is None:
            assert self.proc.returncode == 0, f"nimbus-operator exited {self.proc.returncode}: {self.text()[-3000:]}"


@pytest.fixture(scope="session")
def crd():
    kubectl("apply", "-f", os.path.join(ROOT, "crds/computerequest.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/computerequests.nimbus.io", "--timeout=60s")


@pytest.fixture
def operator(build_dir, tmp_path, crd):
    """nimbus-operator with the given controllers; stopped (gracefully) after the test."""
    started = []

    def start(*args):
        op = Operator(build_dir, str(tmp_path / f"operator-{len(started)}.log"), "--metrics-bind-address=0",
                      "--health-probe-bind-address=0", "--api-bind-address=0", *args)
        started.append(op)
        return op
    yield start
    for op in started:
        op.stop()


# The API's test credentials: a JWT_SECRET of 64 bytes and an admin password.
API_JWT_SECRET = "a3f1c0de" * 8
API_ADMIN_PASSWORD = "test-admin-password-0123"


def free_port():
    """A loopback port free now (the kernel's pick; config refuses port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def api_operator(build_dir, tmp_path, crd):
    """nimbus-operator serving the REST API on a free loopback port, with
    JWT_SECRET and NIMBUS_ADMIN_PASSWORD in its environment (env= adds to or
    overrides them). Returns (operator, base URL)."""
    started = []

    def start(*args, env=None):
        full = dict(os.environ, JWT_SECRET=API_JWT_SECRET, NIMBUS_ADMIN_PASSWORD=API_ADMIN_PASSWORD)
        full.update(env or {})
        port = free_port()
        op = Operator(build_dir, str(tmp_path / f"api-operator-{len(started)}.log"), "--metrics-bind-address=0",
                      "--health-probe-bind-address=0", f"--api-bind-address=127.0.0.1:{port}", *args, env=full)
        started.append(op)
        return op, f"http://127.0.0.1:{port}"
    yield start
    for op in started:
        op.stop()
