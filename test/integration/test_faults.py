"""Faults on the real cluster and PostgreSQL, with nimbus-operator running through them.

The operator talks to the apiserver through a TCP proxy of this suite
(FaultProxy) that can add latency, cut every connection and stall every
stream; kube-apiserver and etcd are restarted, etcd's history is compacted
so that watches resume into 410 Gone, PostgreSQL is stopped for a minute
(and is down when the operator starts), and the operator is killed with
SIGKILL at random points while ComputeRequests are being created. After
each fault the same invariants are checked (check_invariants):

- every cache of the operator (dumped on SIGUSR1 with --cache-dump-file)
  equals a fresh LIST: the same objects with the same resourceVersions;
- every ComputeRequest has exactly one Deployment, owned by it;
- no node's pods request more than it has (test_scheduler's check);
- each pod's billing rows tile its life from its start, without a gap or
  an overlap (so none is duplicated), and add up to its known usage x the
  billed time within 1 %.

hack/test runs the short form (40 ComputeRequests killed through, streams
stalled 15 s, PostgreSQL down 20 s, no etcd restart). NIMBUS_FAULTS_LONG=1
runs the long form: 200 ComputeRequests, streams stalled 130 s (past the
client's 120 s stall detection, which must then reconnect), PostgreSQL down
60 s and etcd restarted:
NIMBUS_FAULTS_LONG=1 hack/test integration -k test_faults
"""
import asyncio
import calendar
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from fractions import Fraction

import psycopg
import pytest

import test_scheduler
from conftest import ROOT, Operator, free_port, kubectl, kubectl_json, wait_until
from test_informer import etcd_compact, wait_controllers_recovered

LONG = os.environ.get("NIMBUS_FAULTS_LONG") == "1"
CRS = 200 if LONG else 40
STALL_S = 130 if LONG else 15
PG_DOWN_S = 60 if LONG else 20
# Each pod's usage, as kwok reports it from the pod's annotations.
POD_CPU_MILLI = 50
POD_MEMORY_MI = 32


# ------------------------------------------------------------------ the proxy

class FaultProxy:
    """A TCP proxy on a loopback port in front of host:port, in a thread of its
    own (asyncio), that can delay each chunk, cut every connection and hold
    every byte back (stall) until released. TLS passes through untouched."""

    def __init__(self, host, port):
        self.upstream = (host, port)
        self.latency = 0.0
        self.conns = set()
        self.loop = asyncio.new_event_loop()
        self.flowing = None
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait(10)

    def _run(self, started):
        asyncio.set_event_loop(self.loop)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    async def _pump(self, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                await self.flowing.wait()
                if self.latency:
                    await asyncio.sleep(self.latency)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _serve(self, creader, cwriter):
        try:
            ureader, uwriter = await asyncio.open_connection(*self.upstream)
        except OSError:
            cwriter.close()
            return
        pair = (cwriter, uwriter)
        self.conns.add(pair)
        try:
            await asyncio.gather(self._pump(creader, uwriter), self._pump(ureader, cwriter))
        finally:
            self.conns.discard(pair)

    def _call(self, fn):
        done = threading.Event()

        def run():
            fn()
            done.set()
        self.loop.call_soon_threadsafe(run)
        assert done.wait(10), "the fault proxy did not answer"

    def set_latency(self, seconds):
        self._call(lambda: setattr(self, "latency", seconds))

    def cut(self):
        """Abort every open connection (both sides): the client sees a reset."""
        cut = []

        def go():
            cut.append(len(self.conns))
            for c, u in list(self.conns):
                c.transport.abort()
                u.transport.abort()
        self._call(go)
        return cut[0]

    def stall(self, on):
        self._call(self.flowing.clear if on else self.flowing.set)

    def close(self):
        async def shutdown():
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.stall(False)
        self.cut()
        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def proxied_kubeconfig(tmp_path):
    """A kubeconfig of the test cluster whose server is a FaultProxy; yields (path, proxy)."""
    text = open(os.environ["KUBECONFIG"]).read()
    m = re.search(r"server: https://127\.0\.0\.1:(\d+)", text)
    assert m, "the test kubeconfig names no https://127.0.0.1:PORT server"
    proxy = FaultProxy("127.0.0.1", int(m.group(1)))
    path = tmp_path / "proxied.kubeconfig"
    path.write_text(text.replace(m.group(0), f"server: https://127.0.0.1:{proxy.port}"))
    yield str(path), proxy
    proxy.close()


# ------------------------------------------------------------------ services

def cluster(*args):
    run_dir = os.path.dirname(os.environ["KUBECONFIG"])
    proc = subprocess.run([os.path.join(ROOT, "hack/cluster"), *args, "--run-dir", run_dir],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"hack/cluster {' '.join(args)} failed: {proc.stdout}{proc.stderr}"


def postgres(cmd):
    proc = subprocess.run([os.path.join(ROOT, "hack/postgres"), cmd, "--port", os.environ["DB_PORT"]],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"hack/postgres {cmd}: {proc.stderr}"


def db():
    return psycopg.connect(host=os.environ["DB_HOST"], port=os.environ["DB_PORT"], dbname=os.environ["DB_NAME"],
                           user=os.environ["DB_USER"], password=os.environ.get("DB_PASSWORD"), autocommit=True,
                           connect_timeout=5)


def query(sql, *args):
    with db() as c:
        return c.execute(sql, args).fetchall()


@pytest.fixture(autouse=True)
def local_postgres():
    if os.environ.get("DB_HOST") not in ("127.0.0.1", "localhost"):
        pytest.skip("these faults stop and start PostgreSQL: run through hack/test, or "
                    "eval \"$(hack/postgres env)\" first")


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


class FaultOperator(Operator):
    """nimbus-operator with every controller, its health port, and its caches
    dumped on request; the API is off (the API has suites of its own)."""

    def __init__(self, build_dir, tmp_path, *args, kubeconfig=None, index=0):
        self.health_port = free_port()
        self.dump_path = str(tmp_path / f"caches-{index}.txt")
        super().__init__(build_dir, str(tmp_path / f"operator-{index}.log"), "--api-bind-address=0",
                         "--metrics-bind-address=0", f"--health-probe-bind-address=127.0.0.1:{self.health_port}",
                         f"--cache-dump-file={self.dump_path}", "--billing-period=5s",
                         *([f"--kubeconfig={kubeconfig}"] if kubeconfig else []), *args)

    def readyz(self):
        return http_get(f"http://127.0.0.1:{self.health_port}/readyz")

    def dump(self):
        """The caches as {kind: {key: (uid, rv)}}."""
        before = os.stat(self.dump_path).st_mtime_ns if os.path.exists(self.dump_path) else 0
        self.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: os.path.exists(self.dump_path) and os.stat(self.dump_path).st_mtime_ns != before,
                   10, interval=0.05, what="the operator's cache dump")
        out = {}
        with open(self.dump_path) as f:
            for line in f:
                kind, key, uid, rv = line.split()
                out.setdefault(kind, {})[key] = (uid, rv)
        return out


@pytest.fixture
def operators(build_dir, tmp_path, crd):
    """start(*args, kubeconfig=None) -> FaultOperator; every one still running is stopped gracefully at the end."""
    started = []

    def start(*args, kubeconfig=None):
        op = FaultOperator(build_dir, tmp_path, *args, kubeconfig=kubeconfig, index=len(started))
        started.append(op)
        return op
    yield start
    for op in started:
        if op.proc.poll() is None:
            op.stop()


# ------------------------------------------------------------------ tenants and ComputeRequests

@pytest.fixture
def tenant():
    """A tenant as the reconciler makes it (namespace nimbus-<id> labelled with the id), without a
    quota, so the workloads and billing are exercised alone; deleted at the end."""
    made = []

    def make():
        tid = f"f{uuid.uuid4().hex[:8]}"
        ns = f"nimbus-{tid}"
        kubectl("create", "namespace", ns)
        kubectl("label", "namespace", ns, f"nimbus.io/tenant={tid}")
        wait_until(lambda: kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0,
                   60, interval=0.2, what="the default ServiceAccount")
        made.append(ns)
        return tid
    yield make
    for ns in made:
        kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


def cr_docs(tid, names, replicas=1):
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "nimbus.io/v1", "kind": "ComputeRequest",
         "metadata": {"name": n, "namespace": f"nimbus-{tid}"},
         "spec": {"tenantId": tid, "image": "nginx", "cpu": "10m", "memory": "16Mi", "replicas": replicas,
                  "podAnnotations": {"kwok.x-k8s.io/usage-cpu": f"{POD_CPU_MILLI}m",
                                     "kwok.x-k8s.io/usage-memory": f"{POD_MEMORY_MI}Mi"}}}
        for n in names]})


def create_crs(tid, names, replicas=1):
    kubectl("apply", "-f", "-", input=cr_docs(tid, names, replicas), timeout=300)


def ready_crs(tid):
    items = kubectl_json("get", "computerequests", "-n", f"nimbus-{tid}")["items"]
    return [c["metadata"]["name"] for c in items
            if any(x["type"] == "Ready" and x["status"] == "True" for x in c.get("status", {}).get("conditions", []))]


def wait_ready(tid, n, timeout=240):
    wait_until(lambda: len(ready_crs(tid)) >= n or None, timeout, interval=2,
               what=f"{n} ComputeRequests of {tid} Ready")


# ------------------------------------------------------------------ the invariants

LISTS = {
    "ComputeRequest": ["computerequests", "-A"],
    "Deployment": ["deployments", "-A", "-l", "app.kubernetes.io/managed-by=nimbus"],
    "Namespace": ["namespaces"],
    "ResourceQuota": ["resourcequotas", "-A"],
    "Pod": ["pods", "-A"],
    "Node": ["nodes"],
}


def fresh_lists():
    out = {}
    for kind, args in LISTS.items():
        items = {}
        for item in kubectl_json("get", *args)["items"]:
            m = item["metadata"]
            key = f"{m['namespace']}/{m['name']}" if m.get("namespace") else m["name"]
            items[key] = (m["uid"], m["resourceVersion"])
        out[kind] = items
    return out


def assert_caches_equal_lists(op, timeout=90):
    """The caches converge on a fresh LIST (the cluster keeps moving, so compare until equal)."""
    last = {}

    def equal():
        want, got = fresh_lists(), op.dump()
        diff = {}
        for kind, items in want.items():
            have = got.get(kind, {})
            if have != items:
                diff[kind] = {"missing": sorted(set(items) - set(have))[:3], "extra": sorted(set(have) - set(items))[:3],
                              "stale": sorted(k for k in set(items) & set(have) if items[k] != have[k])[:3]}
        last["diff"] = diff
        return not diff
    try:
        wait_until(equal, timeout, interval=2, what="every cache to equal a fresh LIST")
    except AssertionError:
        raise AssertionError(f"caches != LIST: {last.get('diff')}")


def assert_one_deployment_each(tids, timeout=120):
    def check():
        problems = []
        for tid in tids:
            ns = f"nimbus-{tid}"
            crs = {c["metadata"]["uid"]: c["metadata"]["name"]
                   for c in kubectl_json("get", "computerequests", "-n", ns)["items"]}
            owned = {}
            for d in kubectl_json("get", "deployments", "-n", ns)["items"]:
                for ref in d["metadata"].get("ownerReferences", []):
                    if ref.get("kind") == "ComputeRequest":
                        owned.setdefault(ref["uid"], []).append(d["metadata"]["name"])
            for uid, name in crs.items():
                if owned.get(uid) != [f"nimbus-{name}"]:
                    problems.append(f"{ns}/{name}: {owned.get(uid)}")
            problems += [f"{ns}: Deployments {names} owned by a ComputeRequest that is gone"
                         for uid, names in owned.items() if uid not in crs]
        last["problems"] = problems
        return not problems
    last = {}
    try:
        wait_until(check, timeout, interval=2, what="exactly one Deployment per ComputeRequest")
    except AssertionError:
        raise AssertionError(f"ComputeRequests without exactly one Deployment: {last['problems'][:10]}")


def epoch(ts):
    return calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))


def assert_billing_exact(tids, since):
    """Each pod of the tenants that started after `since` (epoch s) and has rows: the rows tile
    [startTime, last end] (no gap, no overlap, no duplicate), and CPU and memory add up to the pod's
    constant usage x that time within 1 %. Returns the number of pods checked."""
    checked = 0
    for tid in tids:
        starts = {}
        for p in kubectl_json("get", "pods", "-n", f"nimbus-{tid}")["items"]:
            st = p.get("status", {}).get("startTime")
            if st and epoch(st) >= since:
                starts[p["metadata"]["uid"]] = (p["metadata"]["name"], epoch(st))
        rows = {}
        for uid, start, end, cpu, mem in query(
                "SELECT pod_uid, extract(epoch FROM window_start), extract(epoch FROM window_end), "
                "cpu_milli_seconds, memory_byte_seconds FROM billing_usage WHERE tenant_id = %s "
                "ORDER BY pod_uid, window_start", tid):
            rows.setdefault(uid, []).append((Fraction(start), Fraction(end), Fraction(cpu), Fraction(mem)))
        for uid, rs in rows.items():
            if uid not in starts:
                continue
            name, start = starts[uid]
            assert rs[0][0] == start, f"{tid}/{name}: first window at {float(rs[0][0])}, the pod started at {start}"
            for a, b in zip(rs, rs[1:]):
                assert b[0] == a[1], f"{tid}/{name}: gap or overlap between windows {a[:2]} and {b[:2]}"
            seconds = rs[-1][1] - start
            if seconds < 5:
                continue
            cpu, mem = sum(r[2] for r in rs), sum(r[3] for r in rs)
            want_cpu, want_mem = POD_CPU_MILLI * seconds, POD_MEMORY_MI * 2**20 * seconds
            assert abs(cpu - want_cpu) <= want_cpu / 100, \
                f"{tid}/{name}: {float(cpu)} milli-core-s billed over {float(seconds)} s, {float(want_cpu)} used"
            assert abs(mem - want_mem) <= want_mem / 100, \
                f"{tid}/{name}: {float(mem)} byte-s billed over {float(seconds)} s, {float(want_mem)} used"
            checked += 1
    dups = query("SELECT pod_uid, window_start, count(*) FROM billing_usage GROUP BY 1, 2 HAVING count(*) > 1")
    assert not dups, f"duplicated usage rows: {dups[:5]}"
    return checked


def check_invariants(op, tids, since, billed_pods=1):
    assert_caches_equal_lists(op)
    assert_one_deployment_each(tids)
    test_scheduler.assert_no_overcommit()
    # Rows for every running pod, then the sums: the pods must have had a sample since the fault.
    wait_until(lambda: assert_billing_exact(tids, since) >= billed_pods, 90, interval=3,
               what=f"billing rows of at least {billed_pods} pods")
    assert op.proc.poll() is None, f"nimbus-operator exited: {op.text()[-3000:]}"


# ------------------------------------------------------------------ the faults

def test_apiserver_latency_cuts_and_stalls(operators, tenant, proxied_kubeconfig):
    kubeconfig, proxy = proxied_kubeconfig
    since = time.time()
    op = operators(kubeconfig=kubeconfig)
    tid = tenant()
    create_crs(tid, [f"a-{i}" for i in range(5)])
    wait_ready(tid, 5)

    # 150 ms on every chunk each way: slow, but everything still converges.
    proxy.set_latency(0.15)
    create_crs(tid, [f"b-{i}" for i in range(5)])
    wait_ready(tid, 10)
    proxy.set_latency(0)

    # Every connection reset three times while ComputeRequests are added.
    for round_ in range(3):
        assert proxy.cut() > 0, "the operator had no connection through the proxy"
        create_crs(tid, [f"c{round_}-{i}" for i in range(3)])
        time.sleep(2)
    wait_ready(tid, 19)

    # Every stream stalled (watches and requests alike) while the cluster changes.
    proxy.stall(True)
    try:
        kubectl("scale", "computerequest", "a-0", "a-1", "-n", f"nimbus-{tid}", "--replicas=2")
        kubectl("delete", "computerequest", "b-0", "-n", f"nimbus-{tid}", "--wait=false")
        create_crs(tid, ["d-0"])
        time.sleep(STALL_S)
    finally:
        proxy.stall(False)
    wait_until(lambda: kubectl_json("get", "deployment", "nimbus-a-0", "-n", f"nimbus-{tid}")["spec"]["replicas"] == 2,
               120, interval=1, what="the scale made during the stall to reach the Deployment")
    wait_ready(tid, 19)
    check_invariants(op, [tid], since)
    if STALL_S > 120:
        assert "stream stalled" in op.text(), "a stall longer than 120 s went unnoticed"


def test_apiserver_and_etcd_restarts_and_compaction(operators, tenant):
    since = time.time()
    op = operators()
    tid = tenant()
    create_crs(tid, [f"a-{i}" for i in range(5)])
    wait_ready(tid, 5)

    if LONG:
        # The short form leaves this to test_informer.py, which restarts etcd
        # under the same informers.
        cluster("restart", "etcd")
        wait_until(lambda: kubectl("get", "--raw", "/readyz", check=False).returncode == 0, 120,
                   what="the apiserver ready after the etcd restart")
        create_crs(tid, [f"c-{i}" for i in range(3)])
        wait_ready(tid, 8)

    # Frozen while the cluster changes and history is compacted past what it
    # saw; the apiserver restarted with an empty watch cache: every watch
    # resumes into 410 Gone and relists.
    op.proc.send_signal(signal.SIGSTOP)
    try:
        cluster("restart", "kube-apiserver")
        kubectl("delete", "computerequest", "a-0", "a-1", "-n", f"nimbus-{tid}", "--wait=false")
        create_crs(tid, [f"d-{i}" for i in range(3)])
        etcd_compact()
        cluster("restart", "kube-apiserver")
    finally:
        op.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: "410 Gone" in op.text(), 120, what="a watch to resume into 410 Gone")
    # Not Ready: after an apiserver restart kube-controller-manager backs off
    # for minutes before it makes pods again; the Deployments are the
    # operator's part, and check_invariants waits for them.
    check_invariants(op, [tid], since)
    # The suites after this one need the controller-manager working again.
    wait_controllers_recovered()


def test_postgres_down_then_back(operators, tenant):
    since = time.time()
    op = operators()
    tid = tenant()
    create_crs(tid, [f"a-{i}" for i in range(3)])
    wait_ready(tid, 3)
    wait_until(lambda: op.readyz()[0] == 200, 30, what="/readyz 200")
    wait_until(lambda: query("SELECT count(DISTINCT pod_uid) FROM billing_usage WHERE tenant_id = %s", tid)[0][0] >= 1,
               60, interval=1, what="usage rows before the outage")

    postgres("down")
    down_at = time.monotonic()
    try:
        status, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(op.readyz()), 20,
                                  what="/readyz to report the database")
        assert "database" in body, body
        # Workloads do not need the database: they keep working.
        create_crs(tid, ["b-0"])
        wait_ready(tid, 4, timeout=120)
        time.sleep(max(0.0, PG_DOWN_S - (time.monotonic() - down_at)))
    finally:
        postgres("up")
    wait_until(lambda: op.readyz()[0] == 200, 30, what="/readyz 200 once PostgreSQL is back")
    assert "cannot write usage rows; they stay buffered" in op.text()
    check_invariants(op, [tid], since, billed_pods=4)


def test_operator_starts_while_postgres_is_down_and_catches_up(operators, build_dir):
    # A tenant row written while no operator runs ...
    name = f"f{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    proc = subprocess.run([os.path.join(build_dir, "operator/nimbus-operator"), "tenant", "create", name,
                           "--cpu", "1", "--memory", "1Gi"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    try:
        # ... and PostgreSQL down when the operator starts: it starts anyway, not ready.
        postgres("down")
        try:
            op = operators("--controllers=tenant,workload,billing")
            status, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(op.readyz()), 30,
                                      what="/readyz 503")
            assert "database" in body, body
            time.sleep(3)
            assert op.proc.poll() is None
            assert kubectl("get", "namespace", f"nimbus-{name}", check=False).returncode != 0
        finally:
            postgres("up")
        # It connects, migrates, resyncs every tenant and catches up.
        wait_until(lambda: op.readyz()[0] == 200, 60, what="/readyz 200 once PostgreSQL is back")
        wait_until(lambda: kubectl("get", "resourcequota", "nimbus-quota", "-n", f"nimbus-{name}",
                                   check=False).returncode == 0, 60,
                   what="the tenant's namespace and quota once the database is back")
        wait_until(lambda: "tenant notifications restored" in op.text(), 30,
                   what="the listener to say it resynced")
        # And it still follows changes: a tenant created now gets its namespace.
        later = f"f{uuid.uuid4().hex[:8]}"
        proc = subprocess.run([os.path.join(build_dir, "operator/nimbus-operator"), "tenant", "create", later],
                              capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        wait_until(lambda: kubectl("get", "namespace", f"nimbus-{later}", check=False).returncode == 0, 30,
                   what="a namespace for a tenant created after the recovery")
        for t in (name, later):
            subprocess.run([os.path.join(build_dir, "operator/nimbus-operator"), "tenant", "delete", t],
                           capture_output=True, env=env, timeout=60)
        wait_until(lambda: not query("SELECT 1 FROM tenants WHERE id IN (%s, %s)", name, later), 120,
                   what="both tenants deleted")
    finally:
        subprocess.run([os.path.join(build_dir, "operator/nimbus-operator"), "tenant", "delete", name],
                       capture_output=True, env=env, timeout=60)


def test_kill9_at_random_points_while_creating_crs(operators, tenant):
    since = time.time()
    tid = tenant()
    names = [f"k-{i}" for i in range(CRS)]
    op = operators()
    batches = [names[i:i + 10] for i in range(0, len(names), 10)]
    creator_errors = []

    def create_all():
        try:
            for batch in batches:
                create_crs(tid, batch)
        except AssertionError as e:
            creator_errors.append(str(e))
    creator = threading.Thread(target=create_all)
    creator.start()
    rng = random.Random(CRS)
    kills = 0
    while creator.is_alive() or kills < 3:
        time.sleep(rng.uniform(1, 6))
        op.stop(signal.SIGKILL)
        kills += 1
        op = operators()
    creator.join()
    assert not creator_errors, creator_errors
    wait_ready(tid, CRS, timeout=120 + 3 * CRS)
    check_invariants(op, [tid], since, billed_pods=min(CRS, 10))
    print(f"kill -9 x{kills} while creating {CRS} ComputeRequests: all Ready with one Deployment each")
