"""Billing on the real cluster and PostgreSQL: accuracy, kill -9, a database outage, a deletion.

kwok gives each pod the constant usage of its annotations (500m, 256Mi) and
metrics-server serves it every 10 s (hack/cluster --metric-resolution). The
operator samples every 5 s. Each pod's rows must then tile its life exactly,
from its start time to its last sample with no gap and no overlap (each
window starts where the previous one ended), across a kill -9 of the
operator and a 60 s PostgreSQL outage; memory (reported exactly as 256Mi) must
add up to 256Mi x running time to the byte-second, CPU to within 1 %.

The invoice and usage queries, and the idempotence of the writes, are
tested by the C program test/integration/test_billing_db.c, run here too.
"""
import calendar
import decimal
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid

import psycopg
import pytest

from conftest import ROOT, Operator, kubectl, kubectl_json, wait_until

MIB = 1024 * 1024
CPU_MILLI = 500
MEMORY = 256 * MIB
OUTAGE_S = 60  # PostgreSQL stopped this long mid-run


def db():
    return psycopg.connect(host=os.environ["DB_HOST"], port=os.environ["DB_PORT"], dbname=os.environ["DB_NAME"],
                           user=os.environ["DB_USER"], password=os.environ.get("DB_PASSWORD"), autocommit=True,
                           connect_timeout=5)


def query(sql, *args):
    with db() as c:
        return c.execute(sql, args).fetchall()


def usage_rows(tenant):
    """{pod_uid: [(start, end, cpu_milli_seconds, memory_byte_seconds)]} ordered by start (epoch seconds)."""
    out = {}
    for uid, start, end, cpu, mem in query(
            "SELECT pod_uid, extract(epoch FROM window_start), extract(epoch FROM window_end), cpu_milli_seconds, "
            "memory_byte_seconds FROM billing_usage WHERE tenant_id = %s ORDER BY pod_uid, window_start", tenant):
        out.setdefault(uid, []).append((start, end, cpu, mem))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(port, name):
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def postgres(cmd):
    proc = subprocess.run([os.path.join(ROOT, "hack/postgres"), cmd, "--port", os.environ["DB_PORT"]],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"hack/postgres {cmd}: {proc.stderr}"


def pod_doc(name):
    return f"""
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  annotations:
    kwok.x-k8s.io/usage-cpu: {CPU_MILLI}m
    kwok.x-k8s.io/usage-memory: {MEMORY // MIB}Mi
spec:
  containers:
  - name: app
    image: nginx
"""


def start_time(ns, name):
    """status.startTime of a pod in epoch seconds, once it runs."""
    def get():
        pod = kubectl_json("get", "pod", name, "-n", ns)
        ts = pod.get("status", {}).get("startTime")
        return ts and pod["status"].get("phase") == "Running" and ts
    ts = wait_until(get, 60, what=f"pod {ns}/{name} to run")
    return decimal.Decimal(calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")))


def check_tiling(rows, start, what):
    """The rows of one pod cover [start, last end] exactly once; returns (seconds, cpu, memory)."""
    assert rows, f"{what}: no usage rows"
    assert rows[0][0] == start, f"{what}: first window starts at {rows[0][0]}, the pod at {start}"
    for prev, cur in zip(rows, rows[1:]):
        assert cur[0] == prev[1], f"{what}: gap or overlap between {prev} and {cur}"
    seconds = rows[-1][1] - start
    cpu = sum(r[2] for r in rows)
    mem = sum(r[3] for r in rows)
    return seconds, cpu, mem


@pytest.fixture
def tenant():
    tid = f"b{uuid.uuid4().hex[:8]}"
    ns = f"nimbus-{tid}"
    kubectl("create", "namespace", ns)
    kubectl("label", "namespace", ns, f"nimbus.io/tenant={tid}")
    wait_until(lambda: kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0,
               30, interval=0.2, what="the default ServiceAccount")
    yield tid
    kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


def test_billing_accuracy_restart_outage_and_deletion(build_dir, tmp_path, crd, tenant):
    if not os.environ.get("DB_HOST"):
        pytest.skip("DB_HOST is not set: run through hack/test, or eval \"$(hack/postgres env)\" first")
    own_db = os.environ["DB_HOST"] in ("127.0.0.1", "localhost")
    ns = f"nimbus-{tenant}"
    port = free_port()
    started = []

    def operator():
        # Not conftest's `operator` fixture: that one insists on a graceful
        # exit of every process it started, and this test kills one.
        started.append(Operator(build_dir, str(tmp_path / f"operator-{len(started)}.log"),
                                "--health-probe-bind-address=0", "--api-bind-address=0", "--controllers=billing",
                                "--billing-period=5s", f"--metrics-bind-address=127.0.0.1:{port}"))
        return started[-1]

    op = operator()
    # A namespace without the tenant label: its pod is never billed.
    other = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", other)
    try:
        for name in ("web-0", "web-1"):
            kubectl("apply", "-n", ns, "-f", "-", input=pod_doc(name))
        wait_until(lambda: kubectl("get", "serviceaccount", "default", "-n", other, check=False).returncode == 0,
                   30, interval=0.2, what="the default ServiceAccount")
        kubectl("apply", "-n", other, "-f", "-", input=pod_doc("stray"))
        starts = {name: start_time(ns, name) for name in ("web-0", "web-1")}
        uids = {kubectl_json("get", "pod", name, "-n", ns)["metadata"]["uid"]: name for name in starts}
        stray_uid = kubectl_json("get", "pod", "stray", "-n", other)["metadata"]["uid"]
        wait_until(lambda: len(usage_rows(tenant)) == 2, 60, what="usage rows of both pods")

        # kill -9 between samples; the restart resumes from the committed state.
        op.stop(signal.SIGKILL)
        time.sleep(6)
        op = operator()
        wait_until(lambda: "billing state loaded" in op.text(), 30, what="the billing state to be loaded")
        before = {uid: r[-1][1] for uid, r in usage_rows(tenant).items()}
        wait_until(lambda: all(r[-1][1] > before[uid] for uid, r in usage_rows(tenant).items()), 40,
                   what="rows after the restart")

        if own_db:
            # PostgreSQL down for 60 s: rows wait in memory, then flush in order.
            postgres("down")
            down_at = time.monotonic()
            try:
                wait_until(lambda: (metric(port, "nimbus_billing_buffer_rows") or 0) > 0, 40,
                           what="rows buffered while the database is down")
                time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            finally:
                postgres("up")
            wait_until(lambda: metric(port, "nimbus_billing_buffer_rows") == 0, 60,
                       what="the buffer to drain once the database is back")
            assert "cannot write usage rows; they stay buffered" in op.text()
            assert "usage rows written again" in op.text()

        # Delete one pod: its last row ends when the informer saw it go.
        deleted_at = decimal.Decimal(time.time())
        kubectl("delete", "pod", "web-1", "-n", ns, "--wait=false")
        web1 = next(uid for uid, name in uids.items() if name == "web-1")
        wait_until(lambda: query("SELECT closed FROM billing_pod_state WHERE pod_uid = %s", web1) == [(True,)],
                   40, what="web-1's billing state to be closed")
        web0 = next(uid for uid, name in uids.items() if name == "web-0")
        last = usage_rows(tenant)[web0][-1][1]
        wait_until(lambda: usage_rows(tenant)[web0][-1][1] > last, 30, what="another sample of web-0")
        op.stop()

        rows = usage_rows(tenant)
        assert set(rows) == set(uids), f"rows for {set(rows)}, pods {uids}"
        assert not query("SELECT 1 FROM billing_usage WHERE pod_uid = %s", stray_uid), "a non-tenant pod was billed"
        for uid, name in uids.items():
            seconds, cpu, mem = check_tiling(rows[uid], starts[name], name)
            assert seconds > 45, f"{name}: only {seconds} s billed"
            expected_cpu = CPU_MILLI * seconds
            error = abs(cpu - expected_cpu) / expected_cpu
            print(f"{name}: {seconds} s, {cpu} milli-core-seconds billed, {expected_cpu} expected "
                  f"({error:.4%}); memory {mem} byte-seconds, {MEMORY * seconds} expected")
            assert error < decimal.Decimal("0.01"), f"{name}: cpu {cpu} vs {expected_cpu}"
            assert mem == MEMORY * seconds, f"{name}: memory {mem} vs {MEMORY * seconds}"
        end = rows[web1][-1][1]
        assert deleted_at - 2 <= end <= deleted_at + 10, f"web-1 billed to {end}, deleted at {deleted_at}"
    finally:
        for o in started:
            if o.proc.poll() is None:
                o.stop()
        kubectl("delete", "namespace", other, "--wait=false", "--ignore-not-found", check=False)


def test_billing_database_functions(build_dir):
    """Invoices (issued once and frozen for closed periods), usage and idempotent writes, in C."""
    if not os.environ.get("DB_HOST"):
        pytest.skip("DB_HOST is not set: run through hack/test, or eval \"$(hack/postgres env)\" first")
    proc = subprocess.run(["ctest", "-L", "integration", "-R", "test_billing_db", "--output-on-failure"],
                          cwd=build_dir, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "test_billing_db" in out and "Passed" in out, out
    assert "Skipped" not in out and "No tests were found" not in out, out
