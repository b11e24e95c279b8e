"""The C informer against the real apiserver: churn, restarts, 410 Gone, dropped connections.

Each test runs informer-watch (informer/examples), which prints every handler
call as a JSON line and dumps its store on SIGUSR1, and compares the store with
a fresh LIST (uid and resourceVersion of every object).
"""
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest

from conftest import kubectl, kubectl_json, wait_until

ROOT = os.environ.get("NIMBUS_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))


class Watcher:
    """informer-watch for one kind, with its events collected in memory."""

    def __init__(self, build_dir, tmp_path, kind, *args):
        self.kind = kind
        self.dump_path = str(tmp_path / f"{kind}.dump")
        self.stderr_path = tmp_path / f"{kind}.stderr"
        self.events = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            [os.path.join(build_dir, "informer/examples/informer-watch"), "--kind", kind,
             "--dump-file", self.dump_path, *args],
            stdout=subprocess.PIPE, stderr=open(self.stderr_path, "w"), text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        wait_until(lambda: '"msg":"synced"' in self.stderr(), 30, what=f"{kind} informer to sync")

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            with self.lock:
                self.events.append(ev)

    def stderr(self):
        return self.stderr_path.read_text()

    def snapshot_events(self):
        with self.lock:
            return list(self.events)

    def dump(self):
        """The informer's store as {key: (uid, rv)}."""
        before = os.stat(self.dump_path).st_mtime_ns if os.path.exists(self.dump_path) else 0
        self.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: os.path.exists(self.dump_path) and os.stat(self.dump_path).st_mtime_ns != before,
                   10, interval=0.05, what="store dump")
        out = {}
        with open(self.dump_path) as f:
            for line in f:
                key, uid, rv = line.split()
                out[key] = (uid, rv)
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(timeout=10)
        assert self.proc.returncode == 0, f"informer-watch exited {self.proc.returncode}: {self.stderr()[-2000:]}"


def fresh_list(resource, namespace=None):
    """A fresh LIST from the apiserver as {key: (uid, rv)}."""
    args = ["get", resource] + (["-n", namespace] if namespace else ["-A"] if resource == "pods" else [])
    out = {}
    for item in kubectl_json(*args)["items"]:
        m = item["metadata"]
        key = f"{m['namespace']}/{m['name']}" if m.get("namespace") else m["name"]
        out[key] = (m["uid"], m["resourceVersion"])
    return out


def assert_converges(watcher, resource, namespace=None, timeout=60):
    def equal():
        want = fresh_list(resource, namespace)
        got = watcher.dump()
        return got == want or None
    try:
        wait_until(equal, timeout, interval=1, what=f"the {resource} cache to equal a fresh LIST")
    except AssertionError:
        want, got = fresh_list(resource, namespace), watcher.dump()
        missing = sorted(set(want) - set(got))[:5]
        extra = sorted(set(got) - set(want))[:5]
        stale = sorted(k for k in set(want) & set(got) if want[k] != got[k])[:5]
        raise AssertionError(f"cache != LIST: missing {missing}, extra {extra}, stale {stale}")


@pytest.fixture
def watchers(build_dir, tmp_path):
    started = []

    def start(kind, *args):
        w = Watcher(build_dir, tmp_path, kind, *args)
        started.append(w)
        return w
    yield start
    for w in started:
        w.stop()


def pods_manifest(namespace, names):
    """Pending pods (no scheduler serves this schedulerName), so nothing else churns them."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n, "namespace": namespace},
         "spec": {"schedulerName": "nobody", "containers": [{"name": "c", "image": "nginx"}]}}
        for n in names]})


def uids_with(events, etype):
    return [e["uid"] for e in events if e["event"] == etype]


def test_churn_1000_pods_and_100_namespaces(watchers, namespace):
    pods = watchers("Pod", "--namespace", namespace)
    nss = watchers("Namespace")
    names = [f"p-{i:04d}" for i in range(1000)]
    for i in range(0, 1000, 250):
        kubectl("create", "-f", "-", input=pods_manifest(namespace, names[i:i + 250]), timeout=300)
    ns_names = [f"churn-{uuid.uuid4().hex[:6]}-{i:03d}" for i in range(100)]
    kubectl("create", "-f", "-", timeout=300, input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in ns_names]}))
    assert_converges(pods, "pods", namespace)

    kubectl("label", "pods", "--all", "-n", namespace, "churn=updated", timeout=300)
    kubectl("label", "namespace", *ns_names, "churn=updated", timeout=300)
    assert_converges(pods, "pods", namespace)
    listed = fresh_list("pods", namespace)
    seen_rvs = {(e["uid"], e["rv"]) for e in pods.snapshot_events() if e["event"] == "MODIFIED"}
    assert all(v in seen_rvs for v in listed.values()), "a pod's update was not delivered to the handler"

    created_uids = {v[0] for v in listed.values()}
    kubectl("delete", "pods", "--all", "-n", namespace, "--wait=false", timeout=300)
    kubectl("delete", "namespace", *ns_names, "--wait=false", timeout=300)
    assert_converges(pods, "pods", namespace)
    events = pods.snapshot_events()
    assert created_uids <= set(uids_with(events, "ADDED"))
    assert created_uids <= set(uids_with(events, "DELETED"))
    added = uids_with(events, "ADDED")
    assert len(added) == len(set(added)), "an object was reported added twice"
    # Namespaces are deleted by the namespace controller after finalization.
    assert_converges(nss, "namespaces", timeout=120)
    ns_events = nss.snapshot_events()
    for n in ns_names:
        assert any(e["key"] == n and e["event"] == "ADDED" for e in ns_events), n
        assert any(e["key"] == n and e["event"] == "MODIFIED" for e in ns_events), n


def cluster(*args):
    subprocess.run([os.path.join(ROOT, "hack/cluster"), *args], check=True, timeout=180)
    if args[0] == "restart":
        wait_controllers_recovered()


def wait_controllers_recovered():
    """After a restart the controller-manager's watches were refused for a while
    (RBAC not yet loaded) and back off; later tests need its controllers, so wait
    until one works again: a new namespace gets its default ServiceAccount."""
    name = f"t-recover-{uuid.uuid4().hex[:6]}"
    wait_until(lambda: kubectl("create", "namespace", name, check=False).returncode == 0, 60,
               what="the apiserver to accept writes")
    wait_until(lambda: kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
               180, interval=1, what="kube-controller-manager to work again after the restart")
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def etcd_compact():
    """Compact etcd at its current revision through its JSON gateway."""
    env = dict(line.split("=", 1) for line in subprocess.run(
        [os.path.join(ROOT, "hack/cluster"), "env"], capture_output=True, text=True, check=True
    ).stdout.replace("export ", "").splitlines())
    run_dir = env["NIMBUS_CLUSTER_RUN_DIR"]
    cmd = open(os.path.join(run_dir, "pids", "etcd.cmd")).read()
    url = re.search(r"--listen-client-urls (http://127\.0\.0\.1:\d+)", cmd).group(1)
    head = json.loads(urllib.request.urlopen(url + "/v3/kv/range", data=b'{"key":"Zm9v"}', timeout=10).read())
    rev = head["header"]["revision"]
    body = json.dumps({"revision": rev, "physical": True}).encode()
    urllib.request.urlopen(url + "/v3/kv/compaction", data=body, timeout=30).read()
    return int(rev)


def test_apiserver_restart_mid_watch(watchers, namespace):
    pods = watchers("Pod", "--namespace", namespace)
    kubectl("create", "-f", "-", input=pods_manifest(namespace, [f"a-{i}" for i in range(20)]))
    assert_converges(pods, "pods", namespace)
    cluster("restart", "kube-apiserver")
    kubectl("create", "-f", "-", input=pods_manifest(namespace, [f"b-{i}" for i in range(20)]))
    kubectl("delete", "pod", "-n", namespace, *[f"a-{i}" for i in range(10)], "--wait=false")
    assert_converges(pods, "pods", namespace)
    added = uids_with(pods.snapshot_events(), "ADDED")
    assert len(added) == len(set(added)) == 40


def test_etcd_restart_mid_watch(watchers, namespace):
    pods = watchers("Pod", "--namespace", namespace)
    kubectl("create", "-f", "-", input=pods_manifest(namespace, [f"a-{i}" for i in range(20)]))
    assert_converges(pods, "pods", namespace)
    cluster("restart", "etcd")
    wait_until(lambda: kubectl("get", "--raw", "/readyz", check=False).returncode == 0, 90,
               what="apiserver ready after etcd restart")
    kubectl("create", "-f", "-", input=pods_manifest(namespace, [f"b-{i}" for i in range(20)]))
    kubectl("delete", "pod", "-n", namespace, *[f"a-{i}" for i in range(10)], "--wait=false")
    assert_converges(pods, "pods", namespace)
    added = uids_with(pods.snapshot_events(), "ADDED")
    assert len(added) == len(set(added)) == 40


def test_gone_relists_and_emits_the_difference(watchers, namespace):
    """Changes made while the informer is cut off, then a watch from a resourceVersion
    the restarted apiserver no longer has (410 Gone): the relist reports them."""
    pods = watchers("Pod", "--namespace", namespace)
    kubectl("create", "-f", "-", input=pods_manifest(namespace, [f"a-{i}" for i in range(10)]))
    assert_converges(pods, "pods", namespace)
    before = fresh_list("pods", namespace)
    pods.proc.send_signal(signal.SIGSTOP)
    try:
        # The first restart cuts the stopped informer's stream before anything
        # changes, so no change can wait for it in its socket buffer.
        cluster("restart", "kube-apiserver")
        kubectl("delete", "pod", "-n", namespace, *[f"a-{i}" for i in range(5)], "--wait=false")
        kubectl("create", "-f", "-", input=pods_manifest(namespace, [f"b-{i}" for i in range(5)]))
        kubectl("label", "pod", "-n", namespace, "a-9", "changed=yes")
        # Compact etcd's history past the informer's resourceVersion and restart
        # the apiserver so its watch cache starts empty: neither can replay the
        # missed events, so the resumed watch gets 410 Gone.
        etcd_compact()
        cluster("restart", "kube-apiserver")
    finally:
        pods.proc.send_signal(signal.SIGCONT)
    assert_converges(pods, "pods", namespace)
    assert "410 Gone" in pods.stderr(), pods.stderr()[-2000:]
    events = pods.snapshot_events()
    deleted = {e["key"] for e in events if e["event"] == "DELETED"}
    assert {f"{namespace}/a-{i}" for i in range(5)} <= deleted
    added = {e["key"] for e in events if e["event"] == "ADDED"}
    assert {f"{namespace}/b-{i}" for i in range(5)} <= added
    assert any(e["key"] == f"{namespace}/a-9" and e["event"] == "MODIFIED" and e["rv"] != before[f"{namespace}/a-9"][1]
               for e in events)
    # The relist reports differences only: untouched pods get no event.
    untouched = f"{namespace}/a-7"
    assert [e["event"] for e in events if e["key"] == untouched] == ["ADDED"]


def test_unreachable_server_is_a_clear_error(build_dir, tmp_path):
    bad = tmp_path / "bad.kubeconfig"
    good = open(os.environ["KUBECONFIG"]).read()
    bad.write_text(re.sub(r"https://127\.0\.0\.1:\d+", "https://127.0.0.1:1", good))
    proc = subprocess.Popen([os.path.join(build_dir, "informer/examples/informer-watch"), "--kind", "Pod",
                             "--kubeconfig", str(bad)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "retrying in" in err and "127.0.0.1:1" in err, err
