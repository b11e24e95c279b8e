"""Leader election on a real Lease: leader-demo processes (informer/examples/leader_demo.c) compete for one.

Timings: lease 4 s, renew deadline 3 s, retry period 0.5 s (candidates wait 0.5-0.6 s between attempts).
Every process prints JSON lines with wall-clock times; the checks compare those across processes.
"""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import kubectl, kubectl_json, wait_until

LEASE_S = 4.0
RENEW_S = 3.0
RETRY_S = 0.5
RETRY_MAX_S = RETRY_S * 1.2  # with the candidates' jitter
SLACK_S = 0.75  # process scheduling and request latency on a shared 2-core machine


class Demo:
    """One leader-demo process; its stdout events are collected as they arrive."""

    def __init__(self, build_dir, namespace, identity, lease="nimbus-test", kubeconfig=None):
        self.identity = identity
        self.events = []
        self.stderr_lines = []
        self.lock = threading.Lock()
        self.killed_at = None
        cmd = [os.path.join(build_dir, "informer", "examples", "leader-demo"),
               "--namespace", namespace, "--lease", lease, "--identity", identity,
               "--lease-duration-ms", str(int(LEASE_S * 1000)), "--renew-deadline-ms", str(int(RENEW_S * 1000)),
               "--retry-period-ms", str(int(RETRY_S * 1000)), "--tick-ms", "100"]
        if kubeconfig:
            cmd += ["--kubeconfig", kubeconfig]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.threads = [threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
                        threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True)]
        for t in self.threads:
            t.start()

    def _read(self, stream, is_stdout):
        for line in stream:
            with self.lock:
                if is_stdout:
                    self.events.append(json.loads(line))
                else:
                    self.stderr_lines.append(line.rstrip("\n"))

    def of(self, name):
        with self.lock:
            return [ev for ev in self.events if ev["event"] == name]

    def first(self, name):
        evs = self.of(name)
        return evs[0] if evs else None

    def stderr(self):
        with self.lock:
            return "\n".join(self.stderr_lines)

    def logs(self):
        """The stderr lines that are JSON log records."""
        with self.lock:
            lines = list(self.stderr_lines)
        return [json.loads(ln) for ln in lines if ln.startswith("{")]

    def kill9(self):
        self.killed_at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.drain()

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=15)
        self.drain()
        return rc

    def drain(self):
        for t in self.threads:
            t.join(timeout=5)

    def terms(self):
        """[start, end] of each leading term; a term cut by SIGKILL ends at the kill."""
        with self.lock:
            evs = list(self.events)
        out, start = [], None
        for ev in evs:
            if ev["event"] == "started_leading":
                start = ev["t"]
            elif ev["event"] == "stopped_leading" and start is not None:
                out.append((start, ev["t"]))
                start = None
        if start is not None:
            out.append((start, self.killed_at or time.time()))
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def demos():
    started = []
    yield started
    for d in started:
        d.stop()


def assert_never_both_leading(procs):
    """Terms of different processes never overlap, and each acts only within its terms."""
    terms = [(s, e, d.identity) for d in procs for (s, e) in d.terms()]
    terms.sort()
    for (s1, e1, id1), (s2, e2, id2) in zip(terms, terms[1:]):
        assert e1 <= s2, f"{id1} led until {e1:.6f} but {id2} started leading at {s2:.6f}"
    for d in procs:
        for ev in d.of("acting"):
            assert any(s <= ev["t"] <= e for (s, e) in d.terms()), f"{d.identity} acted outside a term at {ev['t']}"


def lease_spec(namespace, name="nimbus-test"):
    return kubectl_json("get", "lease", name, "-n", namespace)["spec"]


def test_one_leads_takeover_after_kill_and_release_on_sigterm(namespace, build_dir, demos):
    a = Demo(build_dir, namespace, "replica-a")
    b = Demo(build_dir, namespace, "replica-b")
    demos += [a, b]

    # Exactly one leads, and keeps leading for longer than a lease duration:
    # the other sees the renewals and never takes over.
    wait_until(lambda: a.of("started_leading") or b.of("started_leading"), 15, interval=0.1,
               what="one replica to start leading")
    time.sleep(LEASE_S * 1.5)
    leader, follower = (a, b) if a.of("started_leading") else (b, a)
    assert len(leader.of("started_leading")) == 1 and not leader.of("stopped_leading"), leader.events
    assert not follower.of("started_leading"), follower.events
    assert follower.of("new_leader")[-1]["leader"] == leader.identity
    assert leader.of("acting"), "the leader never saw leader_is_leader() true"
    spec = lease_spec(namespace)
    assert spec["holderIdentity"] == leader.identity
    assert spec["leaseDurationSeconds"] == int(LEASE_S)
    assert spec["leaseTransitions"] == 0
    assert spec["renewTime"].endswith("Z") and len(spec["renewTime"]) == len("2006-01-02T15:04:05.000000Z")

    # kill -9: no release; the follower takes over once the lease expires by its
    # own clock, counted from when it last saw the lease renewed (at most one
    # retry period before the kill).
    leader.kill9()
    started = wait_until(lambda: follower.first("started_leading"), LEASE_S + 4 * RETRY_MAX_S + 5, interval=0.1,
                         what=f"{follower.identity} to take over after the kill")
    took = started["t"] - leader.killed_at
    assert LEASE_S - RETRY_MAX_S - 0.25 <= took <= LEASE_S + 2 * RETRY_MAX_S + SLACK_S, took
    assert_never_both_leading([a, b])
    spec = lease_spec(namespace)
    assert spec["holderIdentity"] == follower.identity and spec["leaseTransitions"] == 1

    # A third replica joins as a candidate; SIGTERM makes the leader release the
    # lease, so the candidate takes over at its next attempt, long before expiry.
    c = Demo(build_dir, namespace, "replica-c")
    demos.append(c)
    wait_until(lambda: [e for e in c.of("new_leader") if e["leader"] == follower.identity], 15, interval=0.1,
               what="replica-c to observe the leader")
    assert follower.terminate() == 0, follower.stderr()
    stopped = follower.first("stopped_leading")
    exiting = follower.first("exiting")
    assert stopped and exiting and exiting["release"] == 0 and stopped["t"] <= exiting["t"], follower.events
    assert "released by " + follower.identity in follower.stderr()
    c_started = wait_until(lambda: c.first("started_leading"), 10, interval=0.1, what="replica-c to take over")
    handover = c_started["t"] - stopped["t"]
    assert 0 < handover <= RETRY_MAX_S + SLACK_S, handover
    assert handover < LEASE_S - 1, "took over by expiry, not by the release"
    assert_never_both_leading([a, b, c])
    spec = lease_spec(namespace)
    assert spec["holderIdentity"] == "replica-c"
    assert spec["leaseTransitions"] == 2  # a -> b by expiry, b -> (released) -> c

    assert c.terminate() == 0
    spec = lease_spec(namespace)
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
    assert_never_both_leading([a, b, c])


def test_missing_namespace_is_explained(build_dir, demos):
    d = Demo(build_dir, "t-no-such-namespace", "replica-x")
    demos.append(d)
    wait_until(lambda: "namespace t-no-such-namespace must exist" in d.stderr(), 15, interval=0.2,
               what="a warning that names the missing namespace")
    assert d.terminate() == 0
    assert not d.of("started_leading")
    # One warning, however many attempts failed the same way.
    assert d.stderr().count("must exist") == 1, d.stderr()


def _token_kubeconfig(tmp_path, namespace, account):
    raw = kubectl_json("config", "view", "--raw", "--minify")
    cluster = raw["clusters"][0]["cluster"]
    token = kubectl("create", "token", account, "-n", namespace).stdout.strip()
    cfg = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": account, "namespace": namespace}}],
    }
    path = tmp_path / "sa.kubeconfig"
    path.write_text(json.dumps(cfg))
    return str(path)


def test_forbidden_names_the_rbac_needed_then_recovers(namespace, build_dir, demos, tmp_path):
    kubectl("create", "serviceaccount", "elector", "-n", namespace)
    kubeconfig = _token_kubeconfig(tmp_path, namespace, "elector")
    d = Demo(build_dir, namespace, "replica-rbac", kubeconfig=kubeconfig)
    demos.append(d)
    wait_until(lambda: "needs get, create and update on leases" in d.stderr(), 15, interval=0.2,
               what="a 403 warning naming the verbs")
    assert f"in namespace {namespace}" in d.stderr()
    assert not d.of("started_leading")

    # Granting exactly those verbs is enough: the next attempt succeeds.
    kubectl("create", "role", "elector", "-n", namespace, "--verb=get,create,update",
            "--resource=leases.coordination.k8s.io")
    kubectl("create", "rolebinding", "elector", "-n", namespace, "--role=elector",
            f"--serviceaccount={namespace}:elector")
    wait_until(lambda: d.first("started_leading"), 30, interval=0.2, what="leading once RBAC allows it")
    assert "requests succeed again" in d.stderr()
    assert d.terminate() == 0
    assert lease_spec(namespace)["holderIdentity"] == ""


def _cluster_run_dir():
    """The hack/cluster run dir of the cluster under test (its admin kubeconfig lives there)."""
    run_dir = os.environ.get("NIMBUS_CLUSTER_RUN_DIR") or os.path.dirname(os.environ.get("KUBECONFIG", ""))
    if not os.path.exists(os.path.join(run_dir, "pids", "kube-apiserver.cmd")):
        pytest.skip("needs a cluster started by hack/cluster (NIMBUS_CLUSTER_RUN_DIR) to stop its apiserver")
    return run_dir


def _hack_cluster(*args):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([os.path.join(root, "hack", "cluster"), *args], check=True, timeout=180)


def test_steps_down_when_renewals_fail_for_the_renew_deadline(namespace, build_dir, demos):
    run_dir = _cluster_run_dir()
    d = Demo(build_dir, namespace, "replica-solo")
    demos.append(d)
    wait_until(lambda: d.first("started_leading"), 15, interval=0.1, what="the only replica to lead")
    time.sleep(1)

    # With the apiserver gone every renewal fails; the term must end once the
    # renew deadline has passed since the last success, before the lease
    # expires for anyone else.
    stopping = time.time()
    _hack_cluster("stop", "kube-apiserver", "--run-dir", run_dir)
    down = time.time()
    try:
        stopped = wait_until(lambda: d.first("stopped_leading"), RENEW_S + 10, interval=0.1,
                             what="the leader to step down")
    finally:
        _hack_cluster("start", "kube-apiserver", "--run-dir", run_dir)
    # The apiserver may serve for a while after SIGTERM, so the outage starts
    # at the first failed renewal (logged once at WARN); the last success was
    # at most one retry period before it.
    first_failure = next(r["t"] for r in d.logs() if r["t"] >= stopping and r["level"] == "warn")
    assert first_failure <= down
    assert first_failure + RENEW_S - RETRY_MAX_S - 0.25 <= stopped["t"] <= first_failure + RENEW_S + SLACK_S, \
        (first_failure, stopped["t"])
    # leader_is_leader() turned false at the deadline, before the callback came.
    last_act = max(e["t"] for e in d.of("acting") if e["t"] <= stopped["t"])
    assert stopped["t"] - RETRY_MAX_S - SLACK_S <= last_act <= stopped["t"]
    assert "the renew deadline" in d.stderr()
    assert d.proc.poll() is None, "a failed renewal must not end the process"

    # Back as a candidate: the lease still names it, so it leads again at once
    # once the apiserver answers, without counting a transition.
    wait_until(lambda: len(d.of("started_leading")) == 2, 30, interval=0.2, what="leading again")
    assert_never_both_leading([d])
    spec = lease_spec(namespace)
    assert spec["holderIdentity"] == "replica-solo" and spec["leaseTransitions"] == 0
    assert d.terminate() == 0


def test_deleted_lease_is_created_again_by_the_leader(namespace, build_dir, demos):
    d = Demo(build_dir, namespace, "replica-solo")
    demos.append(d)
    wait_until(lambda: d.first("started_leading"), 15, interval=0.1, what="the only replica to lead")
    uid = kubectl_json("get", "lease", "nimbus-test", "-n", namespace)["metadata"]["uid"]
    kubectl("delete", "lease", "nimbus-test", "-n", namespace)

    def recreated():
        out = kubectl("get", "lease", "nimbus-test", "-n", namespace, "-o", "json", check=False)
        return out.returncode == 0 and json.loads(out.stdout)
    lease = wait_until(lambda: (lambda x: x and x["metadata"]["uid"] != uid and x)(recreated()),
                       RETRY_MAX_S * 4 + 5, interval=0.1, what="the lease to be created again")
    assert lease["spec"]["holderIdentity"] == "replica-solo"
    # The next renewal created it again (a PUT creates a missing Lease) within the term.
    time.sleep(RENEW_S)
    assert len(d.of("started_leading")) == 1 and not d.of("stopped_leading"), d.events
    assert d.terminate() == 0
